package grpcserver

import (
	"context"
	"errors"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/grpctls/localsock"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// LocalOptions configure the local socket's server (ServeLocal).
type LocalOptions struct {
	// Creds admit only this node's replicator: localsock.Credentials with
	// its uid. Required.
	Creds credentials.TransportCredentials
	// Interceptors and stats handlers, as on the main server (metrics,
	// tracing); no authorization: the socket's credentials are it.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
	StatsHandlers      []stats.Handler
}

// ServeLocal serves strata.v1.LocalReplica, and nothing else, on lis (the
// local socket, localsock.Listen) until Stop, in plain gRPC: no TLS. A
// connection exists only once Creds admitted its peer's uid, so every
// call on it is this node's replicator's, and carries its identity
// (ClusterConfig.ReplicatorIdentity) for the handlers' own check
// (fromOwnReplicator). It returns nil after Stop, and an error at once
// outside cluster mode.
func (s *Server) ServeLocal(lis net.Listener, opts LocalOptions) error {
	if s.replica == nil {
		return errors.New("grpcserver: the local socket serves LocalReplica, which only a cluster-mode broker has")
	}
	if opts.Creds == nil {
		return errors.New("grpcserver: the local socket needs credentials that check the peer")
	}
	ident := localIdentity{id: s.replica.cluster.ReplicatorIdentity}
	sopts := []grpc.ServerOption{
		grpc.Creds(opts.Creds),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(s.cfg.MaxRecvMsgBytes),
		grpc.MaxSendMsgSize(s.cfg.MaxSendMsgBytes),
		grpc.MaxConcurrentStreams(s.cfg.MaxConcurrentStreams),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: s.cfg.KeepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: s.cfg.KeepaliveTime, Timeout: s.cfg.KeepaliveTimeout}),
		grpc.ChainUnaryInterceptor(append([]grpc.UnaryServerInterceptor{ident.unary}, opts.UnaryInterceptors...)...),
		grpc.ChainStreamInterceptor(append([]grpc.StreamServerInterceptor{ident.stream}, opts.StreamInterceptors...)...),
	}
	if s.cfg.HandshakeTimeout > 0 {
		sopts = append(sopts, grpc.ConnectionTimeout(s.cfg.HandshakeTimeout))
	}
	for _, h := range opts.StatsHandlers {
		sopts = append(sopts, grpc.StatsHandler(h))
	}
	srv := grpc.NewServer(sopts...)
	stratav1.RegisterLocalReplicaServer(srv, &localReplicaService{replicaBase: s.replica})
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return errors.Join(lis.Close())
	}
	s.locals = append(s.locals, srv)
	s.mu.Unlock()
	err := srv.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// localIdentity gives every call on the local socket this node's
// replicator's identity, after checking it came through the socket's
// credentials (a localsock.Peer): on that channel the kernel's word on the
// peer's uid is the authentication, as the certificate is on TCP.
type localIdentity struct{ id string }

func (l localIdentity) authenticate(ctx context.Context) (context.Context, error) {
	if _, ok := localsock.PeerFromContext(ctx); !ok {
		return nil, status.Error(codes.Unauthenticated, "the local socket admits only peers its credentials checked")
	}
	if l.id == "" {
		return ctx, nil
	}
	return acl.ContextWithIdentity(ctx, l.id), nil
}

func (l localIdentity) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := l.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (l localIdentity) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := l.authenticate(ss.Context())
	if err != nil {
		return err
	}
	return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

// contextStream is a ServerStream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }
