// Package grpcserver serves the strata.v1 Log, Metadata and Topics services,
// grpc.health.v1 and reflection over one gRPC server.
package grpcserver

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/grpctls"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/group"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// Catalog finds topics and partitions. *topic.Registry satisfies it.
type Catalog interface {
	Get(name string) (*topic.Topic, error)
	List() []*topic.Topic
	Partition(name string, id int32) (*partition.Partition, error)
}

// TopicAdmin changes the set of topics. *topic.Registry satisfies it on a
// single node; in a cluster it becomes a client forwarding to the
// controller, which applies the change to every broker.
type TopicAdmin interface {
	Create(ctx context.Context, name string, cfg topicconfig.Config) (*topic.Topic, error)
	Delete(ctx context.Context, name string) error
	Alter(ctx context.Context, name string, cfg topicconfig.Config) (*topic.Topic, error)
}

// Recorder counts the data plane's records and bytes; nil means none.
type Recorder interface {
	Produced(topic string, records, bytes int)
	Consumed(topic string, records, bytes int)
	// Fetched counts frame bytes sent to followers.
	Fetched(topic string, bytes int)
}

// BatchTimer is a Recorder's optional capability: the latency of each
// batch (not of the stream that carries it) and the produce errors by code.
type BatchTimer interface {
	ProduceBatch(acks string, code codes.Code, d time.Duration)
	// ReadBatch times a batch sent to a consumer ("consume") or a
	// follower ("fetch").
	ReadBatch(kind string, d time.Duration)
}

// Config is the server's behaviour and limits.
type Config struct {
	NodeID           int32
	AdvertiseAddr    string
	AutoCreateTopics bool

	MaxRecvMsgBytes       int
	MaxSendMsgBytes       int
	MaxConcurrentStreams  uint32
	MaxOpenStreams        int
	ProduceStreamInFlight int

	KeepaliveMinTime time.Duration
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration

	// HandshakeTimeout bounds a new connection's TLS handshake and HTTP/2
	// preface (grpc.ConnectionTimeout); zero means gRPC's 120 s.
	HandshakeTimeout time.Duration

	// Cluster, when set, puts the server in cluster mode.
	Cluster *ClusterConfig

	// ProducerIDs hands out idempotent producers' ids (InitProducer);
	// nil refuses InitProducer with Unimplemented.
	ProducerIDs ProducerIDs
}

// ProducerIDs gives out producer ids never given out before, and tells
// the ids it (or another broker of the cluster) gave out from the rest;
// *producerid.Allocator satisfies it.
type ProducerIDs interface {
	Next(ctx context.Context) (int64, error)
	// Issued is nil for an id the cluster handed out, an error wrapping
	// producerid.ErrNeverIssued for one it never did.
	Issued(ctx context.Context, id int64) error
}

// ClusterConfig is what a cluster-mode broker's server needs: Topics and
// Metadata calls are answered by the replicator (the controller's view),
// and the Replica service is served for it.
type ClusterConfig struct {
	// Replicator is the connection to this node's replicator.
	Replicator grpc.ClientConnInterface
	// Topics applies the controller's topic configs locally.
	Topics TopicEnsurer
	// ReplicatorIdentity is the only identity allowed to call
	// ApplyPartitionState; empty means no check (plaintext tests).
	ReplicatorIdentity string
	// Peers dials other brokers (the group coordinator asks partition
	// leaders for high watermarks).
	Peers Peers
}

// Options are the seams for security and observability: transport
// credentials (pkg/pki, mTLS), interceptors (metrics, pkg/acl) and stats
// handlers (otelgrpc). Interceptors run in order, after the server's own
// open-stream limit.
type Options struct {
	// Creds secures the listener; nil means plaintext.
	Creds              credentials.TransportCredentials
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
	StatsHandlers      []stats.Handler
	// Quotas paces identities' produce and consume bytes; nil means none.
	Quotas Quotas
	// Policy authorizes the Groups service's calls in its handlers (they
	// name several objects); nil means authorization off.
	Policy Policy
	// Tracer makes the data path's spans for traced records (tracing.go);
	// nil means tracing off, and no record header is looked at.
	Tracer trace.Tracer
}

// Server is the broker's gRPC server.
type Server struct {
	cfg      Config
	grpc     *grpc.Server
	groups   *group.Coordinator
	health   *health.Server
	lg       *zap.Logger
	shutdown chan struct{} // closed when Stop begins: streams end cleanly
	replica  *replicaBase  // the replica services' state; nil unless in cluster mode

	mu       sync.Mutex
	locals   []*grpc.Server // ServeLocal's servers (local.go)
	stopping bool
}

// New builds the server and registers every service.
func New(cfg Config, cat Catalog, admin TopicAdmin, rec Recorder, lg *zap.Logger, opts Options) *Server {
	if lg == nil {
		lg = zap.NewNop()
	}
	if rec == nil {
		rec = nopRecorder{}
	}
	s := &Server{cfg: cfg, lg: lg, shutdown: make(chan struct{}), health: health.NewServer()}
	limit := newStreamLimit(cfg.MaxOpenStreams)
	sopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(cfg.MaxRecvMsgBytes),
		grpc.ReadBufferSize(grpctls.BufferBytes),
		grpc.WriteBufferSize(grpctls.BufferBytes),
		grpc.MaxSendMsgSize(cfg.MaxSendMsgBytes),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: cfg.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: cfg.KeepaliveTime, Timeout: cfg.KeepaliveTimeout}),
		grpc.ChainUnaryInterceptor(opts.UnaryInterceptors...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{limit.intercept}, opts.StreamInterceptors...)...),
	}
	if cfg.HandshakeTimeout > 0 {
		sopts = append(sopts, grpc.ConnectionTimeout(cfg.HandshakeTimeout))
	}
	if opts.Creds != nil {
		sopts = append(sopts, grpc.Creds(opts.Creds))
	}
	for _, h := range opts.StatsHandlers {
		sopts = append(sopts, grpc.StatsHandler(h))
	}
	s.grpc = grpc.NewServer(sopts...)
	tr := newTracer(opts.Tracer)

	stratav1.RegisterLogServer(s.grpc, &logService{cfg: cfg, cat: cat, admin: admin, rec: rec, timer: batchTimer(rec), lg: lg, shutdown: s.shutdown, quotas: opts.Quotas, tr: tr})
	gc := &groupCluster{cat: cat, nodeID: cfg.NodeID}
	if c := cfg.Cluster; c != nil {
		fwd := &forwarder{cat: cat, topics: stratav1.NewTopicsClient(c.Replicator), meta: stratav1.NewMetadataClient(c.Replicator)}
		meta, topics := &forwardedMetadata{f: fwd}, &forwardedTopics{f: fwd}
		stratav1.RegisterMetadataServer(s.grpc, meta)
		stratav1.RegisterTopicsServer(s.grpc, topics)
		s.replica = &replicaBase{cluster: *c, nodeID: cfg.NodeID, cat: cat, lg: lg.Named("replica"),
			maxSendBytes: cfg.MaxSendMsgBytes, shutdown: s.shutdown, rec: rec, timer: batchTimer(rec), tr: tr}
		registerReplicaServices(s.grpc, s.replica)
		gc.metadata, gc.peers = meta.Metadata, c.Peers
		gc.create = func(ctx context.Context, req *stratav1.CreateTopicRequest) error {
			_, err := topics.CreateTopic(ctx, req)
			return err
		}
	} else {
		meta, topics := &metadataService{cfg: cfg, cat: cat}, &topicsService{cfg: cfg, cat: cat, admin: admin}
		stratav1.RegisterMetadataServer(s.grpc, meta)
		stratav1.RegisterTopicsServer(s.grpc, topics)
		gc.metadata = meta.Metadata
		gc.create = func(ctx context.Context, req *stratav1.CreateTopicRequest) error {
			_, err := topics.CreateTopic(ctx, req)
			return err
		}
	}
	s.groups = group.NewCoordinator(gc, group.Options{}, lg.Named("groups"))
	stratav1.RegisterGroupsServer(s.grpc, &groupsService{coord: s.groups, nodeID: cfg.NodeID, policy: opts.Policy})
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	return s
}

// Collectors are the server's own metrics (the group coordinator's), to
// register on the broker's registry.
func (s *Server) Collectors() []prometheus.Collector { return s.groups.Collectors() }

// SetServing reports the whole server SERVING or NOT_SERVING on
// grpc.health.v1 (the empty service name, which the replicator's
// liveness probe and the container healthcheck ask). After Stop it has
// no effect.
func (s *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_SERVING
	if !ok {
		st = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", st)
}

// Serve accepts connections on lis until Stop. It returns nil after Stop.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop reports NOT_SERVING, ends ConsumeStreams waiting at the log end
// (and Fetch and AppendStream streams), and stops gracefully, the local
// socket's server (ServeLocal) with the main one; when ctx ends first,
// open RPCs are cut.
func (s *Server) Stop(ctx context.Context) {
	s.health.Shutdown()
	close(s.shutdown)
	s.groups.Close() // group sessions are long-lived streams: end them first
	s.mu.Lock()
	s.stopping = true
	servers := append([]*grpc.Server{s.grpc}, s.locals...)
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, srv := range servers {
			wg.Go(srv.GracefulStop)
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.lg.Warn("graceful stop timed out; closing open RPCs")
		for _, srv := range servers {
			srv.Stop()
		}
		<-done
	}
}

// streamLimit bounds the streaming RPCs open on the server.
type streamLimit struct{ sem chan struct{} }

func newStreamLimit(n int) *streamLimit { return &streamLimit{sem: make(chan struct{}, max(n, 1))} }

func (l *streamLimit) intercept(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	select {
	case l.sem <- struct{}{}:
	default:
		return status.Errorf(codes.ResourceExhausted, "too many open streams (max %d)", cap(l.sem))
	}
	defer func() { <-l.sem }()
	return handler(srv, ss)
}

type nopRecorder struct{}

// batchTimer is rec's BatchTimer, or one that does nothing.
func batchTimer(rec Recorder) BatchTimer {
	if t, ok := rec.(BatchTimer); ok {
		return t
	}
	return nopRecorder{}
}

func (nopRecorder) ProduceBatch(string, codes.Code, time.Duration) {}
func (nopRecorder) ReadBatch(string, time.Duration)                {}

func (nopRecorder) Produced(string, int, int) {}
func (nopRecorder) Consumed(string, int, int) {}
func (nopRecorder) Fetched(string, int)       {}
