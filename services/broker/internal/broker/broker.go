// Package broker wires the broker together: topic registry, gRPC server,
// metrics and tracing, with their start and orderly shutdown.
package broker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/stats"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/connlimit"
	"github.com/strata-log/strata/pkg/connlimit/grpclimit"
	"github.com/strata-log/strata/pkg/grpctls"
	"github.com/strata-log/strata/pkg/grpctls/localsock"
	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"

	"github.com/strata-log/strata/services/broker/internal/authz"
	"github.com/strata-log/strata/services/broker/internal/config"
	"github.com/strata-log/strata/services/broker/internal/dirprobe"
	"github.com/strata-log/strata/services/broker/internal/grpcserver"
	"github.com/strata-log/strata/services/broker/internal/isr"
	"github.com/strata-log/strata/services/broker/internal/metrics"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/producerid"
	"github.com/strata-log/strata/services/broker/internal/quota"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// Options are what the process adds to the Config: security seams
// (credentials and interceptors from pkg/pki and pkg/acl), the
// environment for tracing, and a storage seam for tests.
type Options struct {
	// GRPC's credentials, interceptors and stats handlers run after the
	// broker's own metrics interceptors and tracing handler.
	GRPC grpcserver.Options
	// Getenv reads OTEL_* variables; nil means os.Getenv.
	Getenv func(string) string
	// OpenLog opens a partition's log; nil means logstore.Open. Tests put
	// a failing file layer (logstore.Options.FS) under the logs with it.
	OpenLog topic.OpenLogFunc
}

// Broker is a running broker.
type Broker struct {
	cfg   config.Config
	lg    *zap.Logger
	reg   *topic.Registry
	authz *acl.Authorizer // nil in plaintext (insecure-no-auth) mode
	grpc  *grpcserver.Server
	lis   net.Listener
	mlis  net.Listener
	llis  net.Listener // the local socket (cfg.LocalSocket); nil when off
	msrv  *telemetry.MetricsServer
	trace *telemetry.Tracing // nil: tracing off
	// replicator is the connection to this node's replicator; nil unless
	// in cluster mode.
	replicator *grpc.ClientConn
	stopISR    context.CancelFunc // ends the ISR manager (cluster mode)
	stopProbe  context.CancelFunc // ends the data directory probe
	stopClean  context.CancelFunc // ends the compaction loop
	peers      *peerPool          // other brokers; nil unless in cluster mode
	watcher    *acl.Watcher       // follows admin's ACL policy; nil without acl-admin-url
	errc       chan error         // servers' unexpected exits
	stop       chan struct{}
	wg         sync.WaitGroup
	stopOnce   sync.Once
	stopErr    error
}

// Start opens the data directory, binds the listeners and starts serving.
func Start(ctx context.Context, cfg config.Config, lg *zap.Logger, opts Options) (_ *Broker, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	b := &Broker{cfg: cfg, lg: lg, errc: make(chan error, 3), stop: make(chan struct{})} // errc: one per server
	var cleanup []func() error
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				err = errors.Join(err, cleanup[i]())
			}
		}
	}()

	m := metrics.New(func() []metrics.PartitionStat { return partitionStats(b.reg) })
	m.WatchDataDirs(cfg.DataDir)
	state := func(string, int32) partition.State {
		if cfg.ClusterMode() {
			// No role until the replicator says (ApplyPartitionState).
			return partition.State{Role: partition.RoleNone, LeaderID: -1}
		}
		return partition.State{
			Role:        partition.RoleLeader,
			LeaderEpoch: 0,
			LeaderID:    cfg.NodeID,
			LeaderAddr:  cfg.AdvertisedAddr(),
			Replicas:    []int32{cfg.NodeID},
			ISR:         []int32{cfg.NodeID},
		}
	}
	var lease time.Duration // a single node has no replicator to confirm it, and no rival
	if cfg.ClusterMode() {
		lease = cfg.LeaderLease
	}
	b.reg, err = topic.Open(topic.Options{
		Dir:              cfg.DataDir,
		Defaults:         cfg.TopicDefaults,
		State:            state,
		OpenLog:          opts.OpenLog,
		ObserveFsync:     m.ObserveFsync,
		LeaderLease:      lease,
		Logger:           lg,
		ProducerIDExpiry: cfg.ProducerIDExpiry,
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, b.reg.Close)
	// The local socket is bound before anything serves or runs, so that a
	// path in use or not a socket fails the start with nothing to undo.
	if cfg.LocalSocket != "" {
		b.llis, err = localsock.Listen(cfg.LocalSocket)
		if err != nil {
			return nil, fmt.Errorf("broker: local-socket: %w", err)
		}
		cleanup = append(cleanup, func() error { return ignoreClosed(b.llis.Close()) })
	}

	b.trace, err = telemetry.SetupTracing(ctx, opts.Getenv, "strata-broker", fmt.Sprint(cfg.NodeID))
	if err != nil {
		return nil, err
	}
	var rl *pki.Reloader
	if cfg.TLSEnabled() {
		rl, err = pki.NewReloader(pki.Files{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA}, pki.ReloaderOptions{}, lg)
		if err != nil {
			return nil, fmt.Errorf("broker: tls: %w", err)
		}
	}
	creds := opts.GRPC.Creds
	if creds == nil && rl != nil {
		creds = grpctls.Credentials(rl.ServerConfig())
	}
	lm := grpclimit.NewMetrics("strata", "broker")
	m.Registry().MustRegister(lm)
	limits := grpclimit.New(grpclimit.Options{
		MaxStreamsPerConn:     cfg.MaxConcurrentStreams,
		MaxStreamsPerIdentity: cfg.MaxStreamsPerIdentity,
		Identity:              verifiedIdentity,
		Metrics:               lm,
		Logger:                lg.Named("limits"),
	})
	if creds != nil {
		creds = limits.Credentials(creds)
	}
	var cluster *grpcserver.ClusterConfig
	if cfg.ClusterMode() {
		b.replicator, err = dialReplicator(cfg.ReplicatorAddr, rl)
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, b.replicator.Close)
		peers := newPeerPool(rl)
		cleanup = append(cleanup, peers.Close)
		b.peers = peers
		cluster = &grpcserver.ClusterConfig{Replicator: b.replicator, Topics: b.reg, ReplicatorIdentity: cfg.ReplicatorIdentity(), Peers: peers}
		lg.Info("cluster mode", zap.String("replicator", cfg.ReplicatorAddr), zap.String("replicator_identity", cfg.ReplicatorIdentity()))
	}
	// Metrics first, so refused calls are counted; the per-identity cap
	// and authorization next, so no handler or later interceptor runs for
	// a refused call.
	unary := []grpc.UnaryServerInterceptor{m.UnaryInterceptor(), limits.UnaryInterceptor()}
	stream := []grpc.StreamServerInterceptor{m.StreamInterceptor(), limits.StreamInterceptor()}
	if cfg.TLSEnabled() {
		var ic *acl.Interceptor
		b.authz, ic, err = authz.New(cfg.ACLPolicy, cfg.DataDir, lg)
		if err != nil {
			return nil, err
		}
		unary, stream = append(unary, ic.Unary()), append(stream, ic.Stream())
		if cfg.ACLAdminURL != "" {
			b.watcher, err = authz.NewWatcher(b.authz, cfg.ACLAdminURL, pki.Files{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA}, lg)
			if err != nil {
				return nil, err
			}
			b.watcher.Start()
			cleanup = append(cleanup, b.watcher.Close)
		}
	} else {
		lg.Warn("plaintext gRPC without authentication or authorization (insecure-no-auth): local development only")
	}
	gopts := grpcserver.Options{
		Creds:              creds,
		UnaryInterceptors:  append(unary, opts.GRPC.UnaryInterceptors...),
		StreamInterceptors: append(stream, opts.GRPC.StreamInterceptors...),
		StatsHandlers:      append([]stats.Handler{limits.StatsHandler()}, opts.GRPC.StatsHandlers...),
	}
	if b.authz != nil {
		gopts.Policy = b.authz
		// Quotas are q lines of the same policy, so they follow its watch.
		q := quota.New(b.authz, lg.Named("quota"))
		for _, c := range q.Collectors() {
			m.Registry().MustRegister(c)
		}
		gopts.Quotas = q
	}
	if b.trace != nil {
		cleanup = append(cleanup, func() error { return b.trace.Shutdown(context.Background()) })
		// The replication data path's hot RPCs make their own spans when
		// the caller traces (grpcserver/tracing.go), not one per call.
		gopts.StatsHandlers = append(gopts.StatsHandlers, b.trace.ServerHandler(
			stratav1.LocalReplica_Append_FullMethodName, stratav1.LocalReplica_AppendStream_FullMethodName,
			stratav1.ReplicaFetch_Fetch_FullMethodName))
		gopts.Tracer = b.trace.Tracer("github.com/strata-log/strata/services/broker")
		lg.Info("tracing on", zap.String("endpoint", opts.Getenv(telemetry.TracingEndpointEnv)))
	}
	// Producer ids: from the controller's Raft log through this node's
	// replicator in a cluster, from a file in the data directory alone.
	var idSource producerid.Source = producerid.NewLocal(cfg.DataDir)
	if cfg.ClusterMode() {
		idSource = producerid.NewRemote(b.replicator, cfg.NodeID)
	}
	producerIDs := producerid.New(idSource)
	b.grpc = grpcserver.New(grpcserver.Config{
		NodeID:                cfg.NodeID,
		AdvertiseAddr:         cfg.AdvertisedAddr(),
		AutoCreateTopics:      cfg.AutoCreateTopics,
		MaxRecvMsgBytes:       cfg.MaxRecvMsgBytes,
		MaxSendMsgBytes:       cfg.MaxSendMsgBytes,
		MaxConcurrentStreams:  cfg.MaxConcurrentStreams,
		MaxOpenStreams:        cfg.MaxOpenStreams,
		ProduceStreamInFlight: cfg.ProduceStreamInFlight,
		KeepaliveMinTime:      cfg.KeepaliveMinTime,
		KeepaliveTime:         cfg.KeepaliveTime,
		KeepaliveTimeout:      cfg.KeepaliveTimeout,
		HandshakeTimeout:      cfg.HandshakeTimeout,
		Cluster:               cluster,
		ProducerIDs:           producerIDs,
	}, b.reg, b.reg, m, lg, gopts)
	for _, c := range b.grpc.Collectors() {
		m.Registry().MustRegister(c)
	}

	// userTimeout is what gRPC would set on an unwrapped connection (its
	// keepalive timeout); the metrics server keeps the system's.
	listen := func(addr, name string, userTimeout time.Duration) (net.Listener, error) {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		cm := connlimit.NewMetrics("strata", "broker", name)
		m.Registry().MustRegister(cm)
		return connlimit.NewListener(ln, connlimit.Options{
			MaxConns: cfg.MaxConns, MaxConnsPerIP: cfg.MaxConnsPerIP, Metrics: cm, TCPUserTimeout: userTimeout,
			Logger: lg.Named("limits").With(zap.String("listener", name)),
		}), nil
	}
	b.lis, err = listen(cfg.Listen, "grpc", cfg.KeepaliveTimeout)
	if err != nil {
		return nil, fmt.Errorf("broker: listen: %w", err)
	}
	cleanup = append(cleanup, func() error { return ignoreClosed(b.lis.Close()) })
	if cfg.MetricsListen != "" {
		b.mlis, err = listen(cfg.MetricsListen, "metrics", 0)
		if err != nil {
			return nil, fmt.Errorf("broker: metrics listen: %w", err)
		}
		b.msrv = telemetry.NewMetricsServer(telemetry.MetricsOptions{Registry: m.Registry(), Pprof: cfg.Pprof, Logger: lg})
		b.goServe("metrics", func() error { return b.msrv.Serve(b.mlis) })
	}
	b.goServe("grpc", func() error { return b.grpc.Serve(b.lis) })
	if b.llis != nil {
		b.serveLocal(m, opts.GRPC.StatsHandlers)
	}
	b.wg.Add(1)
	go b.retentionLoop()
	b.startDirProbe(m.Registry())
	b.startCompaction()
	if cfg.ClusterMode() {
		mgr := isr.New(isr.Options{NodeID: cfg.NodeID, LagMax: cfg.ReplicaLagMax, Partitions: b.partitions, OnChange: m.ISRChange},
			stratav1.NewControllerClient(b.replicator), lg)
		var ctx context.Context
		ctx, b.stopISR = context.WithCancel(context.Background())
		keeper := isr.NewLeaseKeeper(isr.LeaseOptions{NodeID: cfg.NodeID, Lease: lease, Partitions: b.partitions, OnEvent: m.LeaderLease},
			stratav1.NewMetadataClient(b.replicator), lg)
		b.wg.Add(2)
		go func() {
			defer b.wg.Done()
			mgr.Run(ctx)
		}()
		go func() {
			defer b.wg.Done()
			keeper.Run(ctx)
		}()
	}
	lg.Info("broker started",
		zap.Int32("node_id", cfg.NodeID),
		zap.Stringer("listen", b.lis.Addr()),
		zap.String("advertise", cfg.AdvertisedAddr()),
		zap.String("data_dir", cfg.DataDir),
		zap.Bool("tls", creds != nil),
		zap.Bool("authz", b.authz != nil))
	return b, nil
}

// serveLocal serves LocalReplica to this node's replicator on the local
// socket (b.llis, cfg.LocalSocket): plain gRPC, the peer admitted by its
// uid (pkg/grpctls/localsock), with the metrics interceptors and the
// tracing handler of the main server but no ACL: the uid is the identity
// there. The server stops with the main one (grpcserver.Server.Stop),
// which closes the listener and so removes the socket.
func (b *Broker) serveLocal(m *metrics.Metrics, extra []stats.Handler) {
	uid := b.cfg.LocalSocketUID()
	ln := b.llis
	lg := b.lg.Named("local-socket")
	hs := append([]stats.Handler(nil), extra...)
	if b.trace != nil {
		hs = append(hs, b.trace.ServerHandler(stratav1.LocalReplica_Append_FullMethodName, stratav1.LocalReplica_AppendStream_FullMethodName))
	}
	lopts := grpcserver.LocalOptions{
		Creds: localsock.Credentials(uid, func(err error) {
			lg.Warn("local socket peer refused", zap.String("path", b.cfg.LocalSocket), zap.Error(err))
		}),
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{m.UnaryInterceptor()},
		StreamInterceptors: []grpc.StreamServerInterceptor{m.StreamInterceptor()},
		StatsHandlers:      hs,
	}
	b.goServe("local socket", func() error { return b.grpc.ServeLocal(ln, lopts) })
	lg.Info("serving LocalReplica on the local socket (plain gRPC; peers admitted by uid)",
		zap.String("path", b.cfg.LocalSocket), zap.Uint32("peer_uid", uid))
}

// startDirProbe probes the data directory for writes every
// cfg.DataDirProbeInterval and reports the broker NOT_SERVING while it
// takes none, so that its replicator's liveness probe counts the broker as
// down and the controller moves its leaderships away, as for a dead
// broker. The probe ends with the broker.
func (b *Broker) startDirProbe(reg prometheus.Registerer) {
	writable := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "strata", Subsystem: "broker", Name: "data_dir_writable",
		Help: "1 while the data directory takes writes (a probe file is written, fsynced and removed every second), 0 otherwise.",
	})
	reg.MustRegister(writable)
	var ctx context.Context
	ctx, b.stopProbe = context.WithCancel(context.Background())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		dirprobe.Run(ctx, dirprobe.Options{Dir: b.cfg.DataDir, Interval: b.cfg.DataDirProbeInterval, OnChange: func(err error) {
			if err != nil {
				writable.Set(0)
				b.grpc.SetServing(false)
				b.lg.Error("data directory not writable: reporting NOT_SERVING so that leadership moves away",
					zap.String("data_dir", b.cfg.DataDir), zap.Error(err))
				return
			}
			writable.Set(1)
			b.grpc.SetServing(true)
			b.lg.Info("data directory writable", zap.String("data_dir", b.cfg.DataDir))
		}})
	}()
}

// startCompaction cleans compacted topics every cfg.CompactionInterval in
// its own goroutine (a clean of a large log takes a while; retention and
// high watermark checkpoints must not wait for it). A clean in progress
// is abandoned at shutdown, which the engine undoes safely.
func (b *Broker) startCompaction() {
	var ctx context.Context
	ctx, b.stopClean = context.WithCancel(context.Background())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(b.cfg.CompactionInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.reg.Compact(ctx)
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (b *Broker) goServe(name string, serve func() error) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		if err := serve(); err != nil {
			b.errc <- fmt.Errorf("broker: %s server: %w", name, err)
		}
	}()
}

// retentionLoop applies age retention to idle partitions (appends apply it
// themselves) and checkpoints high watermarks.
func (b *Broker) retentionLoop() {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.RetentionCheckInterval)
	defer t.Stop()
	hw := time.NewTicker(hwCheckpointInterval)
	defer hw.Stop()
	for {
		select {
		case <-t.C:
			b.reg.ApplyRetention()
		case <-hw.C:
			for _, p := range b.partitions() {
				if err := p.CheckpointHW(); err != nil {
					b.lg.Warn("high watermark checkpoint failed", zap.Error(err))
				}
			}
		case <-b.stop:
			return
		}
	}
}

// hwCheckpointInterval is how often high watermarks are written down; a
// restarted broker may serve up to this much less than it had committed
// until its followers report again.
const hwCheckpointInterval = 5 * time.Second

// partitions lists every open partition.
func (b *Broker) partitions() []*partition.Partition {
	var ps []*partition.Partition
	for _, t := range b.reg.List() {
		ps = append(ps, t.Partitions()...)
	}
	return ps
}

// Authorizer is the policy in force, for replacing it at run time (a
// policy watcher); nil in plaintext (insecure-no-auth) mode.
func (b *Broker) Authorizer() *acl.Authorizer { return b.authz }

// Addr is the bound gRPC address.
func (b *Broker) Addr() net.Addr { return b.lis.Addr() }

// LocalSocketAddr is the local socket's address, nil when off.
func (b *Broker) LocalSocketAddr() net.Addr {
	if b.llis == nil {
		return nil
	}
	return b.llis.Addr()
}

// MetricsAddr is the bound /metrics address, nil when off.
func (b *Broker) MetricsAddr() net.Addr {
	if b.mlis == nil {
		return nil
	}
	return b.mlis.Addr()
}

// Err reports a server that stopped on its own.
func (b *Broker) Err() <-chan error { return b.errc }

// Shutdown stops accepting, ends streams, stops gRPC gracefully (cutting
// open RPCs after cfg.ShutdownTimeout), then syncs and closes every log.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.lg.Info("broker stopping")
		gctx, cancel := context.WithTimeout(ctx, b.cfg.ShutdownTimeout)
		defer cancel()
		b.grpc.Stop(gctx)
		close(b.stop)
		if b.stopISR != nil {
			b.stopISR()
		}
		b.stopProbe()
		b.stopClean()
		var errs []error
		if b.watcher != nil {
			errs = append(errs, b.watcher.Close())
		}
		if b.msrv != nil {
			errs = append(errs, b.msrv.Shutdown(gctx))
		}
		b.wg.Wait()
		if b.replicator != nil {
			errs = append(errs, b.replicator.Close())
		}
		if b.peers != nil {
			errs = append(errs, b.peers.Close())
		}
		errs = append(errs, b.reg.Close(), b.trace.Shutdown(gctx))
		b.stopErr = errors.Join(errs...)
		if b.stopErr != nil {
			b.lg.Error("broker stopped with errors", zap.Error(b.stopErr))
		} else {
			b.lg.Info("broker stopped")
		}
	})
	return b.stopErr
}

// Run starts the broker and serves until ctx ends (SIGTERM/SIGINT) or a
// server fails, then shuts down.
func Run(ctx context.Context, cfg config.Config, lg *zap.Logger, opts Options) error {
	b, err := Start(ctx, cfg, lg, opts)
	if err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-b.Err():
	}
	return errors.Join(serveErr, b.Shutdown(context.WithoutCancel(ctx)))
}

func partitionStats(reg *topic.Registry) []metrics.PartitionStat {
	if reg == nil {
		return nil
	}
	var out []metrics.PartitionStat
	for _, t := range reg.List() {
		for _, p := range t.Partitions() {
			s := metrics.PartitionStat{
				Topic: t.Name(), Partition: p.ID(),
				LogStartOffset: p.LogStartOffset(), LogEndOffset: p.LogEndOffset(), HighWatermark: p.HighWatermark(),
				Segments: -1, Bytes: -1, CorruptRecords: -1, NoSpaceErrors: -1,
				Healthy: p.Healthy() == nil,
			}
			if ls, ok := p.LogStats(); ok {
				s.Segments, s.Bytes = ls.Segments, ls.Bytes
				s.CorruptRecords, s.NoSpaceErrors = int64(ls.CorruptRecords), int64(ls.NoSpaceErrors)
			}
			if st := p.State(); st.Role == partition.RoleLeader {
				s.Leader, s.Replicas, s.ISR, s.MinISR = true, len(st.Replicas), len(st.ISR), int(t.Config().MinInsyncReplicas)
				for _, f := range p.Followers() {
					s.Followers = append(s.Followers, metrics.FollowerStat{ID: f.ID, LagRecords: f.Records, LagSeconds: f.SinceCaughtUp.Seconds()})
				}
			}
			out = append(out, s)
		}
	}
	return out
}

// dialReplicator makes the (lazily connecting) client of this node's
// replicator, authenticated with the broker's own certificate.
func dialReplicator(addr string, rl *pki.Reloader) (*grpc.ClientConn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("broker: replicator-addr %q: %w", addr, err)
	}
	tlsConf, err := rl.ClientConfig(host)
	if err != nil {
		return nil, fmt.Errorf("broker: replicator tls: %w", err)
	}
	// The replicator is this node's own: after it restarts, reconnect
	// within a second (gRPC's default backoff grows to 2 minutes), or the
	// leader lease, ISR changes and forwarded calls wait that long.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)),
		grpc.WithConnectParams(grpc.ConnectParams{MinConnectTimeout: 5 * time.Second,
			Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}}))
	if err != nil {
		return nil, fmt.Errorf("broker: replicator client %s: %w", addr, err)
	}
	return conn, nil
}

// verifiedIdentity is the common name of a call's verified client
// certificate; none in plaintext mode.
func verifiedIdentity(ctx context.Context) (string, bool) {
	id, err := pki.IdentityFromPeer(ctx)
	return id, err == nil
}

func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
