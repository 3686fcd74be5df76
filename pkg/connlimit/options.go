package connlimit

import (
	"time"

	"go.uber.org/zap"
)

// Options are a Listener's caps and where it reports them biting. Zero
// values mean no cap, no metrics, no logging and the default log interval.
type Options struct {
	// MaxConns caps the connections open through the listener at once;
	// zero or less means no cap.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once from one remote
	// address: an IPv4 address, or an IPv6 /64 (the block one host is
	// usually given, so that it cannot step around the cap by changing
	// address). Zero or less means no cap.
	MaxConnsPerIP int
	// Metrics counts open and refused connections; nil means none.
	Metrics *Metrics
	// Logger receives a warning when a cap refuses a connection; nil means
	// zap.NewNop().
	Logger *zap.Logger
	// LogInterval is the least time between two warnings about the same
	// cap; each carries the count of refusals not logged since the last.
	// Zero means 10 s.
	LogInterval time.Duration
	// TCPUserTimeout sets TCP_USER_TIMEOUT (Linux) on each admitted TCP
	// connection: how long sent data may stay unacknowledged before the
	// kernel drops the connection. A gRPC server sets it from its
	// keepalive timeout, but only on a *net.TCPConn, which the Listener's
	// connections are not: give it the server's keepalive timeout. Zero
	// leaves the system default.
	TCPUserTimeout time.Duration
}
