// Command strata-replicator is the control-plane sidecar of a broker: a
// Serf member, a Raft metadata voter and, on the Raft leader, the cluster
// controller; it also replicates the partitions its broker follows from
// their leaders (internal/fetcher). See internal/node.
// `strata-replicator healthcheck` asks the replicator so configured
// whether it is serving (exit 0) or not (exit 1), for containers.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/connlimit"
	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/pkg/pki"

	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/replicator/internal/applier"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
	"github.com/strata-log/strata/services/replicator/internal/config"
	"github.com/strata-log/strata/services/replicator/internal/controller"
	"github.com/strata-log/strata/services/replicator/internal/fetcher"
	"github.com/strata-log/strata/services/replicator/internal/grpcserver"
	"github.com/strata-log/strata/services/replicator/internal/liveness"
	"github.com/strata-log/strata/services/replicator/internal/membership"
	"github.com/strata-log/strata/services/replicator/internal/metrics"
	"github.com/strata-log/strata/services/replicator/internal/node"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == healthcheckCommand {
		if err := healthcheck(context.Background(), os.Args[2:], os.Getenv, os.Stdout); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return
			}
			fmt.Fprintln(os.Stderr, "strata-replicator healthcheck:", hcheck.OneLine(err))
			os.Exit(1) // never 2: Docker reserves it
		}
		return
	}
	cfg, err := config.FromEnviron(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-replicator:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config.Config) (err error) {
	lg, err := telemetry.NewLogger(cfg.LogOptions())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, telemetry.SyncLogger(lg)) }()

	serverTLS, clientTLS, err := loadTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA)
	if err != nil {
		return err
	}
	key, err := membership.DecodeClusterKey(cfg.ClusterKey)
	if err != nil {
		return err
	}
	// Tracing: off (nil, nothing built) unless OTEL_EXPORTER_OTLP_ENDPOINT
	// is set. The fetchers follow the leaders' traced batches.
	tr, err := telemetry.SetupTracing(ctx, os.Getenv, "strata-replicator", fmt.Sprint(cfg.NodeID))
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		err = errors.Join(err, tr.Shutdown(sctx))
	}()
	if tr != nil {
		lg.Info("tracing on", zap.String("endpoint", os.Getenv(telemetry.TracingEndpointEnv)))
	}
	broker, err := applier.DialBroker(cfg.BrokerAddr, clientTLS, brokerdial.Options{MaxBackoff: cfg.BrokerReconnectBackoff}, lg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, broker.Close()) }()
	// The fetchers' appends and truncations: over the local socket when
	// the broker serves one (plain gRPC, its uid checked), else over the
	// broker's mutual TLS connection with everything else.
	var localOpts []fetcher.LocalOption
	if cfg.BrokerLocalSocket != "" {
		lconn, err := brokerdial.DialLocal(cfg.BrokerLocalSocket, cfg.BrokerLocalSocketPeerUID(),
			brokerdial.Options{MaxBackoff: cfg.BrokerReconnectBackoff})
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, lconn.Close()) }()
		localOpts = append(localOpts, fetcher.WithLocalReplica(lconn))
		lg.Info("appending over the local broker's socket (plain gRPC; the broker's uid checked)",
			zap.String("path", cfg.BrokerLocalSocket), zap.Uint32("broker_uid", cfg.BrokerLocalSocketPeerUID()))
	}
	local := fetcher.NewLocalClient(broker.Conn(), localOpts...)
	defer local.Close()
	// Fetchers dial leader brokers at their cluster-network addresses; the
	// TLS server name is each dialled host, which the broker's certificate
	// must name.
	leaders := fetcher.NewConns(clientTLS)
	defer func() { err = errors.Join(err, leaders.Close()) }()

	// Every listener caps its connections. The gRPC server's handshake
	// deadline and stream caps come from the flags, the Raft handshake
	// deadline is consensus.HandshakeTimeout.
	var lns []net.Listener
	listen := func(addr, name string, userTimeout time.Duration) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, err
		}
		cl := connlimit.NewListener(ln, connlimit.Options{MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP,
			TCPUserTimeout: userTimeout, Logger: lg.Named("limits").With(zap.String("listener", name))})
		lns = append(lns, cl)
		return cl, nil
	}
	closeAll := func() error {
		var err error
		for _, ln := range lns {
			err = errors.Join(err, ln.Close())
		}
		return err
	}
	raftLn, err := listen(cfg.RaftBind, "raft", 0)
	if err != nil {
		return errors.Join(err, closeAll())
	}
	grpcLn, err := listen(cfg.Listen, "grpc", grpcserver.KeepaliveTimeout)
	if err != nil {
		return errors.Join(err, closeAll())
	}
	var metricsLn net.Listener
	if cfg.MetricsListen != "" {
		if metricsLn, err = listen(cfg.MetricsListen, "metrics", 0); err != nil {
			return errors.Join(err, closeAll())
		}
	}
	authz, watcher, err := newAuthorizer(cfg, lg)
	if err != nil {
		return errors.Join(err, closeAll())
	}
	// hashicorp/raft writes its timings to go-metrics' process-wide sink:
	// bridged to this node's /metrics, installed before Raft starts.
	raftMetrics := metrics.NewRaftSink()
	if err := metrics.InstallRaftSink(raftMetrics); err != nil {
		return errors.Join(fmt.Errorf("raft metrics: %w", err), closeAll())
	}
	n, err := node.Start(node.Options{
		NodeID: int32(cfg.NodeID), DataDir: cfg.DataDir, RaftMetrics: raftMetrics,
		SerfBind: cfg.SerfBind, SerfAdvertise: cfg.SerfAdvertise, Join: cfg.Join, ClusterKey: key,
		RaftListener: raftLn, RaftAdvertise: cfg.RaftAdvertise,
		GRPCListener: grpcLn, Advertise: cfg.Advertise,
		BrokerAdvertise: cfg.BrokerAdvertise, BrokerInternal: cfg.BrokerAddr, Broker: broker,
		Local: local, Leaders: leaders, BrokerHealth: broker,
		Liveness:        liveness.Options{Interval: cfg.BrokerProbeInterval, Timeout: cfg.BrokerProbeTimeout, Failures: cfg.BrokerProbeFailures},
		BootstrapExpect: cfg.BootstrapExpect, Bootstrap: cfg.Bootstrap,
		ServerTLS: serverTLS, ClientTLS: clientTLS, MetricsListener: metricsLn, Pprof: cfg.Pprof, Authorizer: authz,
		Controller:  controller.Options{PreferredLeaderInterval: cfg.PreferredLeaderInterval},
		Fetcher:     fetcher.Options{Tracer: tr.Tracer("github.com/strata-log/strata/services/replicator/fetcher")},
		GRPCTracing: tr.ServerHandler(),
		GRPCLimits: grpcserver.Limits{HandshakeTimeout: cfg.HandshakeTimeout, MaxStreamsPerConn: cfg.MaxConcurrentStreams,
			MaxStreamsPerIdentity: cfg.MaxStreamsPerIdentity},
	}, lg)
	if err != nil {
		return err
	}
	if watcher != nil {
		watcher.Start()
		defer func() { err = errors.Join(err, watcher.Close()) }()
	}
	<-ctx.Done()
	lg.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return n.Close(sctx)
}

// newAuthorizer builds the ACL policy in force for the gRPC API: the
// cached last-good policy under DataDir/acl (or the default), followed from
// admin when --acl-admin-url is set, dialled with this replicator's own
// certificate.
func newAuthorizer(cfg config.Config, lg *zap.Logger) (*acl.Authorizer, *acl.Watcher, error) {
	cache := filepath.Join(cfg.DataDir, "acl", "policy.cache")
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		return nil, nil, fmt.Errorf("acl policy cache: %w", err)
	}
	a, err := acl.NewAuthorizer(acl.Options{CachePath: cache}, lg)
	if err != nil {
		return nil, nil, fmt.Errorf("acl: %w", err)
	}
	if cfg.ACLAdminURL == "" {
		return a, nil, nil
	}
	u, err := url.Parse(cfg.ACLAdminURL)
	if err != nil {
		return nil, nil, fmt.Errorf("acl-admin-url: %w", err)
	}
	rl, err := pki.NewReloader(pki.Files{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA}, pki.ReloaderOptions{}, lg)
	if err != nil {
		return nil, nil, fmt.Errorf("acl-admin-url: tls: %w", err)
	}
	tc, err := rl.ClientConfig(u.Hostname())
	if err != nil {
		return nil, nil, fmt.Errorf("acl-admin-url: tls: %w", err)
	}
	w, err := acl.NewWatcher(a, acl.WatcherOptions{AdminURL: cfg.ACLAdminURL, TLS: tc}, lg)
	if err != nil {
		return nil, nil, fmt.Errorf("acl: %w", err)
	}
	return a, w, nil
}

// loadTLS builds the server (client certs required) and client configs
// from PEM files. pkg/pki's reloading configs can replace this.
func loadTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls key pair: %w", err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("tls ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("tls ca: no certificates in %s", caFile)
	}
	server = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client = &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, RootCAs: pool}
	return server, client, nil
}
