// Package grpcserver is the replicator's gRPC API: strata.v1.Topics (topic
// administration; a follower forwards to the controller, the Raft leader),
// strata.v1.Controller (partition leaders' ISR changes, forwarded the same
// way) and strata.v1.Metadata (the cluster as the local FSM knows it), with
// grpc.health.v1 and reflection, over mutual TLS.
package grpcserver

import (
	"context"
	"crypto/tls"
	"time"

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

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/connlimit/grpclimit"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

// MaxMessageBytes bounds requests and responses.
const MaxMessageBytes = 4 << 20

// Controller performs topic changes and moves leadership off a partition
// leader that resigns; only called on the Raft leader.
type Controller interface {
	CreateTopic(ctx context.Context, name string, cfg topicconfig.Config) (*metadata.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	AlterTopic(ctx context.Context, name string, cfg topicconfig.Config) (*metadata.Topic, error)
	ResignLeader(ctx context.Context, topic string, partition, leaderID, leaderEpoch int32, reason string) (metadata.Partition, error)
	AllocateProducerIDs(ctx context.Context, brokerID int32) (first int64, count int32, err error)
}

// Cluster is the Raft view the server needs.
type Cluster interface {
	IsLeader() bool
	// Leader is the Raft leader's node id, -1 when unknown.
	Leader() int32
	// RaftRole is node id's Raft role: leader, follower, candidate or none.
	RaftRole(id int32) string
	// Ready reports whether the local metadata has caught up since start;
	// until then reads answer Unavailable rather than stale state.
	Ready() bool
}

// StateSource gives the current metadata.
type StateSource interface {
	State() *metadata.State
	// Watch returns the state and a channel closed at its next change.
	Watch() (*metadata.State, <-chan struct{})
}

// Deps are the server's collaborators.
type Deps struct {
	State      StateSource
	Controller Controller
	Cluster    Cluster
	// Forwarder reaches other replicators (the controller).
	Forwarder *Forwarder
	// ISR commits partition leaders' ISR changes (Controller.AlterPartition).
	ISR ISRChanger
	// Limits are the connection and stream limits; the zero value means
	// the defaults.
	Limits Limits
	// Tracing instruments the server (otelgrpc server spans, W3C context
	// from callers); nil means tracing off.
	Tracing stats.Handler
}

// New returns a gRPC server with the Topics, Controller, Metadata, health
// and reflection services registered. tlsConf must require client certs; authz
// checks every call against MethodTable (build it with NewInterceptor).
func New(tlsConf *tls.Config, authz *acl.Interceptor, deps Deps, lg *zap.Logger) (*grpc.Server, *health.Server) {
	if lg == nil {
		lg = zap.NewNop()
	}
	lim := deps.Limits.withDefaults()
	gl := grpclimit.New(grpclimit.Options{
		MaxStreamsPerConn:     lim.MaxStreamsPerConn,
		MaxStreamsPerIdentity: lim.MaxStreamsPerIdentity,
		Identity:              verifiedIdentity,
		Metrics:               lim.Metrics,
		Logger:                lg.Named("limits"),
	})
	var traced []grpc.ServerOption
	if deps.Tracing != nil {
		traced = append(traced, grpc.StatsHandler(deps.Tracing))
	}
	srv := grpc.NewServer(append(traced,
		grpc.Creds(gl.Credentials(credentials.NewTLS(tlsConf))),
		grpc.ConnectionTimeout(lim.HandshakeTimeout),
		grpc.MaxConcurrentStreams(lim.MaxStreamsPerConn),
		grpc.StatsHandler(gl.StatsHandler()),
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.MaxSendMsgSize(MaxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: KeepaliveTimeout}),
		// The per-identity cap before authorization, so that a refused
		// call runs no policy check.
		grpc.ChainUnaryInterceptor(logUnary(lg.Named("grpc")), gl.UnaryInterceptor(), authz.Unary()),
		grpc.ChainStreamInterceptor(gl.StreamInterceptor(), authz.Stream()),
	)...)
	svc := &service{lg: lg.Named("topics"), deps: deps}
	stratav1.RegisterTopicsServer(srv, &topicsServer{service: svc})
	stratav1.RegisterMetadataServer(srv, &metadataServer{service: svc})
	stratav1.RegisterControllerServer(srv, &controllerServer{service: svc})
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	reflection.Register(srv)
	return srv, hs
}

type service struct {
	lg   *zap.Logger
	deps Deps
}

// ready refuses reads before the local metadata has caught up: a
// restarted replicator would otherwise answer from a stale FSM.
func (s *service) ready() error {
	if !s.deps.Cluster.Ready() {
		return status.Error(codes.Unavailable, "replicator is catching up with the cluster metadata; retry")
	}
	return nil
}

func logUnary(lg *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := h(ctx, req)
		if err != nil {
			lg.Debug("call failed", zap.String("method", info.FullMethod), zap.Duration("took", time.Since(start)), zap.Error(err))
		}
		return resp, err
	}
}

// Stop stops srv gracefully, falling back to Stop after timeout.
func Stop(srv *grpc.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
}
