package httpapi

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
)

// newIssuingFixture is a fixture whose API records issued certificates.
func newIssuingFixture(tb testing.TB) (*fixture, string) {
	tb.Helper()
	f := newFixture(tb, tb.TempDir())
	dir := filepath.Join(tb.TempDir(), IssuedCertsDirName)
	authz, err := acl.NewAuthorizer(acl.Options{Policy: testPolicy, CachePath: PolicyPath(f.dataDir)}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	f.api.Stop()
	f.api, err = New(Options{Authorizer: authz, PolicyPath: PolicyPath(f.dataDir), CAFile: f.caFile, CA: f.ca,
		Topics: f.topics, IssuedDir: dir}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(f.api.Stop)
	return f, dir
}

func TestIssuedCertificatesAreListed(t *testing.T) {
	f, dir := newIssuingFixture(t)
	if got := decodeRec[adminapi.CertList](t, f.do(t, as("reader"), http.MethodGet, "/v1/certs", ""), http.StatusOK); len(got.Certificates) != 0 {
		t.Fatalf("fresh list: %+v", got)
	}
	for _, name := range []string{"alice", "bob"} {
		extra := ""
		if name == "bob" {
			extra = `, "validity": "24h"`
		}
		decodeRec[adminapi.CertBundle](t, f.do(t, as("issuer"), http.MethodPost, "/v1/certs", issueBody(name, extra)), http.StatusCreated)
	}
	got := decodeRec[adminapi.CertList](t, f.do(t, as("reader"), http.MethodGet, "/v1/certs", ""), http.StatusOK)
	if len(got.Certificates) != 2 || got.Certificates[0].Name != "bob" || got.Certificates[1].Name != "alice" {
		t.Fatalf("list (soonest expiry first): %+v", got.Certificates)
	}
	if got.Certificates[0].Profile != "client" || got.Certificates[0].Serial == "" {
		t.Fatalf("listed fields: %+v", got.Certificates[0])
	}
	assertJSONError(t, f.do(t, as("nobody"), http.MethodGet, "/v1/certs", ""), http.StatusForbidden)
	// Only public parts are kept.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "PRIVATE KEY") {
			t.Fatalf("%s holds a private key", e.Name())
		}
	}
}

func TestIssueCertHasTheAPIsChecks(t *testing.T) {
	f, _ := newIssuingFixture(t)
	if _, err := f.api.IssueCert("issuer", adminapi.CertRequest{Name: "operator"}); err == nil {
		t.Fatal("a non-admin got a certificate for a name the policy names")
	} else if code, _ := ErrorStatus(err); code != http.StatusForbidden {
		t.Fatalf("status %d: %v", code, err)
	}
	if _, err := f.api.IssueCert("issuer", adminapi.CertRequest{Name: "Bad Name"}); err == nil {
		t.Fatal("unsafe name issued")
	} else if code, _ := ErrorStatus(err); code != http.StatusBadRequest {
		t.Fatalf("status %d: %v", code, err)
	}
	b, err := f.api.IssueCert("issuer", adminapi.CertRequest{Name: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	parseBundle(t, f, b, "carol", 2)
	list, err := f.api.IssuedCerts()
	if err != nil || len(list) != 1 || list[0].Name != "carol" {
		t.Fatalf("IssuedCerts = %+v, %v", list, err)
	}
}

func TestReplacePolicyHasTheAPIsChecks(t *testing.T) {
	f := newFixture(t, t.TempDir())
	_, v := f.api.Policy()
	for _, tc := range []struct {
		name, policy string
		version      uint64
		status       int
	}{
		{"does not parse", "p, x", 0, http.StatusBadRequest},
		{"empty", "", 0, http.StatusBadRequest},
		{"locks the editor out", "p, reader, cluster, describe, allow\n", 0, http.StatusConflict},
		{"stale version", testPolicy, v + 7, http.StatusConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.api.ReplacePolicy("operator", tc.policy, tc.version)
			if code, _ := ErrorStatus(err); err == nil || code != tc.status {
				t.Fatalf("err %v (status %d), want status %d", err, code, tc.status)
			}
			if _, now := f.api.Policy(); now != v {
				t.Fatalf("version moved to %d on a refused change", now)
			}
		})
	}
	nv, err := f.api.ReplacePolicy("operator", testPolicy+"p, alice, t, produce, allow\n", v)
	if err != nil || nv <= v {
		t.Fatalf("replace: %d, %v", nv, err)
	}
	if err := f.api.Allowed("alice", "t", acl.ActionProduce); err != nil {
		t.Fatalf("new rule not in force: %v", err)
	}
}

func TestMountAndAuthorize(t *testing.T) {
	f := newFixture(t, t.TempDir())
	ext := chi.NewRouter()
	ext.Get("/page/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := f.api.Authorize(Identity(r.Context()), http.MethodGet, "/v1/topics/{name}", chi.URLParam(r, "name")); err != nil {
			http.Error(w, "<h1>forbidden</h1>", http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	if err := f.api.Mount("/ext", ext); err != nil {
		t.Fatal(err)
	}
	if err := f.api.Mount("/ext", ext); err == nil {
		t.Fatal("mounting twice succeeded")
	}
	assertJSONError(t, f.do(t, caller{}, http.MethodGet, "/ext/page/orders-1", ""), http.StatusUnauthorized)
	if rec := f.do(t, as("nobody"), http.MethodGet, "/ext/page/orders-1", ""); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "<h1>") {
		t.Fatalf("nobody: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(t, as("writer"), http.MethodGet, "/ext/page/orders-1", ""); rec.Code != http.StatusOK {
		t.Fatalf("writer: %d %s", rec.Code, rec.Body)
	}
	if err := f.api.Authorize("operator", http.MethodGet, "/v1/nope", ""); !errors.Is(err, ErrNoRule) {
		t.Fatalf("route without rule: %v", err)
	}
	if err := f.api.Authorize("", http.MethodGet, "/healthz", ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("no identity: %v", err)
	}
}
