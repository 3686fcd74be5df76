package telemetry

import (
	"context"
	"errors"
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// The metrics server's timeouts, the same in every service. A scrape is
// answered within ScrapeTimeout, well inside WriteTimeout; net/http/pprof
// extends the write deadline of a profile or trace by its duration.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	ScrapeTimeout     = 10 * time.Second
	WriteTimeout      = 15 * time.Second
	IdleTimeout       = 60 * time.Second
)

// MetricsOptions configure a MetricsServer.
type MetricsOptions struct {
	// Registry is served at /metrics; it is required.
	Registry *prometheus.Registry
	// Pprof also serves the Go profiler under /debug/pprof/ (plain HTTP,
	// no authentication: keep the listener off public networks). The
	// command line (/debug/pprof/cmdline) is not served: it may hold a
	// secret.
	Pprof bool
	// Logger receives the errors of the HTTP server and of scrapes; nil
	// means zap.NewNop().
	Logger *zap.Logger
}

// MetricsServer serves /metrics (and /debug/pprof/) over plain HTTP with
// timeouts. Run Serve on its own goroutine and stop it with Shutdown.
type MetricsServer struct {
	srv *http.Server
}

// NewMetricsServer builds the server; it serves nothing until Serve.
func NewMetricsServer(o MetricsOptions) *MetricsServer {
	lg := o.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		Registry: o.Registry, // counts the handler's own errors
		ErrorLog: zap.NewStdLog(lg.Named("metrics")),
		Timeout:  ScrapeTimeout,
	}))
	if o.Pprof {
		mux.HandleFunc("/debug/pprof/", httppprof.Index)
		mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	}
	return &MetricsServer{srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		ErrorLog:          zap.NewStdLog(lg.Named("metrics_http")),
	}}
}

// Serve serves on ln until Shutdown, which closes ln; it returns nil after
// Shutdown and the listener's error otherwise.
func (s *MetricsServer) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server: it closes the listener, waits for requests in
// flight until ctx ends and then cuts them.
func (s *MetricsServer) Shutdown(ctx context.Context) error {
	if err := s.srv.Shutdown(ctx); err != nil {
		return errors.Join(err, s.srv.Close())
	}
	return nil
}
