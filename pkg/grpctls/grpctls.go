// Package grpctls makes gRPC transport credentials over TLS that send
// and receive in large batches, for connections that carry bulk data.
package grpctls

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// BufferBytes is how much one socket read takes in, and about how much
// one socket write sends, on a connection made by Credentials. It is also
// the gRPC read and write buffer size to pair with Credentials
// (grpc.ReadBufferSize and grpc.WriteBufferSize on a server; DialOptions
// sets them on a client), so that gRPC hands TLS large writes.
const BufferBytes = 256 << 10

// Credentials is credentials.NewTLS(cfg) for connections that move bulk
// data. crypto/tls writes every record (at most 16 KiB) to the socket with
// a syscall of its own and reads records about one at a time; on a busy
// broker those syscalls, and the kernel's network work per call, were a
// large share of the CPU. Here the records of one Write leave in one
// socket write, and reads fill a buffer of BufferBytes.
func Credentials(cfg *tls.Config) credentials.TransportCredentials {
	return &batchingCreds{TransportCredentials: credentials.NewTLS(cfg)}
}

// DialOptions are a client's: Credentials(cfg) and buffers of BufferBytes.
func DialOptions(cfg *tls.Config) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(Credentials(cfg)),
		grpc.WithReadBufferSize(BufferBytes),
		grpc.WithWriteBufferSize(BufferBytes),
	}
}

type batchingCreds struct {
	credentials.TransportCredentials
}

func (c *batchingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	bc := newBatchConn(raw)
	conn, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, bc)
	if err != nil {
		return nil, nil, err
	}
	return &recordBatcher{Conn: conn, raw: bc}, info, nil
}

func (c *batchingCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	bc := newBatchConn(raw)
	conn, info, err := c.TransportCredentials.ServerHandshake(bc)
	if err != nil {
		return nil, nil, err
	}
	return &recordBatcher{Conn: conn, raw: bc}, info, nil
}

func (c *batchingCreds) Clone() credentials.TransportCredentials {
	return &batchingCreds{TransportCredentials: c.TransportCredentials.Clone()}
}

// recordBatcher is the TLS connection gRPC sees: each Write collects the
// records TLS makes of it and sends them together.
type recordBatcher struct {
	net.Conn // the TLS connection
	raw      *batchConn
	mu       sync.Mutex // one Write at a time, so batches do not mix
}

func (r *recordBatcher) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.raw.hold()
	n, err := r.Conn.Write(p)
	if ferr := r.raw.release(); err == nil && ferr != nil {
		// TLS counted the held records as written; none of them left.
		return 0, ferr
	}
	return n, err
}

// batchConn is the socket under TLS: between hold and release it keeps
// what TLS writes, and it reads through a buffer.
type batchConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	holding bool
	out     []byte
}

func newBatchConn(c net.Conn) *batchConn {
	return &batchConn{Conn: c, r: bufio.NewReaderSize(c, BufferBytes)}
}

func (b *batchConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// Write keeps p while held. TLS also writes outside recordBatcher.Write
// (handshake messages, alerts, key updates): those go straight out, or,
// arriving during a hold, leave with the batch in the order written.
func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holding {
		b.out = append(b.out, p...)
		return len(p), nil
	}
	return b.Conn.Write(p)
}

func (b *batchConn) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

// release sends what was held in one write and stops holding.
func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	if len(b.out) == 0 {
		return nil
	}
	_, err := b.Conn.Write(b.out)
	if cap(b.out) > 2*BufferBytes {
		b.out = nil // a rare huge write: do not keep its buffer
	} else {
		b.out = b.out[:0]
	}
	return err
}
