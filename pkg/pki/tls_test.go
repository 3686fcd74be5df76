package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var loopback = []net.IP{net.ParseIP("127.0.0.1")}

// tlsFixture is a CA, a server identity broker-1 serving on loopback and a
// client identity operator.
type tlsFixture struct {
	ca     *CA
	dir    string
	server *echoServer
	srv    *Reloader
	client *Reloader
}

func newTLSFixture(t *testing.T) *tlsFixture {
	t.Helper()
	ca := newTestCA(t, "strata-ca")
	dir := t.TempDir()
	srvFiles := writeIdentity(t, dir, "broker-1", ca.CertPEM(),
		issue(t, ca, IssueRequest{CommonName: "broker-1", Profile: ProfilePeer, DNSNames: []string{"broker-1"}, IPs: loopback}))
	cliFiles := writeIdentity(t, dir, "operator", ca.CertPEM(),
		issue(t, ca, IssueRequest{CommonName: "operator", Profile: ProfileClient}))
	f := &tlsFixture{ca: ca, dir: dir, srv: newReloader(t, srvFiles, time.Nanosecond), client: newReloader(t, cliFiles, 0)}
	f.server = startEchoServer(t, f.srv.ServerConfig())
	return f
}

func (f *tlsFixture) clientConfig(t *testing.T, serverName string) *tls.Config {
	t.Helper()
	cfg, err := f.client.ClientConfig(serverName)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// rawClientConfig presents certs (none if empty) whatever CAs the server
// asks for, and verifies the server against the fixture's CA.
func (f *tlsFixture) rawClientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: "broker-1",
		RootCAs:    f.ca.CertPool(),
		// Certificates would be filtered by the server's acceptable CAs;
		// the callback sends the certificate regardless, as an attacker would.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if len(certs) == 0 {
				return &tls.Certificate{}, nil
			}
			return &certs[0], nil
		},
	}
}

// expectGood checks that a good client still gets through.
func (f *tlsFixture) expectGood(t *testing.T) {
	t.Helper()
	if _, err := dialEcho(t, f.server.addr(), f.clientConfig(t, "broker-1")); err != nil {
		t.Fatalf("good client refused: %v", err)
	}
	if res := f.server.next(t); res.err != nil || res.identity != "operator" {
		t.Fatalf("server saw %+v, want identity operator", res)
	}
}

func TestMutualTLSGood(t *testing.T) {
	f := newTLSFixture(t)
	for _, name := range []string{"broker-1", "127.0.0.1"} {
		t.Run(name, func(t *testing.T) {
			c, err := dialEcho(t, f.server.addr(), f.clientConfig(t, name))
			if err != nil {
				t.Fatal(err)
			}
			if v := c.ConnectionState().Version; v != tls.VersionTLS13 {
				t.Fatalf("version %x", v)
			}
			if res := f.server.next(t); res.err != nil || res.identity != "operator" {
				t.Fatalf("server saw %+v", res)
			}
		})
	}
}

// TestMutualTLSRejects: each bad client (or bad server, seen from a good
// client) fails, and the server keeps serving good clients after each.
func TestMutualTLSRejects(t *testing.T) {
	f := newTLSFixture(t)
	other := newTestCA(t, "other-ca")
	now := time.Now()

	clientCert := func(ca *CA, req IssueRequest) tls.Certificate {
		return tlsCert(t, issue(t, ca, req))
	}
	for _, tc := range []struct {
		name string
		cfg  func(t *testing.T) *tls.Config
		// serverSees is true when the server's handshake must fail (the
		// server is the one refusing).
		serverSees bool
		// why is a fragment of the refusing side's error: the reason.
		why string
	}{
		{"no client certificate", func(t *testing.T) *tls.Config { return f.rawClientConfig() }, true, "didn't provide a certificate"},
		{"client cert from another CA", func(t *testing.T) *tls.Config {
			return f.rawClientConfig(clientCert(other, IssueRequest{CommonName: "operator", Profile: ProfileClient}))
		}, true, "signed by unknown authority"},
		{"expired client cert", func(t *testing.T) *tls.Config {
			return f.rawClientConfig(clientCert(f.ca, IssueRequest{CommonName: "operator", Profile: ProfileClient, NotBefore: now.Add(-48 * time.Hour), Validity: time.Hour}))
		}, true, "is after"},
		{"not yet valid client cert", func(t *testing.T) *tls.Config {
			return f.rawClientConfig(clientCert(f.ca, IssueRequest{CommonName: "operator", Profile: ProfileClient, NotBefore: now.Add(24 * time.Hour), Validity: time.Hour}))
		}, true, "is before"},
		{"server-only cert used as client", func(t *testing.T) *tls.Config {
			return f.rawClientConfig(clientCert(f.ca, IssueRequest{CommonName: "broker-7", Profile: ProfileServer, DNSNames: []string{"broker-7"}}))
		}, true, "incompatible key usage"},
		{"server name not in SANs", func(t *testing.T) *tls.Config { return f.clientConfig(t, "broker-2") }, false, "not broker-2"},
		{"TLS 1.2 only client", func(t *testing.T) *tls.Config {
			cfg := f.clientConfig(t, "broker-1")
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return cfg
		}, true, "unsupported versions"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dialEcho(t, f.server.addr(), tc.cfg(t))
			if err == nil {
				t.Fatal("connection succeeded")
			}
			res := f.server.next(t)
			if got := fmt.Sprintf("client: %v; server: %v", err, res.err); !strings.Contains(got, tc.why) {
				t.Fatalf("refused for another reason: %s (want %q)", got, tc.why)
			}
			if tc.serverSees && res.err == nil {
				t.Fatalf("server accepted handshake with identity %q", res.identity)
			}
			f.expectGood(t)
		})
	}

	t.Run("plaintext client", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", f.server.addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if res := f.server.next(t); res.err == nil {
			t.Fatal("server accepted plaintext")
		}
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if n > 0 && string(buf[:n]) == "GET / HTTP/1.1\r\n" {
			t.Fatal("plaintext echoed")
		}
		f.expectGood(t)
	})
}

// TestCertificateRoleChecks: a client-only certificate cannot serve, a
// server-only one cannot authenticate a client.
func TestCertificateRoleChecks(t *testing.T) {
	ca := newTestCA(t, "strata-ca")
	dir := t.TempDir()
	cliFiles := writeIdentity(t, dir, "operator", ca.CertPEM(), issue(t, ca, IssueRequest{CommonName: "operator", Profile: ProfileClient}))
	client := newReloader(t, cliFiles, 0)

	t.Run("client-only cert used as server", func(t *testing.T) {
		// Built by hand so that only the EKU is wrong: SAN 127.0.0.1 is there.
		kp := handBuiltCert(t, ca, "sneaky", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, loopback)
		srv := newReloader(t, writeIdentity(t, t.TempDir(), "sneaky", ca.CertPEM(), kp), 0)
		s := startEchoServer(t, srv.ServerConfig())
		cfg, err := client.ClientConfig("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = dialEcho(t, s.addr(), cfg)
		var inv x509.CertificateInvalidError
		if !errors.As(err, &inv) || inv.Reason != x509.IncompatibleUsage {
			t.Fatalf("err = %v, want incompatible key usage", err)
		}
		s.next(t)
	})
	t.Run("CheckExtKeyUsage", func(t *testing.T) {
		if err := CheckExtKeyUsage(client.Leaf(), x509.ExtKeyUsageServerAuth); !errors.Is(err, ErrWrongKeyUsage) {
			t.Fatalf("err = %v", err)
		}
		if err := CheckExtKeyUsage(client.Leaf(), x509.ExtKeyUsageClientAuth); err != nil {
			t.Fatal(err)
		}
	})
}

func TestServerFromOtherCARejectedByClient(t *testing.T) {
	f := newTLSFixture(t)
	other := newTestCA(t, "other-ca")
	srv := newReloader(t, writeIdentity(t, t.TempDir(), "broker-1", other.CertPEM(),
		issue(t, other, IssueRequest{CommonName: "broker-1", Profile: ProfilePeer, IPs: loopback})), 0)
	s := startEchoServer(t, srv.ServerConfig())
	if _, err := dialEcho(t, s.addr(), f.clientConfig(t, "127.0.0.1")); err == nil {
		t.Fatal("client trusted a server from another CA")
	}
	s.next(t)
}

func TestClientConfigNeedsServerName(t *testing.T) {
	f := newTLSFixture(t)
	if _, err := f.client.ClientConfig(""); !errors.Is(err, ErrNoServerName) {
		t.Fatalf("err = %v", err)
	}
}

func TestIdentityWithoutVerifiedChain(t *testing.T) {
	if _, err := Identity(tls.ConnectionState{}); !errors.Is(err, ErrNoVerifiedCert) {
		t.Fatalf("err = %v", err)
	}
}

// TestRotation: replacing the files on disk makes new handshakes present the
// new certificate, while a connection opened before keeps working.
func TestRotation(t *testing.T) {
	f := newTLSFixture(t)
	oldSerial := f.srv.Leaf().SerialNumber

	before, err := dialEcho(t, f.server.addr(), f.clientConfig(t, "broker-1"))
	if err != nil {
		t.Fatal(err)
	}
	f.server.next(t)
	if before.ConnectionState().PeerCertificates[0].SerialNumber.Cmp(oldSerial) != 0 {
		t.Fatal("first connection did not see the original certificate")
	}

	next := issue(t, f.ca, IssueRequest{CommonName: "broker-1", Profile: ProfilePeer, DNSNames: []string{"broker-1"}, IPs: loopback})
	writeIdentity(t, f.dir, "broker-1", f.ca.CertPEM(), next)

	after, err := dialEcho(t, f.server.addr(), f.clientConfig(t, "broker-1"))
	if err != nil {
		t.Fatal(err)
	}
	f.server.next(t)
	if got := after.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(next.Cert.SerialNumber) != 0 {
		t.Fatalf("new handshake presented serial %x, want the rotated %x", got, next.Cert.SerialNumber)
	}
	if err := echo(before); err != nil {
		t.Fatalf("connection opened before rotation broke: %v", err)
	}
}

// TestReloadKeepsOldOnBadFiles: a broken file set is refused, the previous
// certificate stays in force, and a later good set is picked up by Reload.
func TestReloadKeepsOldOnBadFiles(t *testing.T) {
	ca := newTestCA(t, "strata-ca")
	dir := t.TempDir()
	first := issue(t, ca, IssueRequest{CommonName: "broker-1", Profile: ProfilePeer, IPs: loopback})
	files := writeIdentity(t, dir, "broker-1", ca.CertPEM(), first)
	r := newReloader(t, files, time.Hour) // only explicit reloads

	second := issue(t, ca, IssueRequest{CommonName: "broker-1", Profile: ProfilePeer, IPs: loopback})
	other := newTestCA(t, "other")
	foreign := issue(t, other, IssueRequest{CommonName: "broker-1", Profile: ProfilePeer, IPs: loopback})
	for _, tc := range []struct {
		name      string
		cert, key []byte
	}{
		{"garbage certificate", []byte("not pem"), second.KeyPEM},
		{"key of another cert", second.CertPEM, first.KeyPEM},
		{"cert of another CA", foreign.CertPEM, foreign.KeyPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(files.CertFile, tc.cert, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(files.KeyFile, tc.key, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := r.Reload(); err == nil {
				t.Fatal("Reload accepted a bad file set")
			}
			if r.Leaf().SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
				t.Fatal("bad file set replaced the certificate in force")
			}
		})
	}
	writeIdentity(t, dir, "broker-1", ca.CertPEM(), second)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Leaf().SerialNumber.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatal("Reload did not pick up the good file set")
	}
}
