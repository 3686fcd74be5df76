package httpapi

import (
	"errors"
	"net/http"
	"path/filepath"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
)

// PolicyFileName is the durable policy file inside the data directory.
const PolicyFileName = "acl-policy"

// Options are the API's dependencies.
type Options struct {
	// Authorizer holds the policy in force. Required; it must have been
	// built with CachePath set to PolicyPath (see PolicyPath).
	Authorizer *acl.Authorizer
	// PolicyPath is the Authorizer's CachePath. Required.
	PolicyPath string
	// CAFile is the PEM CA certificate served at /v1/ca.pem. Required.
	CAFile string
}

// PolicyPath returns the policy file path inside dataDir.
func PolicyPath(dataDir string) string { return filepath.Join(dataDir, PolicyFileName) }

// API is the admin HTTP API.
type API struct {
	mux   *chi.Mux
	rules map[string]Rule
}

// New builds the router. lg may be nil.
func New(opts Options, lg *zap.Logger) (*API, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.Authorizer == nil || opts.PolicyPath == "" || opts.CAFile == "" {
		return nil, errors.New("httpapi: Authorizer, PolicyPath and CAFile are required")
	}
	policy := &policyResource{authz: opts.Authorizer, cache: acl.NewCache(opts.PolicyPath), lg: lg}
	ca := &caResource{caFile: opts.CAFile, lg: lg}

	rules := map[string]Rule{
		routeKey(http.MethodGet, "/healthz"):   {AnyAuthenticated: true},
		routeKey(http.MethodGet, "/readyz"):    {AnyAuthenticated: true},
		routeKey(http.MethodGet, "/v1/ca.pem"): {AnyAuthenticated: true},
	}
	for k, v := range policy.rules("/v1/acl") {
		rules[k] = v
	}

	mux := chi.NewRouter()
	mux.Use(guard(mux, rules, opts.Authorizer, lg))
	mux.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, lg, http.StatusNotFound, "not found")
	})
	mux.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, lg, http.StatusMethodNotAllowed, "method not allowed")
	})
	mux.Get("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, lg, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		_, version := opts.Authorizer.Policy()
		writeJSON(w, lg, http.StatusOK, map[string]any{"status": "ready", "policy_version": version})
	})
	mux.Route("/v1", func(r chi.Router) {
		r.Get("/ca.pem", ca.getPEM)
		r.Mount("/acl", policy.Routes())
	})
	return &API{mux: mux, rules: rules}, nil
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Router returns the router, for walking its routes.
func (a *API) Router() chi.Routes { return a.mux }

// Rule returns the rule of a route, as the guard sees it.
func (a *API) Rule(method, pattern string) (Rule, bool) {
	r, ok := a.rules[routeKey(method, pattern)]
	return r, ok
}
