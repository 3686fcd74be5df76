package fetcher

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync"

	"google.golang.org/grpc"

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

// LocalClient is Local over one connection to this node's broker, from
// the services by audience: Append and Truncate (LocalReplica, which
// answers only this replicator), OffsetForLeaderEpoch about its own log
// (ReplicaFetch) and PartitionStatus (ReplicaTools).
type LocalClient struct {
	stratav1.LocalReplicaClient
	stratav1.ReplicaFetchClient
	stratav1.ReplicaToolsClient
}

var _ Local = LocalClient{}

// NewLocalClient returns the clients on cc.
func NewLocalClient(cc grpc.ClientConnInterface) LocalClient {
	return LocalClient{stratav1.NewLocalReplicaClient(cc), stratav1.NewReplicaFetchClient(cc), stratav1.NewReplicaToolsClient(cc)}
}
