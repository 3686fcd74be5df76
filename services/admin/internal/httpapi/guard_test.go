package httpapi

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// TestWrongMethodIs405WithAllow: a method a known route does not serve is
// 405 with the route's methods in Allow, for the operator and for an
// identity the policy grants nothing alike (it was 403 for the roots of
// mounted resources, PATCH /v1/topics and PUT /v1/certs).
func TestWrongMethodIs405WithAllow(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.topics.put("x")
	// allow is what Allow must include (TestEveryRouteAnswersWrongMethods
	// checks it is exactly the route's methods).
	for _, tc := range []struct {
		method, path, allow string
	}{
		{http.MethodPatch, "/v1/topics", "GET, POST"},
		{http.MethodPut, "/v1/certs", "POST"},
		{http.MethodGet, "/v1/certs/csr", "POST"},
		{http.MethodPut, "/v1/topics/x", "GET, DELETE"},
		{http.MethodDelete, "/v1/acl/policy", "GET, PUT"},
		{http.MethodPatch, "/healthz", "GET"},
		{http.MethodPost, "/metrics", "GET"},
	} {
		for _, id := range []string{"operator", "nobody"} {
			t.Run(tc.method+" "+tc.path+" as "+id, func(t *testing.T) {
				rec := f.do(t, as(id), tc.method, tc.path, "{}")
				assertJSONError(t, rec, http.StatusMethodNotAllowed)
				got := strings.Split(rec.Header().Get("Allow"), ", ")
				for _, m := range strings.Split(tc.allow, ", ") {
					if !slices.Contains(got, m) {
						t.Fatalf("Allow = %q, want it to include %s", got, m)
					}
				}
				if slices.Contains(got, tc.method) {
					t.Fatalf("Allow = %q includes the refused %s", got, tc.method)
				}
			})
		}
	}
	t.Run("no certificate is still 401", func(t *testing.T) {
		assertJSONError(t, f.do(t, caller{}, http.MethodPatch, "/v1/topics", ""), http.StatusUnauthorized)
	})
}

// TestEveryRouteAnswersWrongMethods walks the router: for every route,
// every method it has no rule for is 405 naming exactly the methods it has.
func TestEveryRouteAnswersWrongMethods(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.topics.put("x")
	served := map[string][]string{} // path -> methods with a rule
	err := chi.Walk(f.api.Router(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		path := trimSlash(paramRE.ReplaceAllString(route, "x"))
		served[path] = append(served[path], method)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, have := range served {
		var want []string
		for _, m := range methods {
			if slices.Contains(have, m) {
				want = append(want, m)
			}
		}
		for _, m := range methods {
			if slices.Contains(have, m) || m == http.MethodConnect {
				continue // CONNECT takes an authority, not a path
			}
			t.Run(m+" "+path, func(t *testing.T) {
				rec := f.do(t, as("nobody"), m, path, "")
				if rec.Code != http.StatusMethodNotAllowed {
					t.Fatalf("status = %d, want 405; body %s", rec.Code, rec.Body)
				}
				if got := rec.Header().Get("Allow"); got != strings.Join(want, ", ") {
					t.Fatalf("Allow = %q, want %q", got, strings.Join(want, ", "))
				}
			})
		}
	}
}
