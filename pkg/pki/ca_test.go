package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestCreateCA(t *testing.T) {
	ca := newTestCA(t, "strata-test-ca")
	c := ca.Certificate()
	if !c.IsCA || c.Subject.CommonName != "strata-test-ca" {
		t.Fatalf("CA cert: IsCA=%v CN=%q", c.IsCA, c.Subject.CommonName)
	}
	if c.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("CA key algorithm %v, want ECDSA", c.PublicKeyAlgorithm)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Fatalf("CA not self-signed: %v", err)
	}
	reloaded, err := LoadCA(ca.CertPEM(), ca.KeyPEM(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !reloaded.Certificate().Equal(c) {
		t.Fatal("LoadCA returned a different certificate")
	}
}

func TestCreateCANeedsName(t *testing.T) {
	if _, err := CreateCA(CAOptions{}, nil); !errors.Is(err, ErrEmptyCommonName) {
		t.Fatalf("err = %v, want ErrEmptyCommonName", err)
	}
}

func TestLoadCARejects(t *testing.T) {
	ca := newTestCA(t, "a")
	other := newTestCA(t, "b")
	leaf := issue(t, ca, IssueRequest{CommonName: "x", Profile: ProfileClient})
	for _, tc := range []struct {
		name      string
		cert, key []byte
		want      error
	}{
		{"key of another CA", ca.CertPEM(), other.KeyPEM(), ErrKeyMismatch},
		{"leaf is not a CA", leaf.CertPEM, leaf.KeyPEM, ErrNotCA},
		{"garbage cert", []byte("nope"), ca.KeyPEM(), ErrBadPEM},
		{"garbage key", ca.CertPEM(), []byte("nope"), ErrBadPEM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadCA(tc.cert, tc.key, nil); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestIssueProfiles(t *testing.T) {
	ca := newTestCA(t, "ca")
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	for _, tc := range []struct {
		profile  Profile
		dns      []string
		ips      []net.IP
		wantEKU  []x509.ExtKeyUsage
		wantSANs bool
	}{
		{ProfileServer, []string{"broker-1", "localhost"}, ips, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, true},
		{ProfileClient, nil, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, false},
		{ProfilePeer, []string{"replicator-1"}, ips, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, true},
	} {
		t.Run(string(tc.profile), func(t *testing.T) {
			kp := issue(t, ca, IssueRequest{CommonName: "id-" + string(tc.profile), Profile: tc.profile, DNSNames: tc.dns, IPs: tc.ips})
			c := kp.Cert
			if c.Subject.CommonName != "id-"+string(tc.profile) {
				t.Fatalf("CN = %q", c.Subject.CommonName)
			}
			if c.IsCA {
				t.Fatal("leaf is a CA")
			}
			got := slices.Clone(c.ExtKeyUsage)
			slices.Sort(got)
			want := slices.Clone(tc.wantEKU)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("EKU = %v, want %v", got, want)
			}
			if tc.wantSANs {
				if !slices.Equal(c.DNSNames, tc.dns) || len(c.IPAddresses) != 1 || !c.IPAddresses[0].Equal(ips[0]) {
					t.Fatalf("SANs = %v %v, want %v %v", c.DNSNames, c.IPAddresses, tc.dns, ips)
				}
			} else if len(c.DNSNames)+len(c.IPAddresses) != 0 {
				t.Fatalf("client cert has SANs %v %v", c.DNSNames, c.IPAddresses)
			}
			if d := c.NotAfter.Sub(c.NotBefore); d > MaxLeafValidity || d < MaxLeafValidity-time.Minute {
				t.Fatalf("validity %s, want the profile max %s", d, MaxLeafValidity)
			}
			if err := c.CheckSignatureFrom(ca.Certificate()); err != nil {
				t.Fatalf("not signed by CA: %v", err)
			}
			if _, err := c.Verify(x509.VerifyOptions{Roots: ca.CertPool(), KeyUsages: tc.wantEKU}); err != nil {
				t.Fatalf("verify: %v", err)
			}
		})
	}
}

func TestIssueValidity(t *testing.T) {
	ca := newTestCA(t, "ca")
	kp := issue(t, ca, IssueRequest{CommonName: "short", Profile: ProfileClient, Validity: time.Hour})
	if d := kp.Cert.NotAfter.Sub(kp.Cert.NotBefore); d != time.Hour {
		t.Fatalf("validity %s, want 1h", d)
	}
	nb := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	kp = issue(t, ca, IssueRequest{CommonName: "old", Profile: ProfileClient, Validity: time.Hour, NotBefore: nb})
	if !kp.Cert.NotBefore.Equal(nb) || !kp.Cert.NotAfter.Equal(nb.Add(time.Hour)) {
		t.Fatalf("window %s..%s, want %s..+1h", kp.Cert.NotBefore, kp.Cert.NotAfter, nb)
	}
}

func TestIssueRefuses(t *testing.T) {
	ca := newTestCA(t, "ca")
	for _, tc := range []struct {
		name string
		req  IssueRequest
		want error
	}{
		{"validity above cap", IssueRequest{CommonName: "x", Profile: ProfileClient, Validity: MaxLeafValidity + time.Second}, ErrValidityTooLong},
		{"negative validity", IssueRequest{CommonName: "x", Profile: ProfileClient, Validity: -time.Second}, ErrValidityTooLong},
		{"unknown profile", IssueRequest{CommonName: "x", Profile: "ca"}, ErrUnknownProfile},
		{"empty CN", IssueRequest{Profile: ProfileClient}, ErrEmptyCommonName},
		{"server without SANs", IssueRequest{CommonName: "x", Profile: ProfileServer}, ErrNoHosts},
		{"client with SANs", IssueRequest{CommonName: "x", Profile: ProfileClient, DNSNames: []string{"x"}}, ErrHostsNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.Issue(tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSignCSR(t *testing.T) {
	ca := newTestCA(t, "ca")
	csrPEM, keyPEM, err := NewCSR("broker-9", []string{"broker-9"}, []net.IP{net.ParseIP("10.0.0.9")})
	if err != nil {
		t.Fatal(err)
	}
	parse := func(t *testing.T, certPEM []byte) *x509.Certificate {
		t.Helper()
		b, _ := pem.Decode(certPEM)
		if b == nil {
			t.Fatal("no PEM")
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	t.Run("peer keeps CSR SANs", func(t *testing.T) {
		certPEM, err := ca.SignCSR(CSRSignRequest{CSRPEM: csrPEM, Profile: ProfilePeer})
		if err != nil {
			t.Fatal(err)
		}
		c := parse(t, certPEM)
		if c.Subject.CommonName != "broker-9" || !slices.Equal(c.DNSNames, []string{"broker-9"}) || len(c.IPAddresses) != 1 {
			t.Fatalf("cert CN=%q DNS=%v IP=%v", c.Subject.CommonName, c.DNSNames, c.IPAddresses)
		}
		if len(c.ExtKeyUsage) != 2 {
			t.Fatalf("EKU = %v", c.ExtKeyUsage)
		}
		if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
			t.Fatalf("cert does not match the CSR key: %v", err)
		}
	})
	t.Run("server with overriding SANs", func(t *testing.T) {
		certPEM, err := ca.SignCSR(CSRSignRequest{CSRPEM: csrPEM, Profile: ProfileServer, DNSNames: []string{"b9.example"}})
		if err != nil {
			t.Fatal(err)
		}
		c := parse(t, certPEM)
		if !slices.Equal(c.DNSNames, []string{"b9.example"}) || len(c.IPAddresses) != 0 {
			t.Fatalf("SANs = %v %v", c.DNSNames, c.IPAddresses)
		}
	})
	t.Run("client drops CSR SANs", func(t *testing.T) {
		certPEM, err := ca.SignCSR(CSRSignRequest{CSRPEM: csrPEM, Profile: ProfileClient, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c := parse(t, certPEM)
		if len(c.DNSNames)+len(c.IPAddresses) != 0 || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			t.Fatalf("SANs %v %v EKU %v", c.DNSNames, c.IPAddresses, c.ExtKeyUsage)
		}
		if d := c.NotAfter.Sub(c.NotBefore); d != time.Hour {
			t.Fatalf("validity %s", d)
		}
	})

	noCN := csrWithoutCN(t)
	plain, _, err := NewCSR("plain", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(string(csrPEM))
	if b, _ := pem.Decode(tampered); b != nil {
		b.Bytes[len(b.Bytes)-5] ^= 0xff
		tampered = pem.EncodeToMemory(b)
	}
	for _, tc := range []struct {
		name string
		req  CSRSignRequest
		want error
	}{
		{"above cap", CSRSignRequest{CSRPEM: csrPEM, Profile: ProfilePeer, Validity: 2 * MaxLeafValidity}, ErrValidityTooLong},
		{"not PEM", CSRSignRequest{CSRPEM: []byte("hello"), Profile: ProfileClient}, ErrBadPEM},
		{"cert instead of CSR", CSRSignRequest{CSRPEM: ca.CertPEM(), Profile: ProfileClient}, ErrBadPEM},
		{"unknown profile", CSRSignRequest{CSRPEM: csrPEM, Profile: "root"}, ErrUnknownProfile},
		{"empty CN", CSRSignRequest{CSRPEM: noCN, Profile: ProfileClient}, ErrEmptyCommonName},
		{"server without any SAN", CSRSignRequest{CSRPEM: plain, Profile: ProfileServer}, ErrNoHosts},
		{"client with SANs", CSRSignRequest{CSRPEM: plain, Profile: ProfileClient, DNSNames: []string{"x"}}, ErrHostsNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ca.SignCSR(tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("tampered signature", func(t *testing.T) {
		if _, err := ca.SignCSR(CSRSignRequest{CSRPEM: tampered, Profile: ProfilePeer}); err == nil {
			t.Fatal("tampered CSR was signed")
		}
	})
}

func csrWithoutCN(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"x"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
