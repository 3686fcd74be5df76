// Package brokerdial makes the replicator's gRPC clients of brokers: its
// own broker (the applier, the fetchers' writes, the liveness probe) and
// the partition leaders its fetchers pull from. They come back within
// about a second of a broker that returns, however long it was away:
//
//   - The host name is resolved by each connection attempt (gRPC's
//     passthrough resolver), not by gRPC's DNS resolver. While a container
//     is stopped its name does not resolve; the DNS resolver then retries
//     on a backoff of its own that grows past a minute ("name resolver
//     error: produced zero addresses" for 63 s after a broker restart, in
//     issue 12).
//   - Reconnection backs off from 100ms to at most MaxBackoff, instead of
//     gRPC's default that grows to 120s.
//   - One attempt, TLS handshake included, is bounded by ConnectTimeout
//     (gRPC's default is 20s), so an attempt stuck on a broker cut off the
//     network does not outlast its return by long.
package brokerdial

import (
	"crypto/tls"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/strata-log/strata/pkg/grpctls"
	"github.com/strata-log/strata/pkg/grpctls/localsock"
)

// Options tune the connection. Zero values mean defaults.
type Options struct {
	// MaxBackoff caps the delay between two connection attempts to a
	// broker that does not answer; default 1s.
	MaxBackoff time.Duration
	// ConnectTimeout bounds one connection attempt, TLS handshake
	// included; default 5s.
	ConnectTimeout time.Duration
}

// Defaults for Options.
const (
	DefaultMaxBackoff     = time.Second
	DefaultConnectTimeout = 5 * time.Second
)

// DialLocal returns a client of the local broker's Unix domain socket at
// path (its --local-socket): plain gRPC, no TLS, the serving process's
// uid checked against uid when each connection is made
// (pkg/grpctls/localsock), with Dial's reconnection policy. A broker
// restarting makes a new socket at the same path; the next attempt
// connects to it.
func DialLocal(path string, uid uint32, o Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	bo := backoff.Config{BaseDelay: min(100*time.Millisecond, o.MaxBackoff), Multiplier: 1.6, Jitter: 0.2, MaxDelay: o.MaxBackoff}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(localsock.Credentials(uid, nil)),
		grpc.WithReadBufferSize(grpctls.BufferBytes),
		grpc.WithWriteBufferSize(grpctls.BufferBytes),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: o.ConnectTimeout}),
	}
	conn, err := grpc.NewClient(localsock.Target(path), append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("brokerdial: %s: %w", path, err)
	}
	return conn, nil
}

// Dial returns a client of the broker at addr (host:port) with mutual TLS
// (tlsConf, its ServerName empty so that the dialled host is verified) and
// the large socket buffers of pkg/grpctls. Connections are made lazily.
func Dial(addr string, tlsConf *tls.Config, o Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	bo := backoff.Config{BaseDelay: min(100*time.Millisecond, o.MaxBackoff), Multiplier: 1.6, Jitter: 0.2, MaxDelay: o.MaxBackoff}
	opts := append(grpctls.DialOptions(tlsConf),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: o.ConnectTimeout}))
	conn, err := grpc.NewClient("passthrough:///"+addr, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("brokerdial: %s: %w", addr, err)
	}
	return conn, nil
}
