package grpcserver

import (
	"context"
	"time"

	"github.com/strata-log/strata/pkg/connlimit/grpclimit"
	"github.com/strata-log/strata/pkg/pki"
)

// Defaults of Limits' zero fields.
const (
	// DefaultHandshakeTimeout: a TLS 1.3 handshake takes a few round
	// trips, well under a second between nodes; 10 s bounds what a silent
	// client holds with room for a loaded node.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxStreamsPerConn: the local broker's connection carries the
	// Metadata and Topics calls it forwards for its clients, and the
	// partition leaders' ISR changes; 1000 in flight is far past either.
	DefaultMaxStreamsPerConn = 1000
	// DefaultMaxStreamsPerIdentity: every client's forwarded call arrives
	// as its broker's identity; a quarter of a busy broker's streams.
	DefaultMaxStreamsPerIdentity = 1024
)

// KeepaliveTimeout is how long the server waits for a ping's answer; a
// listener wrapping its connections sets it as TCP_USER_TIMEOUT, as gRPC
// does on connections it sees unwrapped.
const KeepaliveTimeout = 10 * time.Second

// Limits are the server's connection and stream limits; zero fields mean
// the defaults above.
type Limits struct {
	// HandshakeTimeout bounds a new connection's TLS handshake and HTTP/2
	// preface (grpc.ConnectionTimeout).
	HandshakeTimeout time.Duration
	// MaxStreamsPerConn is the HTTP/2 limit of concurrent streams on one
	// connection (grpc.MaxConcurrentStreams).
	MaxStreamsPerConn uint32
	// MaxStreamsPerIdentity caps the calls one identity (the verified
	// certificate's common name) has in flight over all its connections;
	// past it calls fail with ResourceExhausted.
	MaxStreamsPerIdentity int
	// Metrics counts handshake failures and the stream caps biting; nil
	// means none.
	Metrics *grpclimit.Metrics
}

func (l Limits) withDefaults() Limits {
	if l.HandshakeTimeout <= 0 {
		l.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if l.MaxStreamsPerConn == 0 {
		l.MaxStreamsPerConn = DefaultMaxStreamsPerConn
	}
	if l.MaxStreamsPerIdentity <= 0 {
		l.MaxStreamsPerIdentity = DefaultMaxStreamsPerIdentity
	}
	return l
}

// verifiedIdentity is the common name of a call's verified client
// certificate.
func verifiedIdentity(ctx context.Context) (string, bool) {
	id, err := pki.IdentityFromPeer(ctx)
	return id, err == nil
}
