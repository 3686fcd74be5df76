// Package clusterview is the console's read-only view of the cluster: the
// Metadata of every node admin was given (--cluster-addrs), asked at once
// and merged so that each partition carries the offsets of the node that
// leads it, and records read from that leader. A node that does not
// answer is reported, not fatal: the others still answer.
package clusterview

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

var (
	// ErrNoAddrs is returned by Dial without addresses.
	ErrNoAddrs = errors.New("clusterview: no addresses")
	// ErrNoNodeAnswered is returned when every node failed.
	ErrNoNodeAnswered = errors.New("clusterview: no node answered")
)

// DefaultCallTimeout bounds each node's answer, so that one node down
// delays a page by at most this much.
const DefaultCallTimeout = 2 * time.Second

// maxRecvBytes is the largest Consume answer accepted: one record may be
// up to a topic's max_record_bytes (at most 64 MiB).
const maxRecvBytes = 80 << 20

// TLSFor returns the client TLS config for dialling a server by name, e.g.
// pki.Reloader.ClientConfig.
type TLSFor func(serverName string) (*tls.Config, error)

// Options are View's settings. Zero values mean defaults.
type Options struct {
	// CallTimeout bounds each node's answer (DefaultCallTimeout).
	CallTimeout time.Duration
}

// View asks the nodes of a cluster.
type View struct {
	nodes   []node
	timeout time.Duration
	lg      *zap.Logger
}

type node struct {
	addr string
	conn *grpc.ClientConn
	meta stratav1.MetadataClient
	log  stratav1.LogClient
}

// Dial prepares one connection per address (host:port); connections are
// made at the first call.
func Dial(addrs []string, tlsFor TLSFor, opts Options, lg *zap.Logger) (*View, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if len(addrs) == 0 {
		return nil, ErrNoAddrs
	}
	v := &View{timeout: opts.CallTimeout, lg: lg}
	if v.timeout <= 0 {
		v.timeout = DefaultCallTimeout
	}
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cluster address %q: %w", addr, err), v.Close())
		}
		tc, err := tlsFor(host)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cluster address %q: tls: %w", addr, err), v.Close())
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cluster address %q: %w", addr, err), v.Close())
		}
		v.nodes = append(v.nodes, node{addr: addr, conn: conn,
			meta: stratav1.NewMetadataClient(conn), log: stratav1.NewLogClient(conn)})
	}
	return v, nil
}

// Close closes every connection.
func (v *View) Close() error {
	var errs []error
	for _, n := range v.nodes {
		errs = append(errs, n.conn.Close())
	}
	return errors.Join(errs...)
}

// Reach is how one configured address answered.
type Reach struct {
	Addr string
	// Err is nil when the node answered.
	Err  error
	Took time.Duration
}

// Snapshot is the merged Metadata of the nodes that answered.
type Snapshot struct {
	Brokers      []*stratav1.BrokerInfo
	Topics       []*stratav1.TopicMetadata
	ControllerID int32
	ClusterID    string
	// Reach has one entry per configured address, in their order.
	Reach []Reach
	// leaders maps a partition to the index of the node whose answer
	// carried its offsets (the node leading it).
	leaders map[PartitionKey]int
}

// PartitionKey names a partition.
type PartitionKey struct {
	Topic     string
	Partition int32
}

// Snapshot asks every node for the Metadata of topics (all when none) at
// once and merges the answers: brokers, controller and topics from the
// first node (in configured order) that answered, each partition's
// offsets from the node that knows them (its leader; -1 when no node that
// answered leads it). It fails only when no node answered.
func (v *View) Snapshot(ctx context.Context, topics ...string) (*Snapshot, error) {
	answers := make([]*stratav1.MetadataResponse, len(v.nodes))
	snap := &Snapshot{Reach: make([]Reach, len(v.nodes)), leaders: map[PartitionKey]int{}}
	var wg sync.WaitGroup
	for i, n := range v.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, v.timeout)
			defer cancel()
			start := time.Now()
			resp, err := n.meta.Metadata(cctx, &stratav1.MetadataRequest{Topics: topics})
			snap.Reach[i] = Reach{Addr: n.addr, Err: err, Took: time.Since(start)}
			answers[i] = resp
		}()
	}
	wg.Wait()
	base := -1
	for i, a := range answers {
		if a != nil {
			base = i
			break
		}
	}
	if base < 0 {
		var errs []error
		for _, r := range snap.Reach {
			errs = append(errs, fmt.Errorf("%s: %w", r.Addr, r.Err))
		}
		return snap, fmt.Errorf("%w: %w", ErrNoNodeAnswered, errors.Join(errs...))
	}
	b := proto.Clone(answers[base]).(*stratav1.MetadataResponse)
	snap.Brokers, snap.Topics, snap.ControllerID, snap.ClusterID = b.GetBrokers(), b.GetTopics(), b.GetControllerId(), b.GetClusterId()
	known := map[PartitionKey]*stratav1.PartitionMetadata{}
	for _, t := range snap.Topics {
		for _, p := range t.GetPartitions() {
			known[PartitionKey{t.GetName(), p.GetPartition()}] = p
		}
	}
	for i, a := range answers {
		for _, t := range a.GetTopics() {
			for _, p := range t.GetPartitions() {
				k := PartitionKey{t.GetName(), p.GetPartition()}
				dst, ok := known[k]
				if !ok || p.GetLogEndOffset() < 0 {
					continue
				}
				if _, have := snap.leaders[k]; have {
					continue
				}
				snap.leaders[k] = i
				dst.LogStartOffset, dst.LogEndOffset, dst.HighWatermark = p.GetLogStartOffset(), p.GetLogEndOffset(), p.GetHighWatermark()
			}
		}
	}
	return snap, nil
}

// Read reads up to maxRecords records of a partition from offset, at the
// node leading it (found by a Snapshot of the topic); when no node that
// answered says it leads the partition, each node is tried and one that
// is not the leader is passed over. Errors are the broker's gRPC status
// (OutOfRange carries the valid range in its details).
func (v *View) Read(ctx context.Context, topic string, partition int32, offset int64, maxRecords int32) (*stratav1.ConsumeResponse, error) {
	req := &stratav1.ConsumeRequest{Topic: topic, Partition: partition, Offset: offset, MaxRecords: maxRecords}
	snap, err := v.Snapshot(ctx, topic)
	if err != nil {
		return nil, err
	}
	order := make([]int, 0, len(v.nodes))
	if i, ok := snap.leaders[PartitionKey{topic, partition}]; ok {
		order = append(order, i)
	}
	for i := range v.nodes {
		if len(order) == 0 || order[0] != i {
			order = append(order, i)
		}
	}
	var last error
	for _, i := range order {
		cctx, cancel := context.WithTimeout(ctx, 2*v.timeout)
		resp, err := v.nodes[i].log.Consume(cctx, req)
		cancel()
		if err == nil {
			return resp, nil
		}
		last = err
		switch status.Code(err) {
		case codes.FailedPrecondition, codes.Unavailable, codes.DeadlineExceeded:
			v.lg.Debug("read: node passed over", zap.String("addr", v.nodes[i].addr), zap.Error(err))
			continue
		}
		return nil, err
	}
	return nil, last
}
