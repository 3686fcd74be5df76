package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/pki"
)

// TestAdminListenerTLSNegatives: every bad client is refused by admin's
// HTTPS listener (or, for a bad server, by a good client), and admin keeps
// serving good clients after each.
func TestAdminListenerTLSNegatives(t *testing.T) {
	pkiDir := initPKI(t)
	a := startAdmin(t, pkiDir, nil)
	ca, err := pki.LoadCAFiles(pkiDir+"/"+pki.CAFileName, pkiDir+"/"+pki.CAKeyFileName, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.CreateCA(pki.CAOptions{CommonName: "other-ca"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	good := httpsClient(t, pkiDir, "operator").Transport.(*http.Transport).TLSClientConfig
	withCert := func(kp *pki.KeyPair, err error) *tls.Config {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cfg := good.Clone()
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		return cfg
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		cfg  func() *tls.Config
		why  string // fragment of the handshake error
	}{
		{"no client certificate", func() *tls.Config {
			cfg := good.Clone()
			cfg.GetClientCertificate = nil
			return cfg
		}, "certificate required"},
		{"client certificate from another CA", func() *tls.Config {
			return withCert(other.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileClient}))
		}, "unknown certificate authority"},
		{"expired client certificate", func() *tls.Config {
			return withCert(ca.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileClient, NotBefore: now.Add(-48 * time.Hour), Validity: time.Hour}))
		}, "expired certificate"},
		{"not yet valid client certificate", func() *tls.Config {
			return withCert(ca.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileClient, NotBefore: now.Add(24 * time.Hour), Validity: time.Hour}))
		}, "expired certificate"}, // crypto/tls sends one alert for both sides of the window
		{"server-only certificate used as a client", func() *tls.Config {
			return withCert(ca.Issue(pki.IssueRequest{CommonName: "operator", Profile: pki.ProfileServer, DNSNames: []string{"x"}}))
		}, "bad certificate"},
		{"server name not in admin's SANs", func() *tls.Config {
			r, err := pki.NewReloader(pki.DirFiles(pkiDir, "operator"), pki.ReloaderOptions{}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := r.ClientConfig("admin.other.example")
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}, "admin.other.example"},
		{"TLS 1.2 only client", func() *tls.Config {
			cfg := good.Clone()
			cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			return cfg
		}, "protocol version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: tc.cfg()}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + a.addr + "/healthz")
			if err == nil {
				resp.Body.Close()
				t.Fatalf("served with status %d", resp.StatusCode)
			}
			// Admin refuses by alert; when the alert races with the
			// client's write the client sees only the cut connection. A
			// name mismatch is the client's own refusal.
			cut := strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")
			if !strings.Contains(err.Error(), tc.why) && (tc.why == "admin.other.example" || !cut) {
				t.Fatalf("refused for another reason: %v (want %q)", err, tc.why)
			}
			expectServing(t, a, pkiDir)
		})
	}
	t.Run("plaintext client", func(t *testing.T) {
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + a.addr + "/healthz")
		if err == nil {
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plaintext request served")
			}
		}
		expectServing(t, a, pkiDir)
	})
	t.Run("client-only certificate used as the server", func(t *testing.T) {
		// An admin serving a CA-signed certificate with the right SANs but
		// only clientAuth: good clients refuse it, since it lacks
		// serverAuth (the client profile carries no SANs, so the
		// certificate is made by hand).
		certFile, keyFile := clientOnlyWithSANs(t, ca)
		bad := startAdmin(t, pkiDir, func(c *serveConfig) { c.TLSCert, c.TLSKey = certFile, keyFile })
		op := httpsClient(t, pkiDir, "operator")
		defer closeIdle(op)
		resp, err := op.Get("https://" + bad.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			t.Fatal("client accepted a client-only server certificate")
		}
		if !strings.Contains(err.Error(), "incompatible key usage") {
			t.Fatalf("refused for another reason: %v", err)
		}
	})
}

// expectServing proves admin still serves a good client.
func expectServing(tb testing.TB, a *adminFixture, pkiDir string) {
	tb.Helper()
	c := httpsClient(tb, pkiDir, "operator")
	defer closeIdle(c)
	resp, err := c.Get("https://" + a.addr + "/healthz")
	if err != nil {
		tb.Fatalf("good client refused after a bad one: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("good client got %d", resp.StatusCode)
	}
}

// clientOnlyWithSANs writes a key pair signed by ca for CN admin with the
// SANs 127.0.0.1 and localhost but only the clientAuth usage.
func clientOnlyWithSANs(tb testing.TB, ca *pki.CA) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "admin"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Certificate(), &key.PublicKey, ca.Signer())
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

// TestAdminCertificateRotation: replacing admin's certificate files makes
// new handshakes present the new certificate, while a request held open
// on a connection made before (a policy watch) still completes.
func TestAdminCertificateRotation(t *testing.T) {
	pkiDir := initPKI(t)
	a := startAdmin(t, pkiDir, nil)
	ca, err := pki.LoadCAFiles(filepath.Join(pkiDir, pki.CAFileName), filepath.Join(pkiDir, pki.CAKeyFileName), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c := httpsClient(t, pkiDir, "operator")
		c.Transport.(*http.Transport).DisableKeepAlives = true
		resp, err := c.Get("https://" + a.addr + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Text(16)
	}
	before := serial()

	held := httpsClient(t, pkiDir, "operator")
	defer closeIdle(held)
	watch := make(chan int, 1)
	go func() {
		resp, err := held.Get("https://" + a.addr + "/v1/acl/policy?after=1&wait=60s")
		if err != nil {
			t.Error(err)
			watch <- 0
			return
		}
		resp.Body.Close()
		watch <- resp.StatusCode
	}()

	next, err := ca.Issue(pki.IssueRequest{CommonName: "admin", Profile: pki.ProfilePeer, DNSNames: []string{"admin", "localhost"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	files := pki.DirFiles(pkiDir, "admin")
	writeAtomic(t, files.KeyFile, next.KeyPEM)
	writeAtomic(t, files.CertFile, next.CertPEM)
	want := next.Cert.SerialNumber.Text(16)
	deadline := time.Now().Add(10 * time.Second)
	for got := serial(); got != want; got = serial() {
		if got != before {
			t.Fatalf("serial %s is neither the old nor the new one", got)
		}
		if time.Now().After(deadline) {
			t.Fatal("new handshakes still present the old certificate")
		}
		time.Sleep(50 * time.Millisecond) // the reloader stats files at most once a second
	}

	op := httpsClient(t, pkiDir, "operator")
	defer closeIdle(op)
	if code, body := call(t, op, http.MethodPost, "https://"+a.addr+"/v1/acl/rules", `{"rules": [{"subject": "x", "object": "t", "action": "produce"}]}`); code != http.StatusOK {
		t.Fatalf("add rule = %d %s", code, body)
	}
	select {
	case code := <-watch:
		if code != http.StatusOK {
			t.Fatalf("watch held across the rotation answered %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch held across the rotation never answered")
	}
}

// writeAtomic replaces path through a rename, as an operator's rotation
// would.
func writeAtomic(tb testing.TB, path string, data []byte) {
	tb.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		tb.Fatal(err)
	}
}
