package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.do(t, as("nobody"), http.MethodGet, "/v1/acl/policy", "")
	f.do(t, as("reader"), http.MethodGet, "/v1/acl/policy", "")
	f.do(t, as("reader"), http.MethodGet, "/no/such/path", "")
	if rec := f.do(t, as("operator"), http.MethodPost, "/v1/acl/rules", `{"rules": [{"subject": "m", "object": "t", "action": "produce"}]}`); rec.Code != http.StatusOK {
		t.Fatalf("add rule = %d", rec.Code)
	}
	f.do(t, as("operator"), http.MethodPost, "/v1/acl/rules", `{"rules": [{"subject": "m", "object": "t", "action": "produce"}]}`)

	rec := f.do(t, as("reader"), http.MethodGet, "/metrics", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`strata_admin_http_requests_total{code="403",method="GET",route="/v1/acl/policy"} 1`,
		`strata_admin_http_requests_total{code="200",method="GET",route="/v1/acl/policy"} 1`,
		`strata_admin_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`strata_admin_http_requests_total{code="409",method="POST",route="/v1/acl/rules"} 1`,
		`strata_admin_http_request_duration_seconds_count{method="GET",route="/v1/acl/policy"} 2`,
		`strata_admin_acl_policy_version 2`,
		`strata_admin_acl_policy_changes_total{result="applied"} 1`,
		`strata_admin_acl_policy_changes_total{result="refused"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
