// Package testbroker runs real brokers for the replicator's tests: each is
// services/broker/brokertest (the broker's own gRPC server, partitions,
// leader-epoch caches and pkg/logstore, in-process on loopback) behind
// mutual TLS with the test CA. It gives the tests what they need of a
// broker beyond what the replicator asks of it: a partition seeded with a
// given history (records and the epochs they were written in), records
// produced as a leader does, the log read back, a record of what the
// replicator asked (Fetch streams, writes, truncations) and failures to
// inject.
//
// The seeding, reads and produces go through the broker's public gRPC
// API (LocalReplica, ReplicaTools, Log) as this broker's replicator or
// the operator, marked so that Stats leaves them out.
package testbroker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/strata-log/strata/pkg/grpctls"
	"github.com/strata-log/strata/pkg/grpctls/localsock"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/brokertest"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

// Record is one record of a partition's log: the leader epoch it was
// written in and its value.
type Record struct {
	Epoch int32
	Value string
}

// Options tune a test broker. Zero values mean defaults.
type Options struct {
	// ISR is the replicas and in-sync replicas of every state the test
	// applies itself (SetPartition, SetRole, Write); default [1 2 3]. A
	// leader's high watermark follows the slowest of them.
	ISR []int32
	// Partitions is the partition count of the topics it creates;
	// default 1. It must be the metadata's: a broker replaces a local
	// topic whose count differs from the controller's.
	Partitions int32
	// LocalSocket, when set, makes the broker serve LocalReplica on a
	// Unix domain socket there too (brokertest.Options.LocalSocket).
	LocalSocket string
}

// Broker is one real broker and what was asked of it.
type Broker struct {
	tb    testing.TB
	id    int32
	opts  Options
	b     *brokertest.Broker
	probe *probe
	// own calls as replicator-<id>, op as the operator; both mark their
	// calls as the test's (testCall), and reconnect within a second after
	// Restart, as the replicator's own connections do (brokerdial).
	own, op *grpc.ClientConn
}

// testCall is the metadata key marking the test's own calls.
const testCall = "x-testbroker"

// Start serves broker id (certificate broker-<id> from ca) until the end
// of the test.
func Start(tb testing.TB, ca *testutil.CA, id int32, opts Options) *Broker {
	tb.Helper()
	if len(opts.ISR) == 0 {
		opts.ISR = []int32{1, 2, 3}
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	p := newProbe()
	b := &Broker{tb: tb, id: id, opts: opts, probe: p}
	b.b = brokertest.Start(tb, brokertest.Options{
		NodeID:             id,
		Creds:              grpctls.Credentials(ca.ServerTLS(tb, "broker-"+strconv.Itoa(int(id)))),
		UnaryInterceptors:  []grpc.UnaryServerInterceptor{p.unary},
		StreamInterceptors: []grpc.StreamServerInterceptor{p.stream},
		Logger:             testutil.Logger(tb, zapcore.InfoLevel),
		LocalSocket:        opts.LocalSocket,
	})
	b.own = b.dial(ca, "replicator-"+strconv.Itoa(int(id)))
	b.op = b.dial(ca, "operator")
	return b
}

func (b *Broker) dial(ca *testutil.CA, cn string) *grpc.ClientConn {
	b.tb.Helper()
	mark := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(metadata.AppendToOutgoingContext(ctx, testCall, "1"), method, req, reply, cc, opts...)
	}
	conn, err := brokerdial.Dial(b.b.Addr(), ca.ClientTLS(b.tb, cn), brokerdial.Options{MaxBackoff: 200 * time.Millisecond},
		grpc.WithUnaryInterceptor(mark))
	if err != nil {
		b.tb.Fatal(err)
	}
	b.tb.Cleanup(func() { conn.Close() }) //nolint:errcheck // a test client: nothing to lose
	return conn
}

// Addr is the broker's address.
func (b *Broker) Addr() string { return b.b.Addr() }

// LocalSocket is the path of the broker's local socket, empty when off.
func (b *Broker) LocalSocket() string { return b.b.LocalSocket() }

// Stop stops the broker (a dead broker); its Fetch streams end.
func (b *Broker) Stop() {
	b.tb.Helper()
	if err := b.b.Stop(); err != nil {
		b.tb.Fatal(err)
	}
}

// Restart restarts the broker on its data directory and address: every
// partition keeps its log and loses its role, until its replicator
// applies a state again.
func (b *Broker) Restart() {
	b.tb.Helper()
	if err := b.b.Restart(); err != nil {
		b.tb.Fatal(err)
	}
}

func (b *Broker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// state is a state of topic/p as this test applies it: replicas and ISR
// from Options, a follower's leader the first other member.
func (b *Broker) state(topic string, p int32, role stratav1.Role, epoch int32) *stratav1.ApplyPartitionStateRequest {
	leader := int32(-1)
	switch role {
	case stratav1.Role_ROLE_LEADER:
		leader = b.id
	case stratav1.Role_ROLE_FOLLOWER:
		for _, id := range b.opts.ISR {
			if id != b.id {
				leader = id
				break
			}
		}
	}
	return &stratav1.ApplyPartitionStateRequest{Topic: topic, Partition: p, Role: role, LeaderEpoch: epoch, LeaderId: leader,
		Replicas: b.opts.ISR, Isr: b.opts.ISR,
		Config: &stratav1.TopicConfig{Partitions: b.opts.Partitions, ReplicationFactor: int32(len(b.opts.ISR))}}
}

// SetRole applies a role and epoch to topic/p as its replicator would,
// keeping its log.
func (b *Broker) SetRole(topic string, p int32, role stratav1.Role, epoch int32) {
	b.tb.Helper()
	ctx, cancel := b.ctx()
	defer cancel()
	if _, err := stratav1.NewLocalReplicaClient(b.own).ApplyPartitionState(ctx, b.state(topic, p, role, epoch)); err != nil {
		b.tb.Fatalf("broker %d: %s in epoch %d for %s/%d: %v", b.id, role, epoch, topic, p, err)
	}
}

// SetPartition gives topic/p, which this broker must not have yet, a log
// starting at start that holds recs, each written in its epoch (epochs
// never decrease), and then role in epoch (no older than the last
// record's).
func (b *Broker) SetPartition(topic string, p int32, role stratav1.Role, epoch int32, start int64, recs ...Record) {
	b.tb.Helper()
	ctx, cancel := b.ctx()
	defer cancel()
	if _, err := stratav1.NewReplicaToolsClient(b.own).PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: topic, Partition: p}); err == nil {
		b.tb.Fatalf("broker %d: SetPartition on %s/%d, which it has already", b.id, topic, p)
	}
	if start > 0 {
		// As a follower, restart the empty log at start.
		first := epoch
		if len(recs) > 0 {
			first = recs[0].Epoch
		}
		b.SetRole(topic, p, stratav1.Role_ROLE_FOLLOWER, first)
		if _, err := stratav1.NewLocalReplicaClient(b.own).Truncate(ctx, &stratav1.TruncateRequest{Topic: topic, Partition: p,
			Offset: start, LeaderEpoch: first, Reset_: true}); err != nil {
			b.tb.Fatalf("broker %d: start %s/%d at %d: %v", b.id, topic, p, start, err)
		}
	}
	b.Write(topic, p, recs...)
	b.SetRole(topic, p, role, epoch)
}

// Write appends recs to topic/p, each as the leader of its epoch does:
// for each run of one epoch the broker is made leader in that epoch and
// the run is produced. It leaves the broker leading the last epoch.
func (b *Broker) Write(topic string, p int32, recs ...Record) {
	b.tb.Helper()
	for len(recs) > 0 {
		e := recs[0].Epoch
		n := 1
		for n < len(recs) && recs[n].Epoch == e {
			n++
		}
		b.SetRole(topic, p, stratav1.Role_ROLE_LEADER, e)
		values := make([]string, n)
		for i, r := range recs[:n] {
			values[i] = r.Value
		}
		b.Produce(topic, p, values...)
		recs = recs[n:]
	}
}

// Produce appends values to topic/p, which this broker must lead, in its
// current epoch (Log.Produce as the operator, acks=leader).
func (b *Broker) Produce(topic string, p int32, values ...string) {
	b.tb.Helper()
	ctx, cancel := b.ctx()
	defer cancel()
	req := &stratav1.ProduceRequest{Topic: topic, Partition: p, Acks: stratav1.Acks_ACKS_LEADER}
	for _, v := range values {
		req.Records = append(req.Records, &stratav1.Record{Value: []byte(v)})
	}
	if _, err := stratav1.NewLogClient(b.op).Produce(ctx, req); err != nil {
		b.tb.Fatalf("broker %d: produce to %s/%d: %v", b.id, topic, p, err)
	}
}

// Status is the broker's view of topic/p (ReplicaTools.PartitionStatus).
func (b *Broker) Status(topic string, p int32) (*stratav1.PartitionStatusResponse, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	st, err := stratav1.NewReplicaToolsClient(b.own).PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: topic, Partition: p})
	if err != nil {
		return nil, fmt.Errorf("broker %d: status of %s/%d: %w", b.id, topic, p, err)
	}
	return st, nil
}

// Log reads topic/p whole (ReplicaTools.ReadReplica, up to the log end):
// its log start offset and records.
func (b *Broker) Log(topic string, p int32) (int64, []Record, error) {
	st, err := b.Status(topic, p)
	if err != nil {
		return 0, nil, err
	}
	ctx, cancel := b.ctx()
	defer cancel()
	var recs []Record
	for off := st.GetLogStartOffset(); off < st.GetLogEndOffset(); {
		resp, err := stratav1.NewReplicaToolsClient(b.own).ReadReplica(ctx, &stratav1.ReadReplicaRequest{Topic: topic, Partition: p, Offset: off})
		if err != nil {
			return 0, nil, fmt.Errorf("broker %d: read %s/%d at %d: %w", b.id, topic, p, off, err)
		}
		for _, r := range resp.GetRecords() {
			recs = append(recs, Record{Epoch: r.GetLeaderEpoch(), Value: string(r.GetValue())})
		}
		if resp.GetNextOffset() <= off {
			return 0, nil, fmt.Errorf("broker %d: read %s/%d at %d made no progress", b.id, topic, p, off)
		}
		off = resp.GetNextOffset()
	}
	return st.GetLogStartOffset(), recs, nil
}

// SetApplyError makes ApplyPartitionState from the replicator fail with
// err (nil: pass it on), as a broker that is not ready does.
func (b *Broker) SetApplyError(err error) { b.probe.setApplyError(err) }

// Stats returns what the replicator asked so far.
func (b *Broker) Stats() Stats { return b.probe.stats() }

// Stats are the calls of the replicator (not the test's own) that reached
// the broker.
type Stats struct {
	// Appends counts the appends (LocalReplica.Append calls and
	// AppendStream requests) that wrote frames, HWUpdates those without
	// frames (a high watermark passed on).
	Appends, HWUpdates int
	// Refused counts appends and Truncate calls the broker refused (not a
	// follower in the request's epoch, frames not at its log end, ...).
	Refused int
	// AppendStreams counts the AppendStream streams opened, and
	// LocalSocketStreams those of them that came over the local socket.
	AppendStreams, LocalSocketStreams int
	// UnaryAppends counts the unary LocalReplica.Append calls (also
	// counted in Appends, HWUpdates or Refused).
	UnaryAppends int
	// ApplyFailures counts ApplyPartitionState calls failed by SetApplyError.
	ApplyFailures int
	// Truncates are the truncations the broker made.
	Truncates []*stratav1.TruncateRequest
	// Streams are the ReplicaFetch.Fetch streams opened, in order.
	Streams []Stream
}

// Stream is what one Fetch stream did, as the broker saw it.
type Stream struct {
	Open bool
	// Responses counts the responses sent (heartbeats included); Acks
	// are the fetch offsets of the follower's requests after the opening
	// one (its position after each response).
	Responses int
	Acks      []int64
	// MaxOutstanding is the most responses ever sent and not yet
	// acknowledged: above 1, the leader streamed ahead of the follower.
	MaxOutstanding int
}

// OpenStreams counts the Fetch streams still open.
func (s Stats) OpenStreams() int {
	n := 0
	for _, st := range s.Streams {
		if st.Open {
			n++
		}
	}
	return n
}

// probe is the interceptors that keep Stats and inject failures.
type probe struct {
	mu       sync.Mutex
	s        Stats
	applyErr error
}

func newProbe() *probe { return &probe{} }

func (p *probe) setApplyError(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.applyErr = err
}

func (p *probe) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.s
	s.Truncates = slices.Clone(s.Truncates)
	s.Streams = slices.Clone(s.Streams)
	for i := range s.Streams {
		s.Streams[i].Acks = slices.Clone(s.Streams[i].Acks)
	}
	return s
}

func testsOwn(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(testCall)) > 0
}

func (p *probe) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if testsOwn(ctx) {
		return handler(ctx, req)
	}
	if info.FullMethod == stratav1.LocalReplica_ApplyPartitionState_FullMethodName {
		p.mu.Lock()
		err := p.applyErr
		if err != nil {
			p.s.ApplyFailures++
		}
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
	resp, err := handler(ctx, req)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch r := req.(type) {
	case *stratav1.AppendRequest:
		p.s.UnaryAppends++
		switch {
		case err != nil:
			p.s.Refused++
		case len(r.GetFrames()) > 0:
			p.s.Appends++
		default:
			p.s.HWUpdates++
		}
	case *stratav1.TruncateRequest:
		if err != nil {
			p.s.Refused++
		} else {
			p.s.Truncates = append(p.s.Truncates, r)
		}
	}
	return resp, err
}

func (p *probe) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod == stratav1.LocalReplica_AppendStream_FullMethodName && !testsOwn(ss.Context()) {
		p.mu.Lock()
		p.s.AppendStreams++
		if _, ok := localsock.PeerFromContext(ss.Context()); ok {
			p.s.LocalSocketStreams++
		}
		p.mu.Unlock()
		return handler(srv, &appendStream{ServerStream: ss, p: p, frames: map[uint64]bool{}})
	}
	if info.FullMethod != stratav1.ReplicaFetch_Fetch_FullMethodName {
		return handler(srv, ss)
	}
	p.mu.Lock()
	idx := len(p.s.Streams)
	p.s.Streams = append(p.s.Streams, Stream{Open: true})
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.s.Streams[idx].Open = false
		p.mu.Unlock()
	}()
	return handler(srv, &fetchStream{ServerStream: ss, p: p, idx: idx})
}

// fetchStream counts a Fetch stream's responses and acknowledgements.
type fetchStream struct {
	grpc.ServerStream
	p      *probe
	idx    int
	opened bool // the opening request was received
	// outstanding is responses sent minus acknowledgements received.
	outstanding int
}

func (s *fetchStream) SendMsg(m any) error {
	if err := s.ServerStream.SendMsg(m); err != nil {
		return err
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	st := &s.p.s.Streams[s.idx]
	st.Responses++
	s.outstanding++
	st.MaxOutstanding = max(st.MaxOutstanding, s.outstanding)
	return nil
}

func (s *fetchStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(*stratav1.FetchRequest)
	if !ok {
		return nil
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if !s.opened {
		s.opened = true
		return nil
	}
	st := &s.p.s.Streams[s.idx]
	st.Acks = append(st.Acks, req.GetFetchOffset())
	s.outstanding--
	return nil
}

// appendStream counts an AppendStream's appends as the unary interceptor
// counts Append calls: a request's frames when it arrives, its outcome
// when it is answered.
type appendStream struct {
	grpc.ServerStream
	p      *probe
	mu     sync.Mutex
	frames map[uint64]bool // request id -> it carries frames
}

// appendRequest is what the broker's decoded AppendStream request (its
// own type) and the generated AppendRequest both answer.
type appendRequest interface {
	GetFrames() []byte
	GetRequestId() uint64
}

func (s *appendStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if r, ok := m.(appendRequest); ok {
		s.mu.Lock()
		s.frames[r.GetRequestId()] = len(r.GetFrames()) > 0
		s.mu.Unlock()
	}
	return nil
}

func (s *appendStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	r, ok := m.(*stratav1.AppendResponse)
	if !ok {
		return err
	}
	s.mu.Lock()
	frames := s.frames[r.GetRequestId()]
	delete(s.frames, r.GetRequestId())
	s.mu.Unlock()
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	switch {
	case r.GetError() != nil:
		s.p.s.Refused++
	case frames:
		s.p.s.Appends++
	default:
		s.p.s.HWUpdates++
	}
	return err
}
