package grpclimit

import (
	"errors"
	"net"
	"os"

	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
)

// Credentials wraps a server's transport credentials so that failed
// handshakes are counted, and those that missed the deadline logged. The
// deadline itself is the server's grpc.ConnectionTimeout, which gRPC sets
// on the connection before the handshake and clears after the HTTP/2
// preface.
func (l *Limiter) Credentials(c credentials.TransportCredentials) credentials.TransportCredentials {
	return &countingCreds{TransportCredentials: c, l: l}
}

type countingCreds struct {
	credentials.TransportCredentials
	l *Limiter
}

func (c *countingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		c.l.handshakeFailed(raw.RemoteAddr(), err)
	}
	return conn, info, err
}

func (c *countingCreds) Clone() credentials.TransportCredentials {
	return &countingCreds{TransportCredentials: c.TransportCredentials.Clone(), l: c.l}
}

func (l *Limiter) handshakeFailed(remote net.Addr, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		l.opts.Metrics.handshakeFailed(ReasonError)
		l.lg.Debug("TLS handshake failed", zap.Stringer("remote", remote), zap.Error(err))
		return
	}
	l.opts.Metrics.handshakeFailed(ReasonTimeout)
	if ok, n := l.handshakeLog.Allow(); ok {
		l.lg.Warn("connection closed: TLS handshake not finished by the deadline",
			zap.Stringer("remote", remote), zap.Int64("timeouts_unlogged", n))
	}
}
