package grpclimit

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Options are a Limiter's caps and where it reports them biting. Zero
// values mean no cap, no metrics, no logging and the default log interval.
type Options struct {
	// MaxStreamsPerConn is the server's grpc.MaxConcurrentStreams (give
	// the server that option with the same value): a connection whose
	// calls in flight reach it is reported, since its client's next call
	// waits for a free stream (or, from a client that ignores the HTTP/2
	// setting, is refused by the transport unseen). Zero means not
	// reported.
	MaxStreamsPerConn uint32
	// MaxStreamsPerIdentity caps the calls, unary and streaming (each is
	// an HTTP/2 stream), that one identity has in flight over all its
	// connections; past it a call fails with ResourceExhausted. Zero or
	// less means no cap.
	MaxStreamsPerIdentity int
	// Identity names the verified identity of a call (pki.IdentityFromPeer:
	// the client certificate's common name); false exempts the call from
	// the per-identity cap. Nil means no per-identity cap.
	Identity func(ctx context.Context) (string, bool)
	// Metrics counts what the caps do; nil means none.
	Metrics *Metrics
	// Logger receives a warning when a cap bites; nil means zap.NewNop().
	Logger *zap.Logger
	// LogInterval is the least time between two warnings of one kind;
	// each carries the count not logged since the last. Zero means 10 s.
	LogInterval time.Duration
}
