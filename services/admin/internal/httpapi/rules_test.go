package httpapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/strata-log/strata/pkg/adminapi"
)

func getRules(tb testing.TB, f *fixture) adminapi.Rules {
	tb.Helper()
	return decodeRec[adminapi.Rules](tb, f.do(tb, as("reader"), http.MethodGet, "/v1/acl/rules", ""), http.StatusOK)
}

func hasRule(doc adminapi.Rules, r adminapi.Rule) bool {
	for _, x := range doc.Rules {
		if x == r {
			return true
		}
	}
	return false
}

func hasBinding(doc adminapi.Rules, b adminapi.Binding) bool {
	for _, x := range doc.Bindings {
		if x == b {
			return true
		}
	}
	return false
}

func TestRulesListAddRemove(t *testing.T) {
	f := newFixture(t, t.TempDir())
	before := getRules(t, f)
	if !hasRule(before, adminapi.Rule{Subject: "reader", Object: "cluster", Action: "describe", Effect: "allow"}) || !hasBinding(before, adminapi.Binding{Identity: "operator", Role: "admin"}) {
		t.Fatalf("list = %+v", before)
	}

	alice := adminapi.Rule{Subject: "alice", Object: "orders-*", Action: "produce"}
	bind := adminapi.Binding{Identity: "alice", Role: "writers"}
	rec := f.do(t, as("operator"), http.MethodPost, "/v1/acl/rules",
		`{"rules": [{"subject": "alice", "object": "orders-*", "action": "produce"}], "bindings": [{"identity": "alice", "role": "writers"}]}`)
	added := decodeRec[adminapi.Rules](t, rec, http.StatusOK)
	alice.Effect = "allow"
	if added.Version != before.Version+1 || !hasRule(added, alice) || !hasBinding(added, bind) {
		t.Fatalf("after add: %+v", added)
	}
	// One change, one version, one audit entry naming the caller.
	if e := f.auditEntries("audit: acl policy changed", "operator"); len(e) != 1 || !strings.Contains(e[0].ContextMap()["change"].(string), "p, alice, orders-*, produce, allow") {
		t.Fatalf("audit entries %+v", e)
	}
	// Comments survive a rule edit: the policy text is edited, not rewritten.
	if p := getPolicy(t, f).Policy; !strings.HasPrefix(p, "# test policy\n") || !strings.HasSuffix(p, "p, alice, orders-*, produce, allow\ng, alice, writers\n") {
		t.Fatalf("policy text after add: %q", p)
	}

	rec = f.do(t, as("operator"), http.MethodDelete, "/v1/acl/rules", `{"bindings": [{"identity": "alice", "role": "writers"}]}`)
	removed := decodeRec[adminapi.Rules](t, rec, http.StatusOK)
	if removed.Version != added.Version+1 || hasBinding(removed, bind) || !hasRule(removed, alice) {
		t.Fatalf("after remove: %+v", removed)
	}
}

func TestRulesRefusedKeepOldPolicy(t *testing.T) {
	f := newFixture(t, t.TempDir())
	before := getPolicy(t, f)
	for _, tc := range []struct {
		name, method, body string
		status             int
	}{
		{"add existing", http.MethodPost, `{"rules": [{"subject": "reader", "object": "cluster", "action": "describe", "effect": "allow"}]}`, http.StatusConflict},
		{"remove missing", http.MethodDelete, `{"rules": [{"subject": "ghost", "object": "t", "action": "produce"}]}`, http.StatusNotFound},
		{"remove own admin", http.MethodDelete, `{"bindings": [{"identity": "operator", "role": "admin"}]}`, http.StatusConflict},
		{"unknown action", http.MethodPost, `{"rules": [{"subject": "a", "object": "t", "action": "fly"}]}`, http.StatusBadRequest},
		{"bad effect", http.MethodPost, `{"rules": [{"subject": "a", "object": "t", "action": "produce", "effect": "maybe"}]}`, http.StatusBadRequest},
		{"pattern subject", http.MethodPost, `{"rules": [{"subject": "a*", "object": "t", "action": "produce"}]}`, http.StatusBadRequest},
		{"empty object", http.MethodPost, `{"rules": [{"subject": "a", "object": "", "action": "produce"}]}`, http.StatusBadRequest},
		{"comma injection", http.MethodPost, `{"rules": [{"subject": "a", "object": "t, produce, allow\np, a, cluster", "action": "admin"}]}`, http.StatusBadRequest},
		{"newline injection", http.MethodPost, `{"bindings": [{"identity": "mallory\ng, mallory", "role": "admin"}]}`, http.StatusBadRequest},
		{"self binding", http.MethodPost, `{"bindings": [{"identity": "a", "role": "a"}]}`, http.StatusBadRequest},
		{"duplicate in body", http.MethodPost, `{"rules": [{"subject": "a", "object": "t", "action": "produce"}, {"subject": "a", "object": "t", "action": "produce"}]}`, http.StatusBadRequest},
		{"nothing", http.MethodPost, `{"rules": [], "bindings": []}`, http.StatusBadRequest},
		{"version given", http.MethodPost, `{"version": 3, "rules": [{"subject": "a", "object": "t", "action": "produce"}]}`, http.StatusBadRequest},
		{"unknown field", http.MethodPost, `{"rule": {"subject": "a"}}`, http.StatusBadRequest},
		{"not json", http.MethodDelete, `p, reader, cluster, describe, allow`, http.StatusBadRequest},
		{"too large", http.MethodPost, `{"rules": [{"subject": "` + strings.Repeat("a", maxBodyBytes) + `"}]}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertJSONError(t, f.do(t, as("operator"), tc.method, "/v1/acl/rules", tc.body), tc.status)
			if got := getPolicy(t, f); got != before {
				t.Fatalf("policy changed to %+v", got)
			}
		})
	}
	t.Run("non-admin", func(t *testing.T) {
		assertJSONError(t, f.do(t, as("reader"), http.MethodPost, "/v1/acl/rules",
			`{"rules": [{"subject": "reader", "object": "cluster", "action": "admin"}]}`), http.StatusForbidden)
	})
}

func TestLineEdits(t *testing.T) {
	old := "# c\np,  a , t, produce, allow\n\ng, b, r"
	got, err := addLines(old, []string{"p, c, t, consume, allow"})
	if err != nil || got != old+"\np, c, t, consume, allow\n" {
		t.Fatalf("addLines = %q, %v", got, err)
	}
	if _, err := addLines(old, []string{"p, a, t, produce, allow"}); err == nil {
		t.Fatal("addLines accepted a line present with other spacing")
	}
	got, err = removeLines(old, []string{"p, a, t, produce, allow"})
	if err != nil || got != "# c\n\ng, b, r" {
		t.Fatalf("removeLines = %q, %v", got, err)
	}
}

// TestReadingPolicyNeedsDescribeACL: describe on cluster (metadata) does
// not reveal the policy; describe_acl does.
func TestReadingPolicyNeedsDescribeACL(t *testing.T) {
	f := newFixture(t, t.TempDir())
	for _, path := range []string{"/v1/acl/policy", "/v1/acl/rules", "/v1/acl/policy?after=0&wait=1s"} {
		assertJSONError(t, f.do(t, as("viewer"), http.MethodGet, path, ""), http.StatusForbidden)
		if rec := f.do(t, as("reader"), http.MethodGet, path, ""); rec.Code != http.StatusOK {
			t.Errorf("reader (describe_acl) GET %s = %d %s", path, rec.Code, rec.Body)
		}
	}
	if rec := f.do(t, as("viewer"), http.MethodGet, "/v1/topics", ""); rec.Code == http.StatusForbidden {
		t.Errorf("viewer lost describe on cluster: GET /v1/topics = %d", rec.Code)
	}
}

// TestQuotaLines: quotas are added, listed and removed through the rules
// routes like any other line, with the policy's validation.
func TestQuotaLines(t *testing.T) {
	f := newFixture(t, t.TempDir())
	op := as("operator")
	body := `{"quotas": [{"subject": "writer", "kind": "produce", "bytes_per_second": 1048576}]}`
	doc := decodeRec[adminapi.Rules](t, f.do(t, op, http.MethodPost, "/v1/acl/rules", body), http.StatusOK)
	if len(doc.Quotas) != 1 || doc.Quotas[0] != (adminapi.Quota{Subject: "writer", Kind: "produce", BytesPerSecond: 1 << 20}) {
		t.Fatalf("after adding, quotas = %+v", doc.Quotas)
	}
	if got := getRules(t, f).Quotas; len(got) != 1 {
		t.Fatalf("listed quotas = %+v", got)
	}
	for _, bad := range []string{
		`{"quotas": [{"subject": "writer", "kind": "produce", "bytes_per_second": 5}]}`, // a second produce quota for writer
		`{"quotas": [{"subject": "writer", "kind": "fetch", "bytes_per_second": 5}]}`,
		`{"quotas": [{"subject": "writer", "kind": "consume", "bytes_per_second": 0}]}`,
		`{"quotas": [{"subject": "w, x", "kind": "consume", "bytes_per_second": 5}]}`,
	} {
		rec := f.do(t, op, http.MethodPost, "/v1/acl/rules", bad)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusConflict {
			t.Errorf("POST %s = %d %s, want 400", bad, rec.Code, rec.Body)
		}
	}
	doc = decodeRec[adminapi.Rules](t, f.do(t, op, http.MethodDelete, "/v1/acl/rules", body), http.StatusOK)
	if len(doc.Quotas) != 0 {
		t.Fatalf("after removing, quotas = %+v", doc.Quotas)
	}
}
