package fetcher

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
)

// maxRecvBytes bounds one Fetch response. The leader's own bound is
// max_bytes, but a response holds at least one record, which may be of
// the largest max.record.bytes: stratav1.MaxMessageBytes holds it (64
// MiB here refused such a record with its framing, and the follower could
// never fetch past it).
const maxRecvBytes = stratav1.MaxMessageBytes

// Conns dials leader brokers with this replicator's client certificate
// and keeps one connection per address; every fetcher of partitions led by
// the same broker shares it (gRPC multiplexes the streams). The cache is
// never pruned: it holds at most one entry per broker of the cluster.
type Conns struct {
	tls *tls.Config

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

var _ Dialer = (*Conns)(nil)

// NewConns returns an empty cache. tlsConf carries the replicator's
// client certificate and the cluster CA; its ServerName should be empty so
// that each connection verifies the host it dials (the broker's
// certificate must name its cluster-network host, e.g. broker-2).
func NewConns(tlsConf *tls.Config) *Conns {
	return &Conns{tls: tlsConf, conns: map[string]*grpc.ClientConn{}}
}

// Leader returns a ReplicaFetch client for the broker at addr. Connections are
// made lazily, so an unreachable broker fails the call, not this.
func (c *Conns) Leader(addr string) (Leader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrConnsClosed
	}
	conn, ok := c.conns[addr]
	if !ok {
		var err error
		// brokerdial: a leader back from a restart is reached within
		// about a second, not after gRPC's minute-long backoff (it may be
		// elected again soon after it returns).
		conn, err = brokerdial.Dial(addr, c.tls, brokerdial.Options{},
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)))
		if err != nil {
			return nil, fmt.Errorf("fetcher: leader client: %w", err)
		}
		c.conns[addr] = conn
	}
	return stratav1.NewReplicaFetchClient(conn), nil
}

// Close closes every connection; later Leader calls fail.
func (c *Conns) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var err error
	for addr, conn := range c.conns {
		err = errors.Join(err, conn.Close())
		delete(c.conns, addr)
	}
	return err
}

// LocalClient is Local over the connection to this node's broker: the
// appends of every fetcher over one LocalReplica.AppendStream (appender),
// Truncate (LocalReplica; both answer only this replicator),
// OffsetForLeaderEpoch about its own log (ReplicaFetch) and
// PartitionStatus (ReplicaTools). With WithLocalReplica, LocalReplica's
// calls (the appends above all) go over another connection: the local
// socket.
type LocalClient struct {
	replica stratav1.LocalReplicaClient
	stratav1.ReplicaFetchClient
	stratav1.ReplicaToolsClient
	app   *appender
	unary bool
}

var _ Local = (*LocalClient)(nil)

// LocalOption configures a LocalClient.
type LocalOption func(*LocalClient)

// WithLocalReplica sends LocalReplica's calls (AppendStream, Append,
// Truncate) over cc, the local socket's connection, instead of the
// client's TCP one.
func WithLocalReplica(cc grpc.ClientConnInterface) LocalOption {
	return func(c *LocalClient) { c.replica = stratav1.NewLocalReplicaClient(cc) }
}

// WithUnaryAppend makes every append a unary LocalReplica.Append call, as
// before AppendStream (for measurements).
func WithUnaryAppend() LocalOption { return func(c *LocalClient) { c.unary = true } }

// NewLocalClient returns the clients on cc.
func NewLocalClient(cc grpc.ClientConnInterface, opts ...LocalOption) *LocalClient {
	c := &LocalClient{replica: stratav1.NewLocalReplicaClient(cc), ReplicaFetchClient: stratav1.NewReplicaFetchClient(cc),
		ReplicaToolsClient: stratav1.NewReplicaToolsClient(cc)}
	for _, o := range opts {
		o(c)
	}
	c.app = newAppender(c.replica)
	return c
}

// LocalAppend is one fetched response to write into the local broker.
type LocalAppend struct {
	Topic                     string
	Partition                 int32
	LeaderEpoch, RecordsEpoch int32
	LeaderHighWatermark       int64
	// TraceParent is the W3C traceparent of the caller's span for the
	// append, or empty.
	TraceParent string
	// Frames are the fetched frames, as received (views of gRPC's
	// buffers); Append takes references of its own where it keeps them.
	Frames mem.BufferSlice
}

// Append writes a into the local broker and returns its log end offset;
// a refused append fails with the status the broker's Append returns
// (OutOfRange with its OffsetRange, FailedPrecondition, ...). It uses the
// shared AppendStream, or the unary Append on a broker that predates it.
func (c *LocalClient) Append(ctx context.Context, a *LocalAppend) (int64, error) {
	if !c.unary && !c.app.unary.Load() {
		leo, err := c.app.append(ctx, &rawAppendRequest{topic: a.Topic, partition: a.Partition, leaderEpoch: a.LeaderEpoch,
			recordsEpoch: a.RecordsEpoch, leaderHW: a.LeaderHighWatermark, traceParent: a.TraceParent, frames: a.Frames})
		if status.Code(err) != codes.Unimplemented || !c.app.unary.Load() {
			return leo, err
		}
		// The broker predates AppendStream: nothing was appended; from
		// now on, the unary call.
	}
	if a.TraceParent != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", a.TraceParent)
	}
	ar, err := c.replica.Append(ctx, &stratav1.AppendRequest{Topic: a.Topic, Partition: a.Partition,
		LeaderEpoch: a.LeaderEpoch, RecordsEpoch: a.RecordsEpoch, Frames: materialize(a.Frames),
		LeaderHighWatermark: a.LeaderHighWatermark})
	if err != nil {
		return 0, err
	}
	return ar.GetLogEndOffset(), nil
}

func materialize(b mem.BufferSlice) []byte {
	if b.Len() == 0 {
		return nil
	}
	return b.Materialize()
}

// Truncate calls LocalReplica.Truncate.
func (c *LocalClient) Truncate(ctx context.Context, in *stratav1.TruncateRequest, opts ...grpc.CallOption) (*stratav1.TruncateResponse, error) {
	return c.replica.Truncate(ctx, in, opts...)
}

// Close ends the append stream; later appends fail. The connections are
// the caller's.
func (c *LocalClient) Close() { c.app.close() }
