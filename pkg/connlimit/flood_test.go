package connlimit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/connlimit/flood"
)

// tlsPair returns server and client configs trusting one self-signed
// certificate for "localhost", client certificates required.
func tlsPair(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
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
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	return server, client
}

// serveEcho serves TLS echo on ln with a handshake deadline, as a server
// behind a Listener does, until the test ends. It counts the handshakes
// that missed the deadline in timeouts.
func serveEcho(tb testing.TB, ln net.Listener, cfg *tls.Config, handshake time.Duration, timeouts *atomic.Int64) {
	tb.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]struct{})
	)
	serve := func(c net.Conn) {
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			c.Close() // the client may have closed first; the error says nothing
		}()
		if err := c.SetDeadline(time.Now().Add(handshake)); err != nil {
			return
		}
		tc := tls.Server(c, cfg)
		if err := tc.Handshake(); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				timeouts.Add(1)
			}
			return
		}
		if err := c.SetDeadline(time.Time{}); err != nil {
			return
		}
		if _, err := io.Copy(tc, tc); err != nil {
			tb.Logf("echo: %v", err)
		}
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() { serve(c) })
		}
	})
	tb.Cleanup(func() {
		if err := ln.Close(); err != nil {
			tb.Error(err)
		}
		mu.Lock()
		for c := range conns {
			c.Close() // ends its handler; the error says nothing
		}
		mu.Unlock()
		wg.Wait()
	})
}

// TestFloodHeldOff: a flood from one address of connections that never
// send a byte or stall mid-handshake takes only its per-address share of
// the slots; each of its connections is closed by the handshake deadline
// (or at once, over the cap) and counted; and a client from another
// address completes a TLS exchange while the flood goes on.
func TestFloodHeldOff(t *testing.T) {
	const (
		handshake = 300 * time.Millisecond
		perIP     = 20
		// slack is what a loaded machine under -race may add to the
		// deadline before the server's close reaches the client.
		slack = 700 * time.Millisecond
	)
	serverTLS, clientTLS := tlsPair(t)
	m := NewMetrics("test", "svc", "grpc")
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := NewListener(inner, Options{MaxConns: 100, MaxConnsPerIP: perIP, Metrics: m, Logger: zaptest.NewLogger(t)})
	var timeouts atomic.Int64
	serveEcho(t, ln, serverTLS, handshake, &timeouts)

	f, err := flood.Start(flood.Options{
		Addr: ln.Addr().String(), From: "127.0.0.1", Conns: perIP + 10,
		Kinds: []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake},
		Bound: 5 * time.Second, MaxDials: 5000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop() })
	refusedPerIP := func() float64 { return testutil.ToFloat64(m.refused.WithLabelValues(LimitPerIP)) }
	flood.Until(t, 5*time.Second, "the flood fills its address's slots", func() bool { return refusedPerIP() > 0 })

	d := tls.Dialer{NetDialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}, Config: clientTLS}
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("a client from another address during the flood: %v", err)
	}
	defer c.Close() // closed below; the error says nothing
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo = %q, %v", buf, err)
	}
	ln.mu.Lock()
	held := ln.perIP[netip.MustParsePrefix("127.0.0.1/32")]
	ln.mu.Unlock()
	if held == 0 {
		t.Fatal("the flood held no slot during the exchange: the test proves nothing")
	}
	// Let the flood live through at least two handshake deadlines.
	flood.Until(t, 10*time.Second, "flood connections closed by the deadline", func() bool {
		// The server counts a timeout before the flood reads the close,
		// so wait for the flood to have seen them too.
		snap := f.Snapshot()
		return timeouts.Load() >= 2*perIP && snap.Count(flood.Idle, handshake) > 0 &&
			snap.Count(flood.PartialHello, handshake) > 0 && snap.Count(flood.StalledHandshake, handshake) > 0
	})
	res := f.Stop()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	if res.HeldOpen != 0 || len(res.Errors) != 0 {
		t.Fatalf("flood: %d connections held open past %v, errors %v", res.HeldOpen, 5*time.Second, res.Errors)
	}
	if longest := res.Longest(); longest > handshake+slack {
		t.Errorf("a flood connection lived %v, want at most the %v deadline (+%v slack)", longest, handshake, slack)
	}
	atDeadline, refused := 0, 0
	for _, cl := range res.Closed {
		if cl.Lifetime >= handshake {
			atDeadline++
		} else {
			refused++
		}
	}
	t.Logf("flood: %d dials, %d closed by the deadline, %d refused at once; longest %v", res.Dials, atDeadline, refused, res.Longest())
	for _, k := range []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake} {
		if res.Count(k, handshake) == 0 {
			t.Errorf("no %s connection was admitted and closed by the deadline", k)
		}
	}
	// A connection the server admitted lives at least the deadline; a
	// shorter one was refused, and counted (the server may count a few
	// more, whose close the flood did not see before Stop).
	if got := refusedPerIP(); got < float64(refused) || got > float64(res.Dials) {
		t.Errorf("refused{per_ip} = %v, want between the %d the flood saw and its %d dials", got, refused, res.Dials)
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues(LimitTotal)); got != 0 {
		t.Errorf("refused{total} = %v, want 0: the flood stayed within its address's share", got)
	}
	flood.Until(t, 5*time.Second, "every slot given back", func() bool { return ln.Open() == 0 })
}
