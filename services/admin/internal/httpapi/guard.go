package httpapi

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
)

// Rule is what a route demands of its caller.
type Rule struct {
	// AnyAuthenticated lets any caller with a verified certificate in.
	AnyAuthenticated bool
	// Object and Action are checked with the Authorizer otherwise.
	Object string
	Action string
}

// Authorizer is the part of *acl.Authorizer the guard uses.
type Authorizer interface {
	Allowed(subject, object, action string) (bool, error)
}

type identityKey struct{}

// identityFrom returns the verified caller identity the guard stored.
func identityFrom(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}

// guard authenticates every request by its verified client certificate
// (never by headers) and authorizes it by the rule of the route it will
// reach. A route without a rule is refused (default deny); a path matching
// no route goes on to the router's JSON 404/405 once authenticated.
func guard(mux *chi.Mux, rules map[string]Rule, authz Authorizer, lg *zap.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.TLS == nil {
				writeError(w, lg, http.StatusUnauthorized, "client certificate required")
				return
			}
			id, err := pki.Identity(*r.TLS)
			if err != nil || id == "" {
				writeError(w, lg, http.StatusUnauthorized, "client certificate required")
				return
			}
			pattern := mux.Find(chi.NewRouteContext(), r.Method, r.URL.Path)
			if pattern != "" {
				rule, ok := rules[routeKey(r.Method, pattern)]
				if !ok {
					lg.Warn("route without rule refused", zap.String("method", r.Method),
						zap.String("route", pattern), zap.String("identity", id))
					writeError(w, lg, http.StatusForbidden, "forbidden")
					return
				}
				if !rule.AnyAuthenticated {
					allowed, err := authz.Allowed(id, rule.Object, rule.Action)
					if err != nil || !allowed {
						lg.Info("request denied", zap.String("identity", id), zap.String("method", r.Method),
							zap.String("route", pattern), zap.String("action", rule.Action), zap.Error(err))
						writeError(w, lg, http.StatusForbidden, "forbidden")
						return
					}
				}
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
		})
	}
}

// routeKey is the rules map key of a method and a chi route pattern.
func routeKey(method, pattern string) string { return method + " " + pattern }

// ruleCluster is a rule for action on the cluster object.
func ruleCluster(action string) Rule { return Rule{Object: acl.ObjectCluster, Action: action} }
