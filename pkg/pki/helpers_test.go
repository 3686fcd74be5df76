package pki

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/atomicfile"
)

func newTestCA(tb testing.TB, cn string) *CA {
	tb.Helper()
	ca, err := CreateCA(CAOptions{CommonName: cn}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatalf("CreateCA: %v", err)
	}
	return ca
}

func issue(tb testing.TB, ca *CA, req IssueRequest) *KeyPair {
	tb.Helper()
	kp, err := ca.Issue(req)
	if err != nil {
		tb.Fatalf("Issue(%s): %v", req.CommonName, err)
	}
	return kp
}

// writeIdentity writes a key pair and its CA into dir and returns the Files.
func writeIdentity(tb testing.TB, dir, name string, caPEM []byte, kp *KeyPair) Files {
	tb.Helper()
	f := DirFiles(dir, name)
	for path, data := range map[string][]byte{f.CertFile: kp.CertPEM, f.KeyFile: kp.KeyPEM, f.CAFile: caPEM} {
		if err := atomicfile.Write(path, data, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

func newReloader(tb testing.TB, f Files, interval time.Duration) *Reloader {
	tb.Helper()
	r, err := NewReloader(f, ReloaderOptions{MinCheckInterval: interval}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatalf("NewReloader: %v", err)
	}
	return r
}

func tlsCert(tb testing.TB, kp *KeyPair) tls.Certificate {
	tb.Helper()
	c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// handBuiltCert signs a certificate with the CA key through crypto/x509, for
// shapes the profiles refuse to issue (a clientAuth-only cert with SANs).
func handBuiltCert(tb testing.TB, ca *CA, cn string, eku []x509.ExtKeyUsage, ips []net.IP) *KeyPair {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  eku,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), key.Public(), ca.Signer())
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return &KeyPair{
		CertPEM: encodeCertPEM(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		Cert:    cert,
	}
}

// handshakeResult is what the echo server saw of one connection.
type handshakeResult struct {
	identity string
	err      error
}

// echoServer is a loopback TLS server that reports each connection's
// handshake and echoes lines on good ones. Close stops it and waits for all
// its goroutines.
type echoServer struct {
	ln      net.Listener
	cfg     *tls.Config
	results chan handshakeResult
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
}

func startEchoServer(tb testing.TB, cfg *tls.Config) *echoServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &echoServer{ln: ln, cfg: cfg, results: make(chan handshakeResult, 64), conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.acceptLoop()
	tb.Cleanup(s.Close)
	return s
}

func (s *echoServer) addr() string { return s.ln.Addr().String() }

func (s *echoServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *echoServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close() // test server: the peer may already be gone
	}()
	tc := tls.Server(c, s.cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := tc.HandshakeContext(ctx)
	cancel()
	res := handshakeResult{err: err}
	if err == nil {
		res.identity, res.err = Identity(tc.ConnectionState())
	}
	s.results <- res
	if res.err != nil {
		return
	}
	r := bufio.NewReader(tc)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := tc.Write([]byte(line)); err != nil {
			return
		}
	}
}

func (s *echoServer) Close() {
	_ = s.ln.Close() // closing twice from Cleanup is harmless
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// next returns the next connection's handshake result.
func (s *echoServer) next(tb testing.TB) handshakeResult {
	tb.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(10 * time.Second):
		tb.Fatal("no handshake result within 10s")
		return handshakeResult{}
	}
}

// dialEcho dials with cfg, completes the handshake and one echo round trip.
// In TLS 1.3 a client learns that the server refused its certificate only
// when it reads, so the round trip is part of the check.
func dialEcho(tb testing.TB, addr string, cfg *tls.Config) (*tls.Conn, error) {
	tb.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	c := tls.Client(raw, cfg)
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if err := c.Handshake(); err != nil {
		_ = c.Close()
		return nil, err
	}
	if err := echo(c); err != nil {
		_ = c.Close()
		return nil, err
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c, nil
}

func echo(c *tls.Conn) error {
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return os.ErrInvalid
	}
	return nil
}

func fileMode(tb testing.TB, path string) os.FileMode {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Mode().Perm()
}

func mustRead(tb testing.TB, dir, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
