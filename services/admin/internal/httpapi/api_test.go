package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPolicy grants describe on cluster to reader, everything to admin.
const testPolicy = `p, admin, *, *, allow
p, admin, cluster, *, allow
p, reader, cluster, describe, allow
g, operator, admin
`

type fixture struct {
	api     *API
	ca      *pki.CA
	dataDir string
	caFile  string
	certs   map[string]*x509.Certificate
}

func newFixture(tb testing.TB, dataDir string) *fixture {
	tb.Helper()
	lg := zaptest.NewLogger(tb)
	ca, err := pki.CreateCA(pki.CAOptions{CommonName: "test-ca"}, lg)
	if err != nil {
		tb.Fatal(err)
	}
	caFile := filepath.Join(tb.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	authz, err := acl.NewAuthorizer(acl.Options{Policy: testPolicy, CachePath: PolicyPath(dataDir)}, lg)
	if err != nil {
		tb.Fatal(err)
	}
	api, err := New(Options{Authorizer: authz, PolicyPath: PolicyPath(dataDir), CAFile: caFile}, lg)
	if err != nil {
		tb.Fatal(err)
	}
	f := &fixture{api: api, ca: ca, dataDir: dataDir, caFile: caFile, certs: map[string]*x509.Certificate{}}
	for _, name := range []string{"operator", "reader", "nobody"} {
		kp, err := ca.Issue(pki.IssueRequest{CommonName: name, Profile: pki.ProfileClient})
		if err != nil {
			tb.Fatal(err)
		}
		f.certs[name] = kp.Cert
	}
	return f
}

// caller describes how a request presents itself.
type caller struct {
	name       string
	identity   string // CN of a verified chain; "" for none
	unverified string // CN of an unverified peer certificate only
}

func (f *fixture) do(tb testing.TB, c caller, method, path, body string) *httptest.ResponseRecorder {
	tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.TLS = nil
	// A header never carries identity; set one to prove it is ignored.
	req.Header.Set("X-Strata-Identity", "operator")
	switch {
	case c.identity != "":
		leaf := f.certs[c.identity]
		req.TLS = &tls.ConnectionState{
			HandshakeComplete: true,
			PeerCertificates:  []*x509.Certificate{leaf},
			VerifiedChains:    [][]*x509.Certificate{{leaf, f.ca.Certificate()}},
		}
	case c.unverified != "":
		req.TLS = &tls.ConnectionState{
			HandshakeComplete: true,
			PeerCertificates:  []*x509.Certificate{f.certs[c.unverified]},
		}
	}
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, req)
	return rec
}

func assertJSONError(tb testing.TB, rec *httptest.ResponseRecorder, status int) {
	tb.Helper()
	if rec.Code != status {
		tb.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
		tb.Fatalf("body %q is not a JSON error (%v)", rec.Body, err)
	}
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// TestEveryRouteIsGuarded walks the router: every route must have a rule,
// refuse callers without a verified identity, refuse identities the policy
// does not grant (unless the route is open to any authenticated caller),
// and admit a caller the policy grants.
func TestEveryRouteIsGuarded(t *testing.T) {
	f := newFixture(t, t.TempDir())
	var n int
	err := chi.Walk(f.api.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		path := paramRE.ReplaceAllString(route, "x")
		rule, ok := f.api.Rule(method, route)
		t.Run(method+" "+route, func(t *testing.T) {
			if !ok {
				t.Fatalf("route has no rule")
			}
			for _, c := range []caller{
				{name: "no certificate"},
				{name: "unverified certificate", unverified: "operator"},
			} {
				t.Run(c.name, func(t *testing.T) {
					assertJSONError(t, f.do(t, c, method, path, "{}"), http.StatusUnauthorized)
				})
			}
			if !rule.AnyAuthenticated {
				t.Run("no permission", func(t *testing.T) {
					assertJSONError(t, f.do(t, caller{identity: "nobody"}, method, path, "{}"), http.StatusForbidden)
				})
			}
			t.Run("permitted", func(t *testing.T) {
				body := "{}"
				if method == http.MethodPut || method == http.MethodPost {
					body = `{"policy": ` + jsonString(t, testPolicy) + `}`
				}
				rec := f.do(t, caller{identity: "operator"}, method, path, body)
				if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden || rec.Code == http.StatusNotFound {
					t.Fatalf("permitted caller got %d: %s", rec.Code, rec.Body)
				}
			})
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 5 {
		t.Fatalf("walked %d routes, want at least 5", n)
	}
}

func TestDescribeIsNotAdmin(t *testing.T) {
	f := newFixture(t, t.TempDir())
	reader := caller{identity: "reader"}
	if rec := f.do(t, reader, http.MethodGet, "/v1/acl/policy", ""); rec.Code != http.StatusOK {
		t.Fatalf("reader GET policy = %d", rec.Code)
	}
	rec := f.do(t, reader, http.MethodPut, "/v1/acl/policy", `{"policy": "p, reader, *, *, allow\n"}`)
	assertJSONError(t, rec, http.StatusForbidden)
}

func jsonString(tb testing.TB, s string) string {
	tb.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func getPolicy(tb testing.TB, f *fixture) policyDoc {
	tb.Helper()
	rec := f.do(tb, caller{identity: "operator"}, http.MethodGet, "/v1/acl/policy", "")
	if rec.Code != http.StatusOK {
		tb.Fatalf("GET policy = %d: %s", rec.Code, rec.Body)
	}
	var doc policyDoc
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		tb.Fatal(err)
	}
	return doc
}

func TestPolicyRoundTripSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	f := newFixture(t, dataDir)
	before := getPolicy(t, f)

	newPolicy := testPolicy + "p, nobody, cluster, describe, allow\n"
	rec := f.do(t, caller{identity: "operator"}, http.MethodPut, "/v1/acl/policy", `{"policy": `+jsonString(t, newPolicy)+`}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT = %d: %s", rec.Code, rec.Body)
	}
	after := getPolicy(t, f)
	if after.Policy != newPolicy || after.Version != before.Version+1 {
		t.Fatalf("after PUT: %+v, want new text at version %d", after, before.Version+1)
	}
	// The new policy is enforced at once: nobody may now describe.
	if rec := f.do(t, caller{identity: "nobody"}, http.MethodGet, "/v1/acl/policy", ""); rec.Code != http.StatusOK {
		t.Fatalf("nobody GET after grant = %d", rec.Code)
	}

	// A restarted admin (new Authorizer on the same data dir) serves it.
	restarted := newFixture(t, dataDir)
	got := getPolicy(t, restarted)
	if got.Policy != newPolicy || got.Version != after.Version {
		t.Fatalf("after restart: %+v, want %+v", got, after)
	}
}

func TestMalformedPolicyKeepsOld(t *testing.T) {
	f := newFixture(t, t.TempDir())
	before := getPolicy(t, f)
	cases := []struct {
		name   string
		body   string
		status int
	}{
		{"bad rule", `{"policy": "p, admin, cluster, fly, allow\n"}`, http.StatusBadRequest},
		{"empty", `{"policy": ""}`, http.StatusBadRequest},
		{"locks the caller out", `{"policy": "p, someone-else, cluster, *, allow\n"}`, http.StatusConflict},
		{"not json", `p, admin, *, *, allow`, http.StatusBadRequest},
		{"unknown field", `{"policy": "", "extra": 1}`, http.StatusBadRequest},
		{"too large", `{"policy": "` + strings.Repeat("#", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(t, caller{identity: "operator"}, http.MethodPut, "/v1/acl/policy", tc.body)
			assertJSONError(t, rec, tc.status)
			if got := getPolicy(t, f); got != before {
				t.Fatalf("policy changed to %+v", got)
			}
		})
	}
}

func TestCAPEM(t *testing.T) {
	f := newFixture(t, t.TempDir())
	rec := f.do(t, caller{identity: "nobody"}, http.MethodGet, "/v1/ca.pem", "")
	if rec.Code != http.StatusOK || rec.Body.String() != string(f.ca.CertPEM()) {
		t.Fatalf("GET ca.pem = %d %q", rec.Code, rec.Body)
	}
}
