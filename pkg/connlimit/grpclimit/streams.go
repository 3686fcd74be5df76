package grpclimit

import (
	"context"
	"net"
	"sync/atomic"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// StatsHandler counts each connection's calls in flight and reports a
// connection reaching Options.MaxStreamsPerConn. Give it to the server
// with grpc.StatsHandler.
func (l *Limiter) StatsHandler() stats.Handler { return connStreams{l: l} }

type connStreams struct{ l *Limiter }

type connStateKey struct{}

// connState is one connection's calls in flight.
type connState struct {
	remote   net.Addr
	inFlight atomic.Int64
}

func (h connStreams) TagConn(ctx context.Context, info *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connStateKey{}, &connState{remote: info.RemoteAddr})
}

func (connStreams) HandleConn(context.Context, stats.ConnStats) {}

func (connStreams) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (h connStreams) HandleRPC(ctx context.Context, s stats.RPCStats) {
	cs, ok := ctx.Value(connStateKey{}).(*connState)
	if !ok {
		return
	}
	switch s.(type) {
	case *stats.Begin:
		limit := h.l.opts.MaxStreamsPerConn
		if n := cs.inFlight.Add(1); limit > 0 && n == int64(limit) {
			h.l.opts.Metrics.connAtStreamLimit()
			if ok, unlogged := h.l.connLimitLog.Allow(); ok {
				h.l.lg.Warn("connection reached its concurrent stream limit: its further calls wait",
					zap.Stringer("remote", cs.remote), zap.Uint32("max_streams_per_conn", limit), zap.Int64("reached_unlogged", unlogged))
			}
		}
	case *stats.End:
		cs.inFlight.Add(-1)
	}
}

// UnaryInterceptor applies the per-identity cap to unary calls.
func (l *Limiter) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		release, err := l.acquire(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		defer release()
		return handler(ctx, req)
	}
}

// StreamInterceptor applies the per-identity cap to streaming calls.
func (l *Limiter) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		release, err := l.acquire(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		defer release()
		return handler(srv, ss)
	}
}

func nop() {}

// acquire counts a call against its identity, or refuses it when the
// identity is at its cap.
func (l *Limiter) acquire(ctx context.Context, method string) (release func(), err error) {
	limit := l.opts.MaxStreamsPerIdentity
	if limit <= 0 || l.opts.Identity == nil {
		return nop, nil
	}
	id, ok := l.opts.Identity(ctx)
	if !ok {
		return nop, nil
	}
	v, ok := l.perIdentity.Load(id)
	if !ok {
		// Identities are certificates the cluster CA issued: the map
		// stays as small as the set of callers.
		v, _ = l.perIdentity.LoadOrStore(id, new(atomic.Int64))
	}
	n := v.(*atomic.Int64)
	if n.Add(1) > int64(limit) {
		n.Add(-1)
		l.opts.Metrics.identityRefusedInc()
		if ok, unlogged := l.identityLog.Allow(); ok {
			l.lg.Warn("call refused: identity at its concurrent stream limit",
				zap.String("identity", id), zap.String("method", method),
				zap.Int("max_streams_per_identity", limit), zap.Int64("refused_unlogged", unlogged))
		}
		return nil, status.Errorf(codes.ResourceExhausted, "identity %q has %d calls in flight, the most allowed; retry later", id, limit)
	}
	return func() { n.Add(-1) }, nil
}
