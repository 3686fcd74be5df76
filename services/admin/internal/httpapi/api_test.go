package httpapi

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testPolicy: operator is admin; reader may describe the cluster and read
// the policy; viewer may only describe the cluster; issuer
// may create identities (certificates) but is no admin; writer manages
// orders-* topics; grouper may see the app-* consumer groups and delete
// and reset app-1; the writers role and the team-x-* binding exist so
// that their names count as named by the policy.
const testPolicy = `# test policy
p, admin, *, *, allow
p, admin, cluster, *, allow
p, admin, group:*, *, allow
p, grouper, cluster, describe, allow
p, grouper, group:app-*, describe, allow
p, grouper, group:app-1, delete, allow
p, grouper, group:app-1, alter, allow
p, reader, cluster, describe, allow
p, reader, cluster, describe_acl, allow
p, viewer, cluster, describe, allow
p, issuer, cluster, create, allow
p, writer, orders-*, create, allow
p, writer, orders-*, describe, allow
p, writer, orders-*, delete, allow
p, writers, orders, produce, allow
g, operator, admin
g, team-x-*, writers
`

// identities with a certificate in every fixture.
var fixtureIdentities = []string{"operator", "reader", "viewer", "issuer", "writer", "grouper", "nobody"}

type fixture struct {
	api     *API
	ca      *pki.CA
	dataDir string
	caFile  string
	certs   map[string]*x509.Certificate
	topics  *fakeTopics
	groups  *fakeGroups
	logs    *observer.ObservedLogs
}

type fixtureOptions struct {
	noCA     bool
	noTopics bool
}

func newFixture(tb testing.TB, dataDir string) *fixture {
	tb.Helper()
	return newFixtureWith(tb, dataDir, fixtureOptions{})
}

func newFixtureWith(tb testing.TB, dataDir string, fo fixtureOptions) *fixture {
	tb.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	lg := zap.New(zapcore.NewTee(zaptest.NewLogger(tb).Core(), core))
	ca, err := pki.CreateCA(pki.CAOptions{CommonName: "test-ca"}, zap.NewNop())
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
	f := &fixture{ca: ca, dataDir: dataDir, caFile: caFile, certs: map[string]*x509.Certificate{},
		topics: newFakeTopics(), groups: newFakeGroups(), logs: logs}
	opts := Options{Authorizer: authz, PolicyPath: PolicyPath(dataDir), CAFile: caFile, CA: ca, Topics: f.topics, Groups: f.groups}
	if fo.noCA {
		opts.CA = nil
	}
	if fo.noTopics {
		opts.Topics, opts.Groups = nil, nil
	}
	if f.api, err = New(opts, lg); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.api.Stop)
	for _, name := range fixtureIdentities {
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

func as(identity string) caller { return caller{identity: identity} }

func (f *fixture) request(tb testing.TB, c caller, method, path, body string) *http.Request {
	tb.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.TLS = nil
	// A header never carries identity; set one to prove it is ignored.
	req.Header.Set("X-Strata-Identity", "operator")
	switch {
	case c.identity != "":
		leaf := f.certs[c.identity]
		if leaf == nil {
			tb.Fatalf("no certificate for %q", c.identity)
		}
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
	return req
}

func (f *fixture) do(tb testing.TB, c caller, method, path, body string) *httptest.ResponseRecorder {
	tb.Helper()
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, f.request(tb, c, method, path, body))
	return rec
}

func assertJSONError(tb testing.TB, rec *httptest.ResponseRecorder, status int) string {
	tb.Helper()
	if rec.Code != status {
		tb.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	var body adminapi.Error
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error == "" {
		tb.Fatalf("body %q is not a JSON error (%v)", rec.Body, err)
	}
	return body.Error
}

func decodeRec[T any](tb testing.TB, rec *httptest.ResponseRecorder, status int) T {
	tb.Helper()
	var v T
	if rec.Code != status {
		tb.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		tb.Fatalf("decode %s: %v", rec.Body, err)
	}
	return v
}

// auditEntries returns the logged audit messages that carry identity.
func (f *fixture) auditEntries(msg, identity string) []observer.LoggedEntry {
	return f.logs.FilterMessage(msg).FilterField(zap.String("identity", identity)).All()
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

// routeBodies are valid request bodies per route, so that a permitted
// caller reaches the handler's work and a refused one is refused for its
// identity, not for its body.
func routeBodies(tb testing.TB, f *fixture) map[string]string {
	tb.Helper()
	csr, _, err := pki.NewCSR("walk-csr", nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return map[string]string{
		"PUT /v1/acl/policy":             `{"policy": ` + jsonString(tb, testPolicy) + `}`,
		"POST /v1/acl/rules":             `{"rules": [{"subject": "walker", "object": "t", "action": "produce"}]}`,
		"DELETE /v1/acl/rules":           `{"rules": [{"subject": "reader", "object": "cluster", "action": "describe"}]}`,
		"POST /v1/certs":                 `{"name": "walk-cert"}`,
		"POST /v1/certs/csr":             `{"csr": ` + jsonString(tb, string(csr)) + `}`,
		"POST /v1/topics":                `{"name": "orders-walk", "config": {"partitions": 1}}`,
		"GET /v1/topics/{name}":          "",
		"POST /v1/groups/{name}/offsets": `{"topic": "x", "to_earliest": true}`,
	}
}

// TestEveryRouteIsGuarded walks the router: every route must have a rule,
// refuse callers without a verified identity, refuse identities the policy
// does not grant (unless the route is open to any authenticated caller),
// and admit a caller the policy grants.
func TestEveryRouteIsGuarded(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.topics.put("x")
	bodies := routeBodies(t, f)
	var n int
	err := chi.Walk(f.api.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		path := paramRE.ReplaceAllString(route, "x")
		rule, ok := f.api.Rule(method, route)
		body, hasBody := bodies[routeKey(method, route)]
		if !hasBody {
			body = "{}"
		}
		t.Run(method+" "+route, func(t *testing.T) {
			if !ok {
				t.Fatalf("route has no rule")
			}
			for _, c := range []caller{
				{name: "no certificate"},
				{name: "unverified certificate", unverified: "operator"},
			} {
				t.Run(c.name, func(t *testing.T) {
					assertJSONError(t, f.do(t, c, method, path, body), http.StatusUnauthorized)
				})
			}
			if !rule.AnyAuthenticated {
				t.Run("no permission", func(t *testing.T) {
					assertJSONError(t, f.do(t, as("nobody"), method, path, body), http.StatusForbidden)
				})
			}
			t.Run("permitted", func(t *testing.T) {
				rec := f.do(t, as("operator"), method, path, body)
				if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden || rec.Code >= 500 {
					t.Fatalf("permitted caller got %d: %s", rec.Code, rec.Body)
				}
				if strings.Contains(rec.Body.String(), `"error":"not found"`) || rec.Code == http.StatusMethodNotAllowed {
					t.Fatalf("route not reached: %d %s", rec.Code, rec.Body)
				}
			})
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(f.api.rules); n != want {
		t.Fatalf("walked %d routes, the rule table has %d", n, want)
	}
}

// TestEscapedPathCannotSkipTheGuard: a path written with escapes routes
// on its escaped form; the guard must authorize the same route and object.
func TestEscapedPathCannotSkipTheGuard(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.topics.put("orders-1")
	for _, path := range []string{"/v1/topics/orders-1%2Fx", "/v1/topics/%6Frders-1", "/v1/%74opics/orders-1"} {
		t.Run(path, func(t *testing.T) {
			rec := f.do(t, as("nobody"), http.MethodDelete, path, "")
			if rec.Code != http.StatusForbidden && rec.Code != http.StatusNotFound {
				t.Fatalf("nobody DELETE %s = %d %s", path, rec.Code, rec.Body)
			}
			if f.topics.deleted() != 0 {
				t.Fatal("a topic was deleted by a caller without permission")
			}
		})
	}
}

func TestUnknownPathsAreJSONErrors(t *testing.T) {
	f := newFixture(t, t.TempDir())
	assertJSONError(t, f.do(t, as("nobody"), http.MethodGet, "/v1/nope", ""), http.StatusNotFound)
	assertJSONError(t, f.do(t, as("nobody"), http.MethodPatch, "/healthz", ""), http.StatusMethodNotAllowed)
	assertJSONError(t, f.do(t, caller{}, http.MethodGet, "/v1/nope", ""), http.StatusUnauthorized)
}

func TestDescribeIsNotAdmin(t *testing.T) {
	f := newFixture(t, t.TempDir())
	reader := as("reader")
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

func getPolicy(tb testing.TB, f *fixture) adminapi.Policy {
	tb.Helper()
	return decodeRec[adminapi.Policy](tb, f.do(tb, as("operator"), http.MethodGet, "/v1/acl/policy", ""), http.StatusOK)
}

func TestPolicyRoundTripSurvivesRestart(t *testing.T) {
	dataDir := t.TempDir()
	f := newFixture(t, dataDir)
	before := getPolicy(t, f)

	newPolicy := testPolicy + "p, nobody, cluster, describe_acl, allow\n"
	rec := f.do(t, as("operator"), http.MethodPut, "/v1/acl/policy", `{"policy": `+jsonString(t, newPolicy)+`}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT = %d: %s", rec.Code, rec.Body)
	}
	after := getPolicy(t, f)
	if after.Policy != newPolicy || after.Version != before.Version+1 {
		t.Fatalf("after PUT: %+v, want new text at version %d", after, before.Version+1)
	}
	if len(f.auditEntries("audit: acl policy changed", "operator")) != 1 {
		t.Fatal("policy change not audit-logged with the caller's identity")
	}
	// The new policy is enforced at once: nobody may now read it.
	if rec := f.do(t, as("nobody"), http.MethodGet, "/v1/acl/policy", ""); rec.Code != http.StatusOK {
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
		{"stale version", `{"policy": ` + jsonString(t, testPolicy) + `, "version": 99}`, http.StatusConflict},
		{"not json", `p, admin, *, *, allow`, http.StatusBadRequest},
		{"two objects", `{"policy": ""} {}`, http.StatusBadRequest},
		{"unknown field", `{"policy": "", "extra": 1}`, http.StatusBadRequest},
		{"too large", `{"policy": "` + strings.Repeat("#", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(t, as("operator"), http.MethodPut, "/v1/acl/policy", tc.body)
			assertJSONError(t, rec, tc.status)
			if got := getPolicy(t, f); got != before {
				t.Fatalf("policy changed to %+v", got)
			}
		})
	}
	// The old policy is still enforced, not just still served.
	if rec := f.do(t, as("reader"), http.MethodGet, "/v1/acl/rules", ""); rec.Code != http.StatusOK {
		t.Fatalf("reader lost describe: %d", rec.Code)
	}
}

func TestPolicyPutCompareAndSwap(t *testing.T) {
	f := newFixture(t, t.TempDir())
	v := getPolicy(t, f).Version
	body := fmt.Sprintf(`{"policy": %s, "version": %d}`, jsonString(t, testPolicy+"p, x, t, produce, allow\n"), v)
	if rec := f.do(t, as("operator"), http.MethodPut, "/v1/acl/policy", body); rec.Code != http.StatusOK {
		t.Fatalf("PUT at the version in force = %d %s", rec.Code, rec.Body)
	}
	// The same PUT again is now stale.
	assertJSONError(t, f.do(t, as("operator"), http.MethodPut, "/v1/acl/policy", body), http.StatusConflict)
}

// watch runs a policy watch request and returns its recorder.
func (f *fixture) watch(tb testing.TB, c caller, query string) *httptest.ResponseRecorder {
	tb.Helper()
	return f.do(tb, c, http.MethodGet, "/v1/acl/policy?"+query, "")
}

func TestPolicyWatch(t *testing.T) {
	f := newFixture(t, t.TempDir())
	v := getPolicy(t, f).Version

	t.Run("newer version answers at once", func(t *testing.T) {
		rec := f.watch(t, as("reader"), fmt.Sprintf("after=%d&wait=60s", v-1))
		doc := decodeRec[adminapi.Policy](t, rec, http.StatusOK)
		if doc.Version != v || rec.Header().Get(adminapi.PolicyVersionHeader) != fmt.Sprint(v) {
			t.Fatalf("watch = %+v, header %q", doc, rec.Header().Get(adminapi.PolicyVersionHeader))
		}
	})
	t.Run("no change answers 304 after the wait", func(t *testing.T) {
		start := time.Now()
		rec := f.watch(t, as("reader"), fmt.Sprintf("after=%d&wait=200ms", v))
		if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Fatalf("watch = %d %q, want 304 with no body", rec.Code, rec.Body)
		}
		if took := time.Since(start); took < 200*time.Millisecond {
			t.Fatalf("304 after %s, before the wait", took)
		}
		if rec.Header().Get(adminapi.PolicyVersionHeader) != fmt.Sprint(v) {
			t.Fatalf("304 header %q", rec.Header().Get(adminapi.PolicyVersionHeader))
		}
	})
	t.Run("a change wakes a held watch", func(t *testing.T) {
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- f.watch(t, as("reader"), fmt.Sprintf("after=%d&wait=60s", v)) }()
		newPolicy := testPolicy + "p, nobody, t, produce, allow\n"
		start := time.Now()
		if rec := f.do(t, as("operator"), http.MethodPut, "/v1/acl/policy", `{"policy": `+jsonString(t, newPolicy)+`}`); rec.Code != http.StatusOK {
			t.Fatalf("PUT = %d %s", rec.Code, rec.Body)
		}
		select {
		case rec := <-done:
			doc := decodeRec[adminapi.Policy](t, rec, http.StatusOK)
			if doc.Version != v+1 || doc.Policy != newPolicy {
				t.Fatalf("watch = %+v", doc)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Fatalf("watch answered %s after the change", took)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("held watch not woken by the change")
		}
	})
	t.Run("Stop ends held watches", func(t *testing.T) {
		g := newFixture(t, t.TempDir())
		gv := getPolicy(t, g).Version
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() { done <- g.watch(t, as("reader"), fmt.Sprintf("after=%d&wait=60s", gv)) }()
		g.api.Stop()
		select {
		case rec := <-done:
			assertJSONError(t, rec, http.StatusServiceUnavailable)
		case <-time.After(10 * time.Second):
			t.Fatal("Stop did not end the held watch")
		}
	})
	t.Run("bad parameters", func(t *testing.T) {
		for _, q := range []string{"after=abc", "after=-1", "after=1&wait=2m", "after=1&wait=0s", "after=1&wait=-1s", "after=1&wait=soon", "wait=10s"} {
			t.Run(q, func(t *testing.T) {
				assertJSONError(t, f.watch(t, as("reader"), q), http.StatusBadRequest)
			})
		}
	})
	t.Run("needs describe", func(t *testing.T) {
		assertJSONError(t, f.watch(t, as("nobody"), "after=0"), http.StatusForbidden)
	})
}

// TestConcurrentCallsDuringPolicyReloads: 1,000 concurrent authorized
// calls while the policy is replaced over and over. Under -race this
// proves checks never race with reloads; every call must be allowed,
// since reader keeps describe in both policies, and nobody must stay
// refused in both.
func TestConcurrentCallsDuringPolicyReloads(t *testing.T) {
	f := newFixture(t, t.TempDir())
	policies := []string{testPolicy + "p, writer, cluster, describe, allow\n", testPolicy + "p, issuer, cluster, describe, allow\n"}
	stop := make(chan struct{})
	reloads := make(chan int, 1)
	go func() {
		n := 0
		defer func() { reloads <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rec := f.do(t, as("operator"), http.MethodPut, "/v1/acl/policy", `{"policy": `+jsonString(t, policies[i%2])+`}`)
			if rec.Code != http.StatusOK {
				t.Errorf("reload %d = %d %s", i, rec.Code, rec.Body)
				return
			}
			n++
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 2000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := []string{"/v1/acl/rules", "/v1/acl/policy", "/metrics", "/v1/topics"}[i%4]
			if rec := f.do(t, as("reader"), http.MethodGet, path, ""); rec.Code != http.StatusOK {
				errs <- fmt.Errorf("reader GET %s = %d %s", path, rec.Code, rec.Body)
			}
			if rec := f.do(t, as("nobody"), http.MethodGet, path, ""); rec.Code != http.StatusForbidden {
				errs <- fmt.Errorf("nobody GET %s = %d", path, rec.Code)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-reloads; n == 0 {
		t.Fatal("no reload ran during the calls")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCAPEM(t *testing.T) {
	f := newFixture(t, t.TempDir())
	rec := f.do(t, as("nobody"), http.MethodGet, "/v1/ca.pem", "")
	if rec.Code != http.StatusOK || rec.Body.String() != string(f.ca.CertPEM()) {
		t.Fatalf("GET ca.pem = %d %q", rec.Code, rec.Body)
	}
}
