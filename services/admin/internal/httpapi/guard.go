package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
)

// Rule is what a route demands of its caller.
type Rule struct {
	// AnyAuthenticated lets any caller with a verified certificate in.
	AnyAuthenticated bool
	// Action is checked with the Authorizer otherwise, on the object
	// given by one of the three fields below.
	Action string
	// Object is a fixed object (cluster).
	Object string
	// ObjectParam names the route's URL parameter holding the topic, or
	// the group with ObjectPrefix.
	ObjectParam string
	// ObjectPrefix is put before ObjectParam's value to make the object:
	// acl.GroupPrefix for a consumer group's routes.
	ObjectPrefix string
	// ObjectInHandler marks a route whose object is in the request body:
	// the guard authenticates, and the handler must call
	// guardian.authorizeInHandler with the object before acting.
	ObjectInHandler bool
}

// Authorizer is the part of *acl.Authorizer the guard uses.
type Authorizer interface {
	Allowed(subject, object, action string) (bool, error)
}

type (
	identityKey struct{}
	ruleKey     struct{}
)

// identityFrom returns the verified caller identity the guard stored.
func identityFrom(ctx context.Context) string {
	id, _ := ctx.Value(identityKey{}).(string)
	return id
}

// guardian authenticates and authorizes every request.
type guardian struct {
	mux   *chi.Mux
	rules map[string]Rule
	authz Authorizer
	lg    *zap.Logger
}

// routePath is the path chi routes on: the escaped path when the URL has
// one. The guard must find the route the router will pick, or a path
// written with escapes could reach a route the guard did not check.
func routePath(r *http.Request) string {
	if r.URL.RawPath != "" {
		return r.URL.RawPath
	}
	return r.URL.Path
}

// middleware authenticates every request by its verified client
// certificate (never by headers) and authorizes it by the rule of the
// route it will reach. A method the route does not serve is 405 with
// Allow for every authenticated caller; a route without a rule is refused
// (default deny); a path matching no route goes on to the router's JSON
// 404 once authenticated.
func (g *guardian) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			writeError(w, g.lg, http.StatusUnauthorized, "client certificate required")
			return
		}
		id, err := pki.Identity(*r.TLS)
		if err != nil || id == "" {
			writeError(w, g.lg, http.StatusUnauthorized, "client certificate required")
			return
		}
		ctx := context.WithValue(r.Context(), identityKey{}, id)
		rctx := chi.NewRouteContext()
		pattern := g.mux.Find(rctx, r.Method, routePath(r))
		rule, ok := g.rules[routeKey(r.Method, pattern)]
		if pattern == "" || !ok {
			// A wrong method on a known route is the same answer for
			// every caller, before any authorization: nothing is done.
			if allow := g.allowedMethods(routePath(r)); len(allow) > 0 {
				writeMethodNotAllowed(w, g.lg, allow)
				return
			}
		}
		if pattern != "" {
			if !ok {
				g.lg.Warn("route without rule refused", zap.String("method", r.Method),
					zap.String("route", pattern), zap.String("identity", id))
				writeError(w, g.lg, http.StatusForbidden, "forbidden")
				return
			}
			switch {
			case rule.AnyAuthenticated, rule.ObjectInHandler:
			case rule.ObjectParam != "":
				if !g.allow(w, id, rule.ObjectPrefix+rctx.URLParam(rule.ObjectParam), rule.Action, pattern) {
					return
				}
			default:
				if !g.allow(w, id, rule.Object, rule.Action, pattern) {
					return
				}
			}
			ctx = context.WithValue(ctx, ruleKey{}, rule)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// methods are the HTTP methods a route may serve, in the order an Allow
// header lists them.
var methods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace,
}

// allowedMethods returns the methods with a rule for the route that path
// reaches, none when it reaches no route.
func (g *guardian) allowedMethods(path string) []string {
	var allow []string
	for _, m := range methods {
		if pattern := g.mux.Find(chi.NewRouteContext(), m, path); pattern != "" {
			if _, ok := g.rules[routeKey(m, pattern)]; ok {
				allow = append(allow, m)
			}
		}
	}
	return allow
}

// writeMethodNotAllowed answers 405 with the route's methods in Allow
// (RFC 9110 §15.5.6).
func writeMethodNotAllowed(w http.ResponseWriter, lg *zap.Logger, allow []string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, lg, http.StatusMethodNotAllowed, "method not allowed; allowed: "+strings.Join(allow, ", "))
}

// allow checks the policy and answers 403 when it denies.
func (g *guardian) allow(w http.ResponseWriter, id, object, action, route string) bool {
	allowed, err := g.authz.Allowed(id, object, action)
	if err != nil || !allowed {
		g.lg.Info("request denied", zap.String("identity", id), zap.String("route", route),
			zap.String("action", action), zap.String("object", object), zap.Error(err))
		writeError(w, g.lg, http.StatusForbidden, "forbidden")
		return false
	}
	return true
}

// authorizeInHandler checks the caller against the ObjectInHandler rule
// of the route on object. It answers 403 itself and returns false when
// denied (or when the route has no such rule: a wiring bug).
func (g *guardian) authorizeInHandler(w http.ResponseWriter, r *http.Request, object string) bool {
	rule, ok := r.Context().Value(ruleKey{}).(Rule)
	if !ok || !rule.ObjectInHandler {
		g.lg.Error("handler authorization without an ObjectInHandler rule", zap.String("path", r.URL.Path))
		writeError(w, g.lg, http.StatusForbidden, "forbidden")
		return false
	}
	return g.allow(w, identityFrom(r.Context()), object, rule.Action, r.URL.Path)
}

// routeKey is the rules map key of a method and a chi route pattern. A
// resource's root route is "/prefix/" to chi.Walk but "/prefix" to
// Mux.Find (and the same handler serves both paths), so a trailing slash
// is dropped: both name one rule.
func routeKey(method, pattern string) string { return method + " " + trimSlash(pattern) }

func trimSlash(pattern string) string {
	if len(pattern) > 1 {
		return strings.TrimSuffix(pattern, "/")
	}
	return pattern
}

// ruleCluster is a rule for action on the cluster object.
func ruleCluster(action string) Rule { return Rule{Object: acl.ObjectCluster, Action: action} }
