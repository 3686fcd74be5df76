package httpapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"sync"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
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
	// CAFile is the PEM CA certificate served at /v1/ca.pem and returned
	// with issued certificates. Required.
	CAFile string
	// CA issues certificates (POST /v1/certs, /v1/certs/csr). Nil turns
	// issuing off: those routes answer 503.
	CA *pki.CA
	// Topics is the cluster's Topics service (any node forwards to the
	// controller). Nil turns the /v1/topics routes off: they answer 503.
	Topics stratav1.TopicsClient
	// Groups is the cluster's consumer groups; it needs Topics (for
	// partition offsets). Nil turns the /v1/groups routes off: they
	// answer 503.
	Groups Groups
	// Collectors are served on /metrics beside the API's own (the
	// listener's connection limits).
	Collectors []prometheus.Collector
	// IssuedDir is where every issued certificate is recorded (public
	// part only) and listed from by GET /v1/certs; empty records none.
	IssuedDir string
}

// PolicyPath returns the policy file path inside dataDir.
func PolicyPath(dataDir string) string { return filepath.Join(dataDir, PolicyFileName) }

// API is the admin HTTP API.
type API struct {
	mux   *chi.Mux
	rules map[string]Rule
	// For extensions (extension.go).
	authz  *acl.Authorizer
	store  *policyStore
	certs  *certsResource
	groups *groupsResource

	stopOnce sync.Once
	stopping chan struct{} // closed by Stop
}

// New builds the router. lg may be nil.
//
// Routes and what they need (see Rule; "cluster" is the object):
//
//	GET    /healthz, /readyz, /v1/ca.pem   any verified certificate
//	GET    /metrics                        describe on cluster
//	GET    /v1/acl/policy[?after=&wait=]   describe_acl on cluster (the watch)
//	PUT    /v1/acl/policy                  admin on cluster
//	GET    /v1/acl/rules                   describe_acl on cluster
//	POST   /v1/acl/rules                   admin on cluster
//	DELETE /v1/acl/rules                   admin on cluster
//	GET    /v1/certs                       describe on cluster (what admin issued)
//	POST   /v1/certs, /v1/certs/csr        create on cluster (+ admin for privileged names)
//	GET    /v1/topics                      describe on cluster
//	POST   /v1/topics                      create on the topic in the body
//	GET    /v1/topics/{name}               describe on the topic
//	DELETE /v1/topics/{name}               delete on the topic
//	GET    /v1/groups                      describe on cluster; lists the groups the caller may describe
//	GET    /v1/groups/{name}               describe on group:NAME
//	DELETE /v1/groups/{name}               delete on group:NAME
//	POST   /v1/groups/{name}/offsets       alter on group:NAME (reset committed offsets)
func New(opts Options, lg *zap.Logger) (*API, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.Authorizer == nil || opts.PolicyPath == "" || opts.CAFile == "" {
		return nil, errors.New("httpapi: Authorizer, PolicyPath and CAFile are required")
	}
	if opts.Groups != nil && opts.Topics == nil {
		return nil, errors.New("httpapi: Groups needs Topics")
	}
	a := &API{stopping: make(chan struct{})}
	m := newMetrics(opts.Authorizer)
	for _, c := range opts.Collectors {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: metrics: %w", err)
		}
	}
	store := newPolicyStore(opts.Authorizer, opts.PolicyPath, m, lg)
	mux := chi.NewRouter()
	g := &guardian{mux: mux, authz: opts.Authorizer, lg: lg}

	aclRes := &aclResource{store: store, stopping: a.stopping, lg: lg}
	certs := &certsResource{ca: opts.CA, caFile: opts.CAFile, store: store, authz: opts.Authorizer,
		issued: &issuedCerts{dir: opts.IssuedDir}, m: m, lg: lg}
	topics := &topicsResource{topics: opts.Topics, g: g, lg: lg}
	groups := &groupsResource{groups: opts.Groups, topics: opts.Topics, authz: opts.Authorizer, lg: lg}
	ca := &caResource{caFile: opts.CAFile, lg: lg}

	rules := map[string]Rule{
		routeKey(http.MethodGet, "/healthz"):   {AnyAuthenticated: true},
		routeKey(http.MethodGet, "/readyz"):    {AnyAuthenticated: true},
		routeKey(http.MethodGet, "/v1/ca.pem"): {AnyAuthenticated: true},
		routeKey(http.MethodGet, "/metrics"):   ruleCluster(acl.ActionDescribe),
	}
	maps.Copy(rules, aclRes.rules("/v1/acl"))
	maps.Copy(rules, certs.rules("/v1/certs"))
	maps.Copy(rules, topics.rules("/v1/topics"))
	maps.Copy(rules, groups.rules("/v1/groups"))
	g.rules = rules

	// Metrics outermost, so refused requests are counted too.
	mux.Use(m.middleware(mux), g.middleware)
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
	mux.Method(http.MethodGet, "/metrics", m.handler(lg))
	mux.Route("/v1", func(r chi.Router) {
		r.Get("/ca.pem", ca.getPEM)
		r.Mount("/acl", aclRes.Routes())
		r.Mount("/certs", certs.Routes())
		r.Mount("/topics", topics.Routes())
		r.Mount("/groups", groups.Routes())
	})
	a.mux, a.rules = mux, rules
	a.authz, a.store, a.certs, a.groups = opts.Authorizer, store, certs, groups
	return a, nil
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Stop ends every held policy watch now (each answers 503), so that a
// graceful server shutdown need not wait for them. Call it before
// http.Server.Shutdown. It is safe to call more than once.
func (a *API) Stop() { a.stopOnce.Do(func() { close(a.stopping) }) }

// Router returns the router, for walking its routes.
func (a *API) Router() chi.Routes { return a.mux }

// Rule returns the rule of a route, as the guard sees it.
func (a *API) Rule(method, pattern string) (Rule, bool) {
	r, ok := a.rules[routeKey(method, pattern)]
	return r, ok
}
