package httpapi

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/pki"
)

// parseBundle checks a certificate answer: the certificate chains to the
// fixture's CA for usage, carries CN name, and (when a key came back)
// matches its key.
func parseBundle(tb testing.TB, f *fixture, b adminapi.CertBundle, name string, usage x509.ExtKeyUsage) *x509.Certificate {
	tb.Helper()
	block, _ := pem.Decode([]byte(b.Cert))
	if block == nil {
		tb.Fatalf("cert is not PEM: %q", b.Cert)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	if cert.Subject.CommonName != name || b.Name != name {
		tb.Fatalf("CN %q / name %q, want %q", cert.Subject.CommonName, b.Name, name)
	}
	if b.CA != string(f.ca.CertPEM()) {
		tb.Fatal("bundle CA is not the cluster CA")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: f.ca.CertPool(), KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		tb.Fatalf("certificate does not verify for %v: %v", usage, err)
	}
	if cert.SerialNumber.Text(16) != b.Serial || !cert.NotAfter.Equal(b.NotAfter) {
		tb.Fatalf("bundle serial/not_after %s/%s disagree with the certificate", b.Serial, b.NotAfter)
	}
	if b.Key != "" {
		if _, err := tls.X509KeyPair([]byte(b.Cert), []byte(b.Key)); err != nil {
			tb.Fatalf("key does not match certificate: %v", err)
		}
	}
	return cert
}

func issueBody(name string, extra string) string {
	return fmt.Sprintf(`{"name": %q%s}`, name, extra)
}

func TestCertIssue(t *testing.T) {
	f := newFixture(t, t.TempDir())
	t.Run("issuer gets a client certificate for a new name", func(t *testing.T) {
		rec := f.do(t, as("issuer"), http.MethodPost, "/v1/certs", issueBody("alice", ""))
		b := decodeRec[adminapi.CertBundle](t, rec, http.StatusCreated)
		cert := parseBundle(t, f, b, "alice", x509.ExtKeyUsageClientAuth)
		if b.Key == "" || b.Profile != "client" {
			t.Fatalf("bundle %+v: want a key and profile client", b)
		}
		if slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || len(cert.DNSNames)+len(cert.IPAddresses) > 0 {
			t.Fatal("client certificate can serve or carries SANs")
		}
		if max := time.Now().Add(pki.MaxLeafValidity); cert.NotAfter.After(max) {
			t.Fatalf("not_after %s beyond the cap %s", cert.NotAfter, max)
		}
		if e := f.auditEntries("audit: certificate issued", "issuer"); len(e) != 1 || e[0].ContextMap()["name"] != "alice" {
			t.Fatalf("audit entries %+v", e)
		}
	})
	t.Run("validity is honoured", func(t *testing.T) {
		b := decodeRec[adminapi.CertBundle](t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs", issueBody("bob", `, "validity": "24h"`)), http.StatusCreated)
		cert := parseBundle(t, f, b, "bob", x509.ExtKeyUsageClientAuth)
		if life := cert.NotAfter.Sub(cert.NotBefore); life != 24*time.Hour {
			t.Fatalf("lifetime %s, want 24h", life)
		}
	})
	t.Run("admin gets a peer certificate for a node", func(t *testing.T) {
		b := decodeRec[adminapi.CertBundle](t, f.do(t, as("operator"), http.MethodPost, "/v1/certs",
			issueBody("broker-9", `, "profile": "peer", "hosts": ["broker-9", "10.0.0.9"]`)), http.StatusCreated)
		cert := parseBundle(t, f, b, "broker-9", x509.ExtKeyUsageServerAuth)
		parseBundle(t, f, b, "broker-9", x509.ExtKeyUsageClientAuth)
		if !slices.Equal(cert.DNSNames, []string{"broker-9"}) || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "10.0.0.9" {
			t.Fatalf("SANs %v %v", cert.DNSNames, cert.IPAddresses)
		}
	})
	t.Run("admin may reissue a name the policy grants", func(t *testing.T) {
		decodeRec[adminapi.CertBundle](t, f.do(t, as("operator"), http.MethodPost, "/v1/certs", issueBody("reader", "")), http.StatusCreated)
	})
}

// TestCertIssueRefusals: every rule, for both routes where it applies.
// The issuer holds create on cluster but is no admin.
func TestCertIssueRefusals(t *testing.T) {
	f := newFixture(t, t.TempDir())
	privileged := []struct{ name, why string }{
		{"admin", "reserved"},
		{"operator", "reserved"},
		{"broker", "reserved"},
		{"replicator", "reserved"},
		{"cluster", "reserved"},
		{"broker-1", "service identity"},
		{"broker-anything", "service identity"},
		{"replicator-3", "service identity"},
		{"reader", "named by the ACL policy"},   // subject of a rule
		{"writers", "named by the ACL policy"},  // a role
		{"team-x-1", "named by the ACL policy"}, // matches a binding pattern
		{"issuer", "named by the ACL policy"},   // the caller itself
	}
	for _, p := range privileged {
		t.Run("issuer refused "+p.name, func(t *testing.T) {
			msg := assertJSONError(t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs", issueBody(p.name, "")), http.StatusForbidden)
			if !strings.Contains(msg, p.why) || !strings.Contains(msg, "only an admin") {
				t.Fatalf("message %q, want it to say %q and only an admin", msg, p.why)
			}
			csr, _, err := pki.NewCSR(p.name, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONError(t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs/csr", `{"csr": `+jsonString(t, string(csr))+`}`), http.StatusForbidden)
		})
	}
	for _, profile := range []string{"server", "peer"} {
		t.Run("issuer refused profile "+profile, func(t *testing.T) {
			assertJSONError(t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs",
				issueBody("newbie", `, "profile": "`+profile+`", "hosts": ["newbie"]`)), http.StatusForbidden)
		})
	}
	unsafe := []string{"", "Alice", "a b", "a*", "orders-*", "a,b", "-a", "a-", ".a", "a/b", "../etc", "a\nb", "é",
		"a\"b", "a#b", strings.Repeat("a", 65)}
	for _, name := range unsafe {
		t.Run(fmt.Sprintf("unsafe name %q", name), func(t *testing.T) {
			// Refused even for an admin.
			msg := assertJSONError(t, f.do(t, as("operator"), http.MethodPost, "/v1/certs", fmt.Sprintf(`{"name": %s}`, jsonString(t, name))), http.StatusBadRequest)
			if !strings.Contains(msg, "safe identity") {
				t.Fatalf("message %q", msg)
			}
		})
	}
	t.Run("longest safe name", func(t *testing.T) {
		decodeRec[adminapi.CertBundle](t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs", issueBody(strings.Repeat("a", 64), "")), http.StatusCreated)
	})
	for _, tc := range []struct{ name, extra string }{
		{"validity over the cap", `, "validity": "8761h"`},
		{"validity negative", `, "validity": "-1h"`},
		{"validity not a duration", `, "validity": "a year"`},
		{"unknown profile", `, "profile": "ca"`},
		{"client with hosts", `, "hosts": ["x.example"]`},
		{"unknown field", `, "is_ca": true`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertJSONError(t, f.do(t, as("operator"), http.MethodPost, "/v1/certs", issueBody("newbie", tc.extra)), http.StatusBadRequest)
		})
	}
	t.Run("peer without hosts", func(t *testing.T) {
		assertJSONError(t, f.do(t, as("operator"), http.MethodPost, "/v1/certs", issueBody("broker-7", `, "profile": "peer"`)), http.StatusBadRequest)
	})
	t.Run("no create permission", func(t *testing.T) {
		assertJSONError(t, f.do(t, as("reader"), http.MethodPost, "/v1/certs", issueBody("newbie", "")), http.StatusForbidden)
	})
	t.Run("refusals are audit-logged", func(t *testing.T) {
		if len(f.auditEntries("audit: certificate refused", "issuer")) == 0 {
			t.Fatal("no refusal audit entry for issuer")
		}
	})
}

func TestCertSignCSR(t *testing.T) {
	f := newFixture(t, t.TempDir())
	csr, keyPEM, err := pki.NewCSR("dave", []string{"ignored.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := decodeRec[adminapi.CertBundle](t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs/csr", `{"csr": `+jsonString(t, string(csr))+`}`), http.StatusCreated)
	cert := parseBundle(t, f, b, "dave", x509.ExtKeyUsageClientAuth)
	if b.Key != "" {
		t.Fatal("a CSR answer carries a key")
	}
	if _, err := tls.X509KeyPair([]byte(b.Cert), keyPEM); err != nil {
		t.Fatalf("certificate is not for the CSR's key: %v", err)
	}
	if len(cert.DNSNames) != 0 {
		t.Fatalf("client certificate took the CSR's SANs %v", cert.DNSNames)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("public key %T", cert.PublicKey)
	}

	for _, tc := range []struct{ name, body string }{
		{"not PEM", `{"csr": "hello"}`},
		{"a certificate, not a CSR", `{"csr": ` + jsonString(t, string(f.ca.CertPEM())) + `}`},
		{"unsafe CN", func() string {
			c, _, err := pki.NewCSR("Dave Smith", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			return `{"csr": ` + jsonString(t, string(c)) + `}`
		}()},
		{"tampered", `{"csr": ` + jsonString(t, tamper(t, csr)) + `}`},
		{"over the cap", `{"csr": ` + jsonString(t, string(csr)) + `, "validity": "9000h"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertJSONError(t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs/csr", tc.body), http.StatusBadRequest)
		})
	}
}

// tamper flips a byte of the CSR's signature so that it no longer
// verifies while still parsing.
func tamper(tb testing.TB, csrPEM []byte) string {
	tb.Helper()
	block, _ := pem.Decode(csrPEM)
	der := append([]byte(nil), block.Bytes...)
	der[len(der)-3] ^= 0xff
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func TestCertRoutesOffWithoutCAKey(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), fixtureOptions{noCA: true})
	msg := assertJSONError(t, f.do(t, as("operator"), http.MethodPost, "/v1/certs", issueBody("alice", "")), http.StatusServiceUnavailable)
	if !strings.Contains(msg, "--ca-key") {
		t.Fatalf("message %q does not name --ca-key", msg)
	}
}
