// Package grpclimit is the gRPC side of Strata's connection limits. It
// counts the TLS handshakes that fail or miss the server's handshake
// deadline (grpc.ConnectionTimeout sets the deadline; Credentials sees
// the outcome), reports connections that reach their concurrent-stream
// limit (grpc.MaxConcurrentStreams sets it; StatsHandler sees it reached),
// and caps the calls one identity has in flight over all its connections
// (UnaryInterceptor, StreamInterceptor). Each logs a warning, at most
// once per interval, when it bites.
package grpclimit

import (
	"sync"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/connlimit/internal/ratelog"
)

// Limiter holds the per-identity counts and the log intervals. One
// Limiter serves one gRPC server.
type Limiter struct {
	opts Options
	lg   *zap.Logger

	handshakeLog *ratelog.Limiter
	connLimitLog *ratelog.Limiter
	identityLog  *ratelog.Limiter
	perIdentity  sync.Map // identity -> *atomic.Int64, calls in flight
}

// New returns a Limiter with opts.
func New(opts Options) *Limiter {
	lg := opts.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Limiter{
		opts:         opts,
		lg:           lg,
		handshakeLog: ratelog.New(opts.LogInterval),
		connLimitLog: ratelog.New(opts.LogInterval),
		identityLog:  ratelog.New(opts.LogInterval),
	}
}
