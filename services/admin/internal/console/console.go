// Package console is the admin service's web console: server-rendered
// HTML pages (html/template, a little embedded CSS and JavaScript, no
// external assets) mounted beside the admin API on the same HTTPS
// listener. The API's guard authenticates every request by its client
// certificate; each page then authorizes the caller with the rule of the
// API route it shows (Backend.Authorize), so a page reveals or changes
// nothing its API route would not, and a caller without the right ACL
// gets a 403 page. State-changing forms are protected against cross-site
// requests (csrf.go).
//
// Pages, under the mount point (/console):
//
//	GET  /                        overview: nodes, health, controller       as GET /v1/topics
//	GET  /topics                  every topic's partitions                  as GET /v1/topics
//	GET  /topics/{name}           one topic, its partitions and charts      as GET /v1/topics/{name}
//	GET  /topics/{name}/records   records at an offset                      as GET /v1/topics/{name}, and consume on the topic
//	GET  /groups                  consumer groups, their state and members  as GET /v1/groups
//	GET  /groups/{name}           one group: members, lag per partition     as GET /v1/groups/{name}
//	GET  /charts, /charts/live    throughput and lag, last 15 minutes       as GET /metrics
//	GET  /acl                     the ACL policy                            as GET /v1/acl/policy
//	POST /acl/preview, /acl       diff before save, save                    as PUT /v1/acl/policy
//	GET  /certs                   issued certificates with expiry           as GET /v1/certs
//	POST /certs                   issue a certificate                       as POST /v1/certs
//	GET  /static/*                CSS and JavaScript                        any verified certificate
package console

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/admin/internal/clusterview"
	"github.com/strata-log/strata/services/admin/internal/httpapi"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// Backend is what the console shares with the admin API (*httpapi.API).
type Backend interface {
	Authorize(id, method, pattern, object string) error
	Allowed(id, object, action string) error
	Policy() (text string, version uint64)
	CheckPolicy(id, text string) error
	ReplacePolicy(id, text string, version uint64) (uint64, error)
	IssueCert(id string, req adminapi.CertRequest) (adminapi.CertBundle, error)
	IssuedCerts() ([]adminapi.IssuedCert, error)
	CACert() (*x509.Certificate, error)
	ListGroups(ctx context.Context, id string) (adminapi.GroupList, error)
	DescribeGroup(ctx context.Context, name string) (adminapi.Group, error)
}

// Cluster is the console's view of the cluster (*clusterview.View).
type Cluster interface {
	Snapshot(ctx context.Context, topics ...string) (*clusterview.Snapshot, error)
	Read(ctx context.Context, topic string, partition int32, offset int64, maxRecords int32) (*stratav1.ConsumeResponse, error)
}

// Metrics is admin's scrape of the nodes (*scrape.Scraper).
type Metrics interface {
	Points() []scrape.Point
	Health() []scrape.Health
	Interval() time.Duration
	Window() time.Duration
}

// Options are the console's dependencies.
type Options struct {
	// Backend is the admin API. Required.
	Backend Backend
	// Cluster is nil when admin runs without --cluster-addrs: the pages
	// that need it say so.
	Cluster Cluster
	// Metrics is nil when admin scrapes nothing: the charts say so.
	Metrics Metrics
	// Identity returns the verified caller of a request
	// (httpapi.Identity when nil).
	Identity func(context.Context) string
	// CSRFKey keys the forms' tokens; random when nil (forms rendered
	// before a restart are then refused).
	CSRFKey []byte
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Base is the path the console is mounted at, for its links
	// (DefaultBase when empty).
	Base string
}

// DefaultBase is where admin mounts the console.
const DefaultBase = "/console"

// pageTimeout bounds the cluster calls of one page.
const pageTimeout = 5 * time.Second

// Console serves the pages.
type Console struct {
	opts  Options
	pages *pages
	csrf  csrf
	lg    *zap.Logger
}

// New builds the console. lg may be nil.
func New(opts Options, lg *zap.Logger) (*Console, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.Backend == nil {
		return nil, errors.New("console: Backend is required")
	}
	if opts.Identity == nil {
		opts.Identity = httpapi.Identity
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Base == "" {
		opts.Base = DefaultBase
	}
	if opts.CSRFKey == nil {
		opts.CSRFKey = make([]byte, 32)
		if _, err := rand.Read(opts.CSRFKey); err != nil {
			return nil, err
		}
	}
	p, err := parsePages()
	if err != nil {
		return nil, err
	}
	return &Console{opts: opts, pages: p, csrf: csrf{key: opts.CSRFKey}, lg: lg}, nil
}

// check is one authorization a page needs: the rule of an API route
// (apiMethod, apiPattern, its object from the URL parameter param, a
// topic or a group as kind says), or an action on the topic in param
// where no API route exists.
type check struct {
	apiMethod, apiPattern string
	action                string
	param                 string
	kind                  string
}

func asRoute(method, pattern string) check { return check{apiMethod: method, apiPattern: pattern} }

func asTopicRoute(method, pattern string) check {
	return check{apiMethod: method, apiPattern: pattern, param: "name", kind: "topic"}
}

func asGroupRoute(method, pattern string) check {
	return check{apiMethod: method, apiPattern: pattern, param: "name", kind: "group"}
}

func onTopic(action string) check { return check{action: action, param: "name", kind: "topic"} }

// Routes returns the console's router. Every route is registered with the
// checks it needs; none without.
func (c *Console) Routes() chi.Router {
	r := chi.NewRouter()
	r.Use(securityHeaders)
	page := func(method, pattern string, h http.HandlerFunc, checks ...check) {
		if len(checks) == 0 {
			panic("console: route " + pattern + " without checks") // a wiring bug, at construction
		}
		mw := []func(http.Handler) http.Handler{c.authorize(checks)}
		if method != http.MethodGet {
			mw = append(mw, c.csrf.middleware(c))
		}
		r.With(mw...).Method(method, pattern, h)
	}
	clusterDescribe := asRoute(http.MethodGet, "/v1/topics")
	page(http.MethodGet, "/", c.overview, clusterDescribe)
	page(http.MethodGet, "/topics", c.topics, clusterDescribe)
	page(http.MethodGet, "/topics/{name}", c.topic, asTopicRoute(http.MethodGet, "/v1/topics/{name}"))
	page(http.MethodGet, "/topics/{name}/records", c.records,
		asTopicRoute(http.MethodGet, "/v1/topics/{name}"), onTopic(acl.ActionConsume))
	page(http.MethodGet, "/groups", c.groups, asRoute(http.MethodGet, "/v1/groups"))
	page(http.MethodGet, "/groups/{name}", c.group, asGroupRoute(http.MethodGet, "/v1/groups/{name}"))
	page(http.MethodGet, "/charts", c.charts, asRoute(http.MethodGet, "/metrics"))
	page(http.MethodGet, "/charts/live", c.chartsLive, asRoute(http.MethodGet, "/metrics"))
	page(http.MethodGet, "/acl", c.aclView, asRoute(http.MethodGet, "/v1/acl/policy"))
	page(http.MethodPost, "/acl/preview", c.aclPreview, asRoute(http.MethodPut, "/v1/acl/policy"))
	page(http.MethodPost, "/acl", c.aclSave, asRoute(http.MethodPut, "/v1/acl/policy"))
	page(http.MethodGet, "/certs", c.certs, asRoute(http.MethodGet, "/v1/certs"))
	page(http.MethodPost, "/certs", c.certIssue, asRoute(http.MethodPost, "/v1/certs"))
	// Static assets hold no data: any verified certificate (the guard's).
	r.Method(http.MethodGet, "/static/*", http.HandlerFunc(serveStatic))
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusNotFound, "No such page.")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		c.fail(w, r, http.StatusMethodNotAllowed, "This page does not take "+r.Method+".")
	})
	return r
}

type forbiddenKey struct{}

// authorize runs checks for the caller and answers the 403 page when one
// fails.
func (c *Console) authorize(checks []check) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := c.opts.Identity(r.Context())
			for _, ch := range checks {
				object := ""
				if ch.param != "" {
					var err error
					if object, err = urlParam(r, ch.param); err != nil {
						c.fail(w, r, http.StatusBadRequest, "The address is not well formed.")
						return
					}
				}
				var err error
				var need string
				if ch.action != "" {
					err = c.opts.Backend.Allowed(id, object, ch.action)
					need = ch.action + " on " + ch.kind + " " + object
				} else {
					err = c.opts.Backend.Authorize(id, ch.apiMethod, ch.apiPattern, object)
					need = "what the API route " + ch.apiMethod + " " + ch.apiPattern + " needs"
					if object != "" {
						need += " (on " + ch.kind + " " + object + ")"
					}
				}
				if err != nil {
					if !errors.Is(err, httpapi.ErrForbidden) {
						c.lg.Error("console route authorization failed", zap.String("path", r.URL.Path), zap.Error(err))
					}
					c.lg.Info("console request denied", zap.String("identity", id), zap.String("path", r.URL.Path),
						zap.String("needs", need))
					c.fail(w, r, http.StatusForbidden, "Your identity "+id+" may not see this page: it needs "+need+".")
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// securityHeaders keeps pages from being framed, sniffed, cached or from
// loading anything but the console's own assets.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// urlParam is the route parameter name, unescaped: chi routes on the
// escaped path. Authorization and handlers read it through here alike.
func urlParam(r *http.Request, name string) (string, error) {
	return url.PathUnescape(chi.URLParam(r, name))
}

// topicName is the page's topic; authorize has checked it parses.
func topicName(r *http.Request) string {
	name, err := urlParam(r, "name")
	if err != nil {
		return ""
	}
	return name
}

// clusterCtx bounds a page's cluster calls.
func clusterCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), pageTimeout)
}
