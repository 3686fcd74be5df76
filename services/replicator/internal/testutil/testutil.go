// Package testutil holds test helpers: a deadline-bounded poll and an
// in-test certificate authority.
package testutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Eventually calls cond every tick until it returns nil or timeout passes,
// then fails the test with cond's last error. An error wrapped with
// Permanent fails the test at once.
func Eventually(tb testing.TB, timeout time.Duration, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		var p permanent
		if errors.As(err, &p) {
			tb.Fatal(p.err)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s: %v", timeout, err)
		}
		<-tick.C
	}
}

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

// Permanent marks an error that no amount of waiting will fix.
func Permanent(err error) error { return permanent{err} }

// CA is an in-test certificate authority.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
	PEM  []byte
}

// NewCA makes a CA.
func NewCA(tb testing.TB) *CA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "strata test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, Pool: pool}
}

// Issue returns a peer (server and client auth) certificate for cn, valid
// for 127.0.0.1 and localhost.
func (ca *CA) Issue(tb testing.TB, cn string) tls.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// ServerTLS returns a server config for cn requiring client certs from ca.
func (ca *CA) ServerTLS(tb testing.TB, cn string) *tls.Config {
	tb.Helper()
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ca.Issue(tb, cn)},
		ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
}

// ClientTLS returns a client config for cn trusting ca.
func (ca *CA) ClientTLS(tb testing.TB, cn string) *tls.Config {
	tb.Helper()
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ca.Issue(tb, cn)}, RootCAs: ca.Pool}
}

// handedOut is every port FreePort returned in this test binary.
var handedOut sync.Map

// FreePort returns a loopback port that was free a moment ago (for
// listeners a library opens itself, such as memberlist's TCP and UDP pair),
// and that it never returned before.
func FreePort(tb testing.TB) int {
	tb.Helper()
	for range 200 {
		// Below Linux's ephemeral range (32768-60999 by default): a port
		// the kernel hands out for ":0" may be taken by an outgoing
		// connection between this check and the node's bind. In
		// 26000-31999: test/cluster picks from 20000-25999.
		port := 26000 + mrand.IntN(6000)
		// A port handed out earlier may not be bound yet: never twice.
		if _, dup := handedOut.LoadOrStore(port, true); dup {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			continue
		}
		if err := ln.Close(); err != nil {
			tb.Fatal(err)
		}
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", itoa(port)))
		if err != nil {
			continue
		}
		if err := pc.Close(); err != nil {
			tb.Fatal(err)
		}
		return port
	}
	tb.Fatal("no free port")
	return 0
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }
