package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
)

// metrics are the admin service's Prometheus metrics, on a private
// registry served at GET /metrics behind the same mTLS and authorization
// guard as every route (describe on cluster): a scraper needs a client
// certificate, as every other caller does.
type metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	policyChanges *prometheus.CounterVec
	certs         *prometheus.CounterVec
}

// unmatchedRoute labels requests that matched no route, so that scanning
// for paths cannot grow the label set.
const unmatchedRoute = "unmatched"

func newMetrics(authz *acl.Authorizer) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "admin", Name: "http_requests_total",
			Help: "HTTP requests by method, route pattern and status code (refused ones included).",
		}, []string{"method", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "strata", Subsystem: "admin", Name: "http_request_duration_seconds",
			Help:    "HTTP request latency by method and route pattern (policy watches wait up to 60s).",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 15, 30, 60},
		}, []string{"method", "route"}),
		policyChanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "admin", Name: "acl_policy_changes_total",
			Help: "ACL policy changes (replacements and rule edits) by result: applied or refused.",
		}, []string{"result"}),
		certs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "admin", Name: "certificates_total",
			Help: "Certificate requests by profile and result: issued or refused.",
		}, []string{"profile", "result"}),
	}
	version := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "strata", Subsystem: "admin", Name: "acl_policy_version",
		Help: "Version of the ACL policy in force.",
	}, func() float64 {
		_, v := authz.Policy()
		return float64(v)
	})
	m.reg.MustRegister(m.requests, m.latency, m.policyChanges, m.certs, version,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the registry.
func (m *metrics) handler(lg *zap.Logger) http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: zap.NewStdLog(lg.Named("metrics"))})
}

// middleware counts every request, refused ones included, by its route
// pattern.
func (m *metrics) middleware(mux *chi.Mux) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			next.ServeHTTP(sw, r)
			route := ""
			if rctx := chi.RouteContext(r.Context()); rctx != nil {
				route = rctx.RoutePattern()
			}
			if route == "" {
				// Refused before routing: find the route it was for.
				route = mux.Find(chi.NewRouteContext(), r.Method, routePath(r))
			}
			if route == "" {
				route = unmatchedRoute
			}
			route = trimSlash(route)
			m.requests.WithLabelValues(r.Method, route, strconv.Itoa(sw.code)).Inc()
			m.latency.WithLabelValues(r.Method, route).Observe(time.Since(start).Seconds())
		})
	}
}

// statusWriter records the status code. Unwrap lets
// http.ResponseController reach the connection (the policy watch sets its
// own write deadline).
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.code, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
