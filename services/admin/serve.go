package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/connlimit"
	"github.com/strata-log/strata/pkg/envflag"
	"github.com/strata-log/strata/pkg/pki"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/admin/internal/cluster"
	"github.com/strata-log/strata/services/admin/internal/httpapi"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// serveConfig is the configuration of `serve`.
type serveConfig struct {
	// tracing exports the API's spans; nil (OTEL_EXPORTER_OTLP_ENDPOINT
	// unset) means tracing off.
	tracing *telemetry.Tracing

	Listen  string
	DataDir string
	TLSCert string
	TLSKey  string
	TLSCA   string
	// CAKey is the cluster CA's private key (its certificate is TLSCA):
	// with it admin issues certificates; without it the certificate
	// routes answer 503.
	CAKey string
	// ClusterAddrs are the gRPC addresses (host:port) topic and group
	// routes are forwarded to; empty turns those routes off (503).
	ClusterAddrs    []string
	ShutdownTimeout time.Duration
	// HandshakeTimeout bounds a new connection's TLS handshake, and then
	// each request's headers (net/http takes its handshake deadline from
	// the shortest of its timeouts): a client that says nothing holds its
	// connection at most this long.
	HandshakeTimeout time.Duration
	// MaxConns caps the connections open at once; past it new ones are
	// closed at once.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one remote
	// address (an IPv4 address or an IPv6 /64).
	MaxConnsPerIP int
	// LogLevel and LogFormat configure the logger (pkg/telemetry).
	LogLevel, LogFormat string
	// MetricsTargets are the brokers' and replicators' /metrics the
	// console's charts and health come from (console.go); empty scrapes
	// nothing.
	MetricsTargets []scrape.Target
	// ScrapeInterval is how often they are scraped.
	ScrapeInterval time.Duration
}

// maxHandshakeTimeout is the longest --handshake-timeout allowed.
const maxHandshakeTimeout = 10 * time.Second

// defaultServeConfig returns the defaults of `serve`.
func defaultServeConfig() serveConfig {
	return serveConfig{
		Listen:          "127.0.0.1:9443",
		ShutdownTimeout: 10 * time.Second,
		// The header deadline admin always had; a TLS handshake takes a
		// few round trips.
		HandshakeTimeout: 5 * time.Second,
		// Admin's callers are operators, the CLI, dashboards, scrapers and
		// one policy watch per broker and replicator: tens of clients.
		// 32 per address leaves room for a NAT gateway (or the Docker
		// bridge every host-side client of the compose cluster comes
		// through) while a flood from one address gets an eighth.
		MaxConns:       256,
		MaxConnsPerIP:  32,
		LogLevel:       "info",
		ScrapeInterval: defaultScrapeInterval,
	}
}

// Validate says exactly what is missing or wrong.
func (c serveConfig) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("--listen is required"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.Listen, err))
	}
	for _, f := range []struct{ name, v string }{
		{"--data-dir", c.DataDir}, {"--tls-cert", c.TLSCert}, {"--tls-key", c.TLSKey}, {"--tls-ca", c.TLSCA},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	if c.HandshakeTimeout <= 0 || c.HandshakeTimeout > maxHandshakeTimeout {
		errs = append(errs, fmt.Errorf("--handshake-timeout must be > 0 and <= %s, got %s", maxHandshakeTimeout, c.HandshakeTimeout))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("--max-conns must be >= 1, got %d", c.MaxConns))
	}
	if c.MaxConnsPerIP < 1 || c.MaxConnsPerIP > c.MaxConns {
		errs = append(errs, fmt.Errorf("--max-conns-per-ip must be >= 1 and <= --max-conns (%d), got %d", c.MaxConns, c.MaxConnsPerIP))
	}
	for _, o := range []telemetry.LogOptions{{Level: c.LogLevel}, {Format: c.LogFormat}} {
		if err := o.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("--%w", err))
		}
	}
	if c.ScrapeInterval < time.Second {
		errs = append(errs, fmt.Errorf("--scrape-interval must be >= 1s, got %s", c.ScrapeInterval))
	}
	for _, a := range c.ClusterAddrs {
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--cluster-addrs %q: want host:port", a))
		}
	}
	return errors.Join(errs...)
}

// parseServe parses the flags of `serve`, each also from its
// STRATA_<FLAG> environment variable read through getenv (pkg/envflag:
// the flag wins).
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (serveConfig, error) {
	cfg := defaultServeConfig()
	fs := flag.NewFlagSet("strata-admin serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTPS listen address")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory of the durable ACL policy (created 0700)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "admin certificate (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "admin private key (PEM)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "cluster CA certificate (PEM) client certificates must chain to")
	fs.StringVar(&cfg.CAKey, "ca-key", "", "cluster CA private key (PEM; its certificate is --tls-ca): turns on certificate issuing")
	fs.Func("cluster-addrs", "comma-separated gRPC addresses (host:port) of cluster nodes topic and group routes are forwarded to", func(v string) error {
		cfg.ClusterAddrs = nil
		for _, a := range strings.Split(v, ",") {
			if a = strings.TrimSpace(a); a != "" {
				cfg.ClusterAddrs = append(cfg.ClusterAddrs, a)
			}
		}
		return nil
	})
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "graceful shutdown deadline")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", cfg.HandshakeTimeout, "disconnect a client that has not finished its TLS handshake (and later, a request's headers) in this duration (at most 10s)")
	fs.IntVar(&cfg.MaxConns, "max-conns", cfg.MaxConns, "connections open at once; more are closed at once")
	fs.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "connections open at once from one remote address (IPv4, or IPv6 /64)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: json or console (default: console on a terminal, else json)")
	fs.Func("metrics-targets", "comma-separated NAME=host:port of every broker's and replicator's /metrics (NAME broker-N or replicator-N), scraped for the console", func(v string) (err error) {
		cfg.MetricsTargets, err = scrape.ParseTargets(v)
		return err
	})
	fs.DurationVar(&cfg.ScrapeInterval, "scrape-interval", cfg.ScrapeInterval, "how often the console scrapes --metrics-targets")
	if err := envflag.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, fmt.Errorf("%w: serve: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%w: serve: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: serve: %w", errUsage, err)
	}
	return cfg, nil
}

// runServe runs the admin HTTP API until ctx ends.
func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) (err error) {
	cfg, err := parseServe(args, getenv, stderr)
	if err != nil {
		return err
	}
	lg, err := telemetry.NewLogger(cfg.logOptions(stderr))
	if err != nil {
		return err
	}
	if cfg.tracing, err = telemetry.SetupTracing(ctx, getenv, "strata-admin", cfg.Listen); err != nil {
		return errors.Join(err, telemetry.SyncLogger(lg))
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err = errors.Join(err, cfg.tracing.Shutdown(sctx))
	}()
	if cfg.tracing != nil {
		lg.Info("tracing on", zap.String("endpoint", getenv(telemetry.TracingEndpointEnv)))
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	err = serve(ctx, cfg, ln, lg, nil)
	if err != nil {
		lg.Error("admin failed", zap.Error(err))
	}
	return errors.Join(err, telemetry.SyncLogger(lg))
}

// logOptions are the logger's options, writing to out.
func (c serveConfig) logOptions(out io.Writer) telemetry.LogOptions {
	return telemetry.LogOptions{Level: c.LogLevel, Format: c.LogFormat, Out: out}
}

// serve runs the API on ln until ctx ends, then shuts down within
// cfg.ShutdownTimeout. It owns ln and closes it. ready, when not nil, is
// closed once requests are being served.
func serve(ctx context.Context, cfg serveConfig, ln net.Listener, lg *zap.Logger, ready chan<- struct{}) (err error) {
	serving := false
	defer func() {
		if !serving {
			err = errors.Join(err, ln.Close())
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	reloader, err := pki.NewReloader(pki.Files{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA},
		pki.ReloaderOptions{}, lg)
	if err != nil {
		return fmt.Errorf("tls: %w", err)
	}
	policyPath := httpapi.PolicyPath(cfg.DataDir)
	authz, err := acl.NewAuthorizer(acl.Options{CachePath: policyPath}, lg)
	if err != nil {
		return fmt.Errorf("acl: %w", err)
	}
	if _, _, err := acl.NewCache(policyPath).Load(); errors.Is(err, acl.ErrNoCache) {
		// First start: persist the initial policy so that it is durable
		// before anyone reads it.
		text, version := authz.Policy()
		if err := acl.NewCache(policyPath).Save(text, version); err != nil {
			return fmt.Errorf("acl: save initial policy: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("acl: policy file %s: %w", policyPath, err)
	}
	cm := connlimit.NewMetrics("strata", "admin", "https")
	ln = connlimit.NewListener(ln, connlimit.Options{
		MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP, Metrics: cm, Logger: lg.Named("limits"),
	})
	apiOpts := httpapi.Options{Authorizer: authz, PolicyPath: policyPath, CAFile: cfg.TLSCA, Collectors: []prometheus.Collector{cm},
		IssuedDir: filepath.Join(cfg.DataDir, httpapi.IssuedCertsDirName)}
	if cfg.CAKey != "" {
		if apiOpts.CA, err = pki.LoadCAFiles(cfg.TLSCA, cfg.CAKey, lg); err != nil {
			return fmt.Errorf("ca-key: %w", err)
		}
	}
	if len(cfg.ClusterAddrs) > 0 {
		var dopts []grpc.DialOption
		if h := cfg.tracing.ClientHandler(); h != nil {
			dopts = append(dopts, grpc.WithStatsHandler(h)) // the API's calls join its request's trace
		}
		cc, err := cluster.Dial(cfg.ClusterAddrs, reloader.ClientConfig, lg, dopts...)
		if err != nil {
			return fmt.Errorf("cluster-addrs: %w", err)
		}
		defer func() { err = errors.Join(err, cc.Close()) }()
		apiOpts.Topics, apiOpts.Groups = cc, cc
	}
	api, err := httpapi.New(apiOpts, lg)
	if err != nil {
		return err
	}
	stopConsole, err := mountConsole(cfg, api, reloader.ClientConfig, lg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopConsole()) }()
	srv := &http.Server{
		Handler:           cfg.tracing.HTTPHandler(api, "strata-admin"),
		TLSConfig:         reloader.ServerConfig(),
		ReadHeaderTimeout: cfg.HandshakeTimeout, // also the handshake deadline: the shortest timeout
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          zap.NewStdLog(lg.Named("http")),
	}
	_, version := authz.Policy()
	lg.Info("admin serving", zap.String("addr", ln.Addr().String()), zap.Uint64("policy_version", version),
		zap.Bool("issues_certificates", apiOpts.CA != nil), zap.Strings("cluster_addrs", cfg.ClusterAddrs))

	errc := make(chan error, 1)
	serving = true // srv.Serve owns ln from here and closes it.
	// ServeTLS sets up HTTP/2 for the ALPN the TLS config offers.
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	if ready != nil {
		close(ready)
	}
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Held policy watches end now rather than at their wait.
	api.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if shutErr != nil {
		shutErr = errors.Join(shutErr, srv.Close())
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		shutErr = errors.Join(shutErr, err)
	}
	lg.Info("admin stopped")
	return shutErr
}
