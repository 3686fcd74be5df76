// Package fakebroker is an in-memory broker (strata.v1.ReplicaFetch,
// LocalReplica and ReplicaTools) for tests of
// the replicator's side of replication: partition logs with leader epochs
// (logstore's rules), a pipelined Fetch with heartbeats, Append,
// OffsetForLeaderEpoch, PartitionStatus, Truncate and ApplyPartitionState
// with the broker's epoch fencing, over real mutual TLS on loopback. It
// records what it was asked so tests can assert on the protocol.
package fakebroker

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

// Options tune a fake broker. Zero values mean defaults.
type Options struct {
	// Window is how many Fetch responses a leader sends ahead of the
	// follower's acknowledgements; default 4.
	Window int
	// BatchRecords bounds the records of one Fetch response; default 16.
	BatchRecords int
	// Heartbeat is how often an idle Fetch stream sends a heartbeat;
	// default 20ms.
	Heartbeat time.Duration
}

// Sent is one Fetch response as sent: its base offset and record count
// (0 for a heartbeat).
type Sent struct {
	Base    int64
	Records int
}

// Stream is what one Fetch stream did.
type Stream struct {
	Open bool
	// Sent lists the responses in order; Acks the fetch offsets of the
	// follower's requests after the opening one.
	Sent []Sent
	Acks []int64
	// MaxOutstanding is the most responses ever sent and not yet
	// acknowledged.
	MaxOutstanding int
}

// Stats are what the broker was asked and did.
type Stats struct {
	// Appends counts Append calls with frames, HWUpdates those without.
	Appends, HWUpdates int
	// Refused counts Append and Truncate calls refused because this broker
	// did not follow the partition in the request's epoch.
	Refused int
	// ApplyFailures counts ApplyPartitionState calls failed by SetApplyError.
	ApplyFailures int
	Truncates     []*stratav1.TruncateRequest
	Streams       []Stream
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

type key struct {
	topic     string
	partition int32
}

type partition struct {
	role  stratav1.Role
	epoch int32
	log   plog
	hw    int64
}

// Broker is one fake broker.
type Broker struct {
	stratav1.UnimplementedReplicaFetchServer
	stratav1.UnimplementedLocalReplicaServer
	stratav1.UnimplementedReplicaToolsServer
	opts Options
	srv  *grpc.Server
	addr string

	mu       sync.Mutex
	parts    map[key]*partition
	changed  chan struct{} // closed and replaced on every change
	applyErr error
	stats    Stats
}

// Start serves a fake broker on a loopback port with a server certificate
// for cn from ca, requiring client certificates; it stops at test cleanup.
func Start(tb testing.TB, ca *testutil.CA, cn string, opts Options) *Broker {
	tb.Helper()
	if opts.Window <= 0 {
		opts.Window = 4
	}
	if opts.BatchRecords <= 0 {
		opts.BatchRecords = 16
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 20 * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &Broker{opts: opts, addr: ln.Addr().String(), parts: map[key]*partition{}, changed: make(chan struct{})}
	b.srv = grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerTLS(tb, cn))))
	stratav1.RegisterReplicaFetchServer(b.srv, b)
	stratav1.RegisterLocalReplicaServer(b.srv, b)
	stratav1.RegisterReplicaToolsServer(b.srv, b)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Stop before Serve ran (a short test) is ErrServerStopped.
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			tb.Errorf("fake broker %s: %v", cn, err)
		}
	}()
	tb.Cleanup(func() {
		b.srv.Stop()
		<-done
	})
	return b
}

// Addr is the broker's address.
func (b *Broker) Addr() string { return b.addr }

// Stop stops serving, closing every stream (a dead broker).
func (b *Broker) Stop() { b.srv.Stop() }

func (b *Broker) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// SetPartition replaces a partition's role, epoch and log (from start).
func (b *Broker) SetPartition(topic string, p int32, role stratav1.Role, epoch int32, start int64, recs ...Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt := &partition{role: role, epoch: epoch, log: plog{start: start}}
	pt.log.append(recs...)
	pt.hw = start
	b.parts[key{topic, p}] = pt
	b.notifyLocked()
}

// SetRole changes a partition's role and epoch, keeping its log.
func (b *Broker) SetRole(topic string, p int32, role stratav1.Role, epoch int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt := b.part(topic, p)
	pt.role, pt.epoch = role, epoch
	b.notifyLocked()
}

// Produce appends values in the partition's current epoch, as a leader does.
func (b *Broker) Produce(topic string, p int32, values ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt := b.part(topic, p)
	for _, v := range values {
		pt.log.append(Record{Epoch: pt.epoch, Value: v})
	}
	b.notifyLocked()
}

func (b *Broker) part(topic string, p int32) *partition {
	pt := b.parts[key{topic, p}]
	if pt == nil {
		pt = &partition{role: stratav1.Role_ROLE_NONE}
		b.parts[key{topic, p}] = pt
	}
	return pt
}

// Log returns a partition's log start offset and records.
func (b *Broker) Log(topic string, p int32) (int64, []Record) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt := b.part(topic, p)
	return pt.log.start, slices.Clone(pt.log.recs)
}

// Role returns a partition's role and leader epoch.
func (b *Broker) Role(topic string, p int32) (stratav1.Role, int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt := b.part(topic, p)
	return pt.role, pt.epoch
}

// HighWatermark returns a partition's high watermark.
func (b *Broker) HighWatermark(topic string, p int32) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.part(topic, p).hw
}

// SetApplyError makes ApplyPartitionState fail with err (nil: succeed).
func (b *Broker) SetApplyError(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.applyErr = err
}

// Stats returns a copy of what the broker was asked.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.Truncates = slices.Clone(s.Truncates)
	s.Streams = slices.Clone(s.Streams)
	for i := range s.Streams {
		s.Streams[i].Sent = slices.Clone(s.Streams[i].Sent)
		s.Streams[i].Acks = slices.Clone(s.Streams[i].Acks)
	}
	return s
}

// ApplyPartitionState sets the role and epoch, refusing an older epoch.
func (b *Broker) ApplyPartitionState(_ context.Context, req *stratav1.ApplyPartitionStateRequest) (*stratav1.ApplyPartitionStateResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.applyErr != nil {
		b.stats.ApplyFailures++
		b.notifyLocked()
		return nil, b.applyErr
	}
	pt := b.part(req.GetTopic(), req.GetPartition())
	if req.GetRole() != stratav1.Role_ROLE_NONE {
		if req.GetLeaderEpoch() < pt.epoch {
			return nil, status.Errorf(codes.FailedPrecondition, "epoch %d is older than %d", req.GetLeaderEpoch(), pt.epoch)
		}
		pt.epoch = req.GetLeaderEpoch()
	}
	pt.role = req.GetRole()
	b.notifyLocked()
	return &stratav1.ApplyPartitionStateResponse{LogEndOffset: pt.log.leo()}, nil
}

// PartitionStatus reports the local view.
func (b *Broker) PartitionStatus(_ context.Context, req *stratav1.PartitionStatusRequest) (*stratav1.PartitionStatusResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt, ok := b.parts[key{req.GetTopic(), req.GetPartition()}]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such partition")
	}
	return &stratav1.PartitionStatusResponse{Role: pt.role, LeaderEpoch: pt.epoch, LogStartOffset: pt.log.start,
		LogEndOffset: pt.log.leo(), HighWatermark: pt.hw, LatestLocalEpoch: pt.log.latestEpoch()}, nil
}

// followerLocked returns the partition if this broker follows it in epoch.
func (b *Broker) followerLocked(topic string, p, epoch int32) (*partition, error) {
	pt, ok := b.parts[key{topic, p}]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such partition")
	}
	if pt.role != stratav1.Role_ROLE_FOLLOWER || pt.epoch != epoch {
		b.stats.Refused++
		return nil, status.Errorf(codes.FailedPrecondition, "%s in epoch %d, request for follower in %d", pt.role, pt.epoch, epoch)
	}
	return pt, nil
}

// Append writes frames at exactly the log end, or updates the high
// watermark when there are none.
func (b *Broker) Append(_ context.Context, req *stratav1.AppendRequest) (*stratav1.AppendResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt, err := b.followerLocked(req.GetTopic(), req.GetPartition(), req.GetLeaderEpoch())
	if err != nil {
		return nil, err
	}
	frames, err := decodeFrames(req.GetFrames())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(frames) > 0 {
		if req.GetRecordsEpoch() < pt.log.latestEpoch() {
			return nil, status.Errorf(codes.InvalidArgument, "records epoch %d below the latest %d", req.GetRecordsEpoch(), pt.log.latestEpoch())
		}
		for i, f := range frames {
			if f.offset != pt.log.leo()+int64(i) {
				return nil, status.Errorf(codes.OutOfRange, "frame %d at offset %d, log end is %d", i, f.offset, pt.log.leo())
			}
		}
		for _, f := range frames {
			pt.log.append(Record{Epoch: req.GetRecordsEpoch(), Value: f.value})
		}
		b.stats.Appends++
	} else {
		b.stats.HWUpdates++
	}
	pt.hw = max(pt.log.start, min(req.GetLeaderHighWatermark(), pt.log.leo()))
	b.notifyLocked()
	return &stratav1.AppendResponse{LogEndOffset: pt.log.leo()}, nil
}

// Truncate removes records at and after offset, or resets the log there.
func (b *Broker) Truncate(_ context.Context, req *stratav1.TruncateRequest) (*stratav1.TruncateResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt, err := b.followerLocked(req.GetTopic(), req.GetPartition(), req.GetLeaderEpoch())
	if err != nil {
		return nil, err
	}
	if req.GetOffset() < 0 {
		return nil, status.Error(codes.InvalidArgument, "negative offset")
	}
	if req.GetReset_() {
		pt.log.reset(req.GetOffset())
	} else {
		pt.log.truncate(req.GetOffset())
	}
	pt.hw = max(pt.log.start, min(pt.hw, pt.log.leo()))
	b.stats.Truncates = append(b.stats.Truncates, proto.Clone(req).(*stratav1.TruncateRequest))
	b.notifyLocked()
	return &stratav1.TruncateResponse{LogEndOffset: pt.log.leo()}, nil
}

// OffsetForLeaderEpoch answers for the local log with current -1, else
// only as the leader in exactly that epoch.
func (b *Broker) OffsetForLeaderEpoch(_ context.Context, req *stratav1.OffsetForLeaderEpochRequest) (*stratav1.OffsetForLeaderEpochResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pt, ok := b.parts[key{req.GetTopic(), req.GetPartition()}]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such partition")
	}
	if cur := req.GetCurrentLeaderEpoch(); cur != -1 && (pt.role != stratav1.Role_ROLE_LEADER || pt.epoch != cur) {
		return nil, status.Errorf(codes.FailedPrecondition, "%s in epoch %d, asked as leader of %d", pt.role, pt.epoch, cur)
	}
	e, end := pt.log.endOffsetFor(req.GetLeaderEpoch())
	return &stratav1.OffsetForLeaderEpochResponse{LeaderEpoch: e, EndOffset: end}, nil
}

// Fetch streams the log ahead of the follower, at most Window responses
// unacknowledged, with heartbeats when idle; the high watermark follows
// the follower's acknowledged position.
func (b *Broker) Fetch(stream grpc.BidiStreamingServer[stratav1.FetchRequest, stratav1.FetchResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	k := key{first.GetTopic(), first.GetPartition()}
	b.mu.Lock()
	pt, err := b.leaderLocked(k, first.GetLeaderEpoch())
	if err == nil {
		if off := first.GetFetchOffset(); off < pt.log.start || off > pt.log.leo() {
			st, _ := status.New(codes.OutOfRange, "fetch offset outside the log").WithDetails(&stratav1.OffsetRange{
				Requested: off, LogStartOffset: pt.log.start, EndOffset: pt.log.leo()})
			err = st.Err()
		}
	}
	if err != nil {
		b.mu.Unlock()
		return err
	}
	idx := len(b.stats.Streams)
	b.stats.Streams = append(b.stats.Streams, Stream{Open: true})
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.stats.Streams[idx].Open = false
		b.notifyLocked()
		b.mu.Unlock()
	}()

	ctx := stream.Context()
	acks := make(chan int64)
	readErr := make(chan error, 1)
	// The reader ends when the stream does: its context is cancelled as
	// soon as this handler returns.
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				readErr <- err
				return
			}
			select {
			case acks <- req.GetFetchOffset():
			case <-ctx.Done():
				return
			}
		}
	}()
	pos, outstanding := first.GetFetchOffset(), 0
	hb := time.NewTimer(b.opts.Heartbeat)
	defer hb.Stop()
	send := func(resp *stratav1.FetchResponse, n int) error {
		if err := stream.Send(resp); err != nil {
			return err
		}
		outstanding++
		b.mu.Lock()
		s := &b.stats.Streams[idx]
		s.Sent = append(s.Sent, Sent{Base: resp.GetBaseOffset(), Records: n})
		s.MaxOutstanding = max(s.MaxOutstanding, outstanding)
		b.mu.Unlock()
		return nil
	}
	for {
		b.mu.Lock()
		pt, err := b.leaderLocked(k, first.GetLeaderEpoch())
		if err != nil {
			b.mu.Unlock()
			return err
		}
		resp := &stratav1.FetchResponse{LeaderEpoch: pt.epoch, HighWatermark: pt.hw,
			LogStartOffset: pt.log.start, LogEndOffset: pt.log.leo(), BaseOffset: pos}
		n := 0
		if outstanding < b.opts.Window {
			resp.Frames, n, resp.RecordsEpoch = pt.log.frames(pos, b.opts.BatchRecords)
		}
		changed := b.changed
		b.mu.Unlock()
		if n > 0 {
			if err := send(resp, n); err != nil {
				return err
			}
			pos += int64(n)
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case off := <-acks:
			outstanding--
			b.mu.Lock()
			s := &b.stats.Streams[idx]
			s.Acks = append(s.Acks, off)
			if pt, err := b.leaderLocked(k, first.GetLeaderEpoch()); err == nil {
				pt.hw = max(pt.hw, min(off, pt.log.leo()))
			}
			b.notifyLocked()
			b.mu.Unlock()
		case <-changed:
		case <-hb.C:
			if outstanding < b.opts.Window {
				resp.RecordsEpoch = -1
				if err := send(resp, 0); err != nil {
					return err
				}
			}
			hb.Reset(b.opts.Heartbeat)
		}
	}
}

func (b *Broker) leaderLocked(k key, epoch int32) (*partition, error) {
	pt, ok := b.parts[k]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such partition")
	}
	if pt.role != stratav1.Role_ROLE_LEADER || pt.epoch != epoch {
		return nil, status.Errorf(codes.FailedPrecondition, "%s in epoch %d, fetch for leader epoch %d", pt.role, pt.epoch, epoch)
	}
	return pt, nil
}
