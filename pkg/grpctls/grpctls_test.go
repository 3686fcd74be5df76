package grpctls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// tlsPair returns server and client configs trusting one self-signed
// certificate for "localhost", with client certificates required.
func tlsPair(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	return server, client
}

// handshake connects a client and a server over loopback TCP with
// Credentials and returns both ends and the client's counted socket.
func handshake(t *testing.T, serverConf, clientConf *tls.Config) (cli, srv net.Conn, raw *countingConn, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		conn net.Conn
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{nil, err}
			return
		}
		sc, _, err := Credentials(serverConf).ServerHandshake(c)
		if err != nil {
			c.Close()
		}
		done <- result{sc, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw = &countingConn{Conn: c}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cli, _, cerr := Credentials(clientConf).ClientHandshake(ctx, "localhost", raw)
	r := <-done
	if cerr != nil {
		c.Close()
		if r.conn != nil {
			r.conn.Close()
		}
		return nil, nil, nil, cerr
	}
	if r.err != nil {
		cli.Close()
		return nil, nil, nil, r.err
	}
	t.Cleanup(func() { cli.Close(); r.conn.Close() })
	return cli, r.conn, raw, nil
}

func TestOneWriteLeavesInOneSocketWrite(t *testing.T) {
	sc, cc := tlsPair(t)
	cli, srv, raw, err := handshake(t, sc, cc)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 1<<20) // 64 TLS records of 16 KiB
	if _, err := rand.Read(msg); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		b := make([]byte, len(msg))
		_, err := io.ReadFull(srv, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	before := raw.writes.Load()
	if n, err := cli.Write(msg); err != nil || n != len(msg) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if w := raw.writes.Load() - before; w != 1 {
		t.Errorf("a 1 MiB Write made %d socket writes, want 1", w)
	}
	if b := <-got; !bytes.Equal(b, msg) {
		t.Fatal("the server read different bytes than the client wrote")
	}
}

func TestBothWaysAtOnce(t *testing.T) {
	sc, cc := tlsPair(t)
	cli, srv, _, err := handshake(t, sc, cc)
	if err != nil {
		t.Fatal(err)
	}
	// Each side writes while the other does: a batch held under a lock
	// must not stop the reads that drain the peer.
	const n, size = 40, 100 << 10
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, pair := range [][2]net.Conn{{cli, srv}, {srv, cli}} {
		w, r := pair[0], pair[1]
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := bytes.Repeat([]byte{'x'}, size)
			for range n {
				if _, err := w.Write(buf); err != nil {
					errs <- err
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, n*size)
			if _, err := io.ReadFull(r, buf); err != nil {
				errs <- err
				return
			}
			if bytes.Count(buf, []byte{'x'}) != n*size {
				errs <- io.ErrUnexpectedEOF
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHandshakeFailsWithoutTrust(t *testing.T) {
	sc, _ := tlsPair(t)
	_, other := tlsPair(t) // a client trusting a different certificate
	if _, _, _, err := handshake(t, sc, other); err == nil {
		t.Fatal("handshake with an untrusted server certificate succeeded")
	}
}

func TestCloneKeepsBatching(t *testing.T) {
	_, cc := tlsPair(t)
	var c credentials.TransportCredentials = Credentials(cc).Clone()
	if _, ok := c.(*batchingCreds); !ok {
		t.Fatalf("Clone returned %T", c)
	}
}
