package grpcserver

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// forwardedKey marks a call forwarded by a replicator, so that a node that
// is not the leader either never forwards it again.
const forwardedKey = "x-strata-forwarded"

// Forwarder keeps one client connection per replicator address.
type Forwarder struct {
	tls *tls.Config

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

// NewForwarder returns a Forwarder dialling with tlsConf (this node's
// replicator client certificate).
func NewForwarder(tlsConf *tls.Config) *Forwarder {
	return &Forwarder{tls: tlsConf, conns: map[string]*grpc.ClientConn{}}
}

// Conn returns the connection to addr.
func (f *Forwarder) Conn(addr string) (*grpc.ClientConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, status.Error(codes.Unavailable, "replicator shutting down")
	}
	if c, ok := f.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(f.tls)))
	if err != nil {
		return nil, err
	}
	f.conns[addr] = c
	return c, nil
}

// Close closes every connection.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	var err error
	for addr, c := range f.conns {
		err = errors.Join(err, c.Close())
		delete(f.conns, addr)
	}
	return err
}

func isForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(forwardedKey)) > 0
}

func markForwarded(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forwardedKey, "1")
}
