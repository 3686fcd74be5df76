package group

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCluster serves real partitions of the offsets topic (opened on a
// real log in a temporary directory) and metadata for one user topic.
type fakeCluster struct {
	mu      sync.Mutex
	parts   map[int32]*partition.Partition
	topics  map[string]int32 // user topics: partition counts
	hw      int64
	created int
}

func newFakeCluster(t *testing.T, dir string, n int32, epoch int32) *fakeCluster {
	t.Helper()
	fc := &fakeCluster{parts: map[int32]*partition.Partition{}, topics: map[string]int32{"t": 4, "u": 2}, hw: 1000}
	for i := range n {
		l, err := logstore.Open(filepath.Join(dir, fmt.Sprint(i)), logstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		p := partition.New(l, partition.Options{Topic: OffsetsTopic, ID: i, MaxRecordBytes: 1 << 20, MinInsyncReplicas: 1,
			State: partition.State{Role: partition.RoleLeader, LeaderEpoch: epoch, LeaderID: 1, Replicas: []int32{1}, ISR: []int32{1}}})
		fc.parts[i] = p
	}
	t.Cleanup(func() {
		for _, p := range fc.parts {
			if err := p.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	return fc
}

func (f *fakeCluster) Partition(topic string, id int32) (*partition.Partition, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.parts[id]; ok && topic == OffsetsTopic {
		return p, nil
	}
	return nil, errors.New("no such partition")
}

func (f *fakeCluster) Metadata(_ context.Context, topics ...string) (*stratav1.MetadataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &stratav1.MetadataResponse{}
	off := &stratav1.TopicMetadata{Name: OffsetsTopic}
	for i := range int32(len(f.parts)) {
		off.Partitions = append(off.Partitions, &stratav1.PartitionMetadata{Partition: i, LeaderId: 1, LeaderAddress: "b1:9092"})
	}
	resp.Topics = append(resp.Topics, off)
	for name, n := range f.topics {
		tm := &stratav1.TopicMetadata{Name: name}
		for i := range n {
			tm.Partitions = append(tm.Partitions, &stratav1.PartitionMetadata{Partition: i, LeaderId: 1})
		}
		resp.Topics = append(resp.Topics, tm)
	}
	return resp, nil
}

func (f *fakeCluster) CreateOffsetsTopic(context.Context, int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created++
	return nil
}

func (f *fakeCluster) HighWatermark(_ context.Context, topic string, p int32) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.topics[topic]; !ok || p >= n {
		return 0, fmt.Errorf("%w: %s/%d", ErrNoPartition, topic, p)
	}
	return f.hw, nil
}

func allow(string, string) error { return nil }

// fakeStream is a member's end of a Session stream.
type fakeStream struct {
	ctx    context.Context
	cancel context.CancelFunc
	in     chan *stratav1.SessionRequest
	out    chan *stratav1.SessionResponse
	done   chan error // Session's return
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) Recv() (*stratav1.SessionRequest, error) {
	select {
	case r, ok := <-s.in:
		if !ok {
			return nil, io.EOF
		}
		return r, nil
	case <-s.ctx.Done():
		return nil, s.ctx.Err()
	}
}

func (s *fakeStream) Send(r *stratav1.SessionResponse) error {
	select {
	case s.out <- r:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// member is a test member: it joins and then answers only when told.
type member struct {
	t  *testing.T
	s  *fakeStream
	id string
}

func join(t *testing.T, c *Coordinator, j *stratav1.Join) *member {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &fakeStream{ctx: ctx, cancel: cancel, in: make(chan *stratav1.SessionRequest, 10), out: make(chan *stratav1.SessionResponse, 10), done: make(chan error, 1)}
	t.Cleanup(func() {
		cancel()
		<-s.done
	})
	go func() { s.done <- c.Session(s, "tester", allow) }()
	s.in <- &stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Join{Join: j}}
	m := &member{t: t, s: s}
	r := m.next()
	if r.GetJoined() == nil {
		t.Fatalf("first answer %v, want joined", r)
	}
	m.id = r.GetJoined().GetMemberId()
	return m
}

func (m *member) next() *stratav1.SessionResponse {
	m.t.Helper()
	select {
	case r := <-m.s.out:
		return r
	case err := <-m.s.done:
		m.t.Fatalf("session ended: %v", err)
	case <-time.After(10 * time.Second):
		m.t.Fatal("no answer in 10s")
	}
	return nil
}

func (m *member) assignment() *stratav1.Assignment {
	m.t.Helper()
	r := m.next()
	if r.GetAssignment() == nil {
		m.t.Fatalf("answer %v, want an assignment", r)
	}
	return r.GetAssignment()
}

func (m *member) ack(a *stratav1.Assignment) {
	m.s.in <- &stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Ack{Ack: &stratav1.Ack{MemberEpoch: a.GetMemberEpoch(), Owned: a.GetPartitions(), Seq: a.GetSeq()}}}
}

func count(tps []*stratav1.TopicPartitions) int {
	n := 0
	for _, t := range tps {
		n += len(t.GetPartitions())
	}
	return n
}

func newCoordinator(t *testing.T, fc *fakeCluster) *Coordinator {
	c := NewCoordinator(fc, Options{}, zaptest.NewLogger(t))
	t.Cleanup(c.Close)
	return c
}

// TestSessionsRebalanceIncrementally drives the protocol over sessions:
// the second member gets its partitions only after the first acked giving
// them up; a commit by the first for a partition it gave up is refused; a
// member whose stream ends leaves at once and its partitions go to the
// other.
func TestSessionsRebalanceIncrementally(t *testing.T) {
	fc := newFakeCluster(t, t.TempDir(), 3, 1)
	c := newCoordinator(t, fc)
	ctx := context.Background()
	j := &stratav1.Join{Group: "g", Topics: []string{"t"}}
	m1 := join(t, c, j)
	a1 := m1.assignment()
	if count(a1.GetPartitions()) != 4 {
		t.Fatalf("m1 alone got %v", a1.GetPartitions())
	}
	m1.ack(a1)

	m2 := join(t, c, j)
	revoke := m1.assignment()
	if count(revoke.GetPartitions()) != 2 || revoke.GetMemberEpoch() != a1.GetMemberEpoch() {
		t.Fatalf("m1 revoke step: %v", revoke)
	}
	wait := m2.assignment()
	if count(wait.GetPartitions()) != 0 || count(wait.GetPending()) != 2 {
		t.Fatalf("m2 before m1 gave up: %v", wait)
	}
	// m1 commits what it gives up before acking: allowed.
	given := toSet(wait.GetPending()).Sorted()
	commit := func(memberID string, epoch int64, tp TP, off int64) error {
		return c.Commit(ctx, &stratav1.CommitOffsetsRequest{Group: "g", MemberId: memberID, MemberEpoch: epoch,
			Offsets: []*stratav1.PartitionOffset{{Topic: tp.Topic, Partition: tp.Partition, Offset: off}}}, allow)
	}
	if err := commit(m1.id, revoke.GetMemberEpoch(), given[0], 7); err != nil {
		t.Fatalf("m1 commit while revoking: %v", err)
	}
	m1.ack(revoke)
	got := m2.assignment()
	if count(got.GetPartitions()) != 2 {
		t.Fatalf("m2 after m1's ack: %v", got)
	}
	m2.ack(got)
	adv := m1.assignment() // m1 advances to the new epoch
	if err := commit(m1.id, adv.GetMemberEpoch(), given[0], 8); !errors.Is(err, ErrNotOwned) {
		t.Fatalf("m1 commit of a partition it gave up: %v, want ErrNotOwned", err)
	}
	if err := commit(m2.id, got.GetMemberEpoch(), given[0], 9); err != nil {
		t.Fatalf("m2 commit: %v", err)
	}
	if err := commit(m2.id, got.GetMemberEpoch(), given[0], 5000); err == nil {
		t.Fatal("a commit above the high watermark was accepted")
	}

	// m2's stream ends: it leaves at once.
	m2.s.cancel()
	all := m1.assignment()
	if count(all.GetPartitions()) != 4 {
		t.Fatalf("m1 after m2 left: %v", all)
	}
	if err := commit(m2.id, got.GetMemberEpoch(), given[0], 10); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("zombie commit: %v", err)
	}

	resp, err := c.Fetch(ctx, &stratav1.FetchOffsetsRequest{Group: "g"}, allow)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetOffsets()) != 1 || resp.GetOffsets()[0].GetOffset() != 9 {
		t.Fatalf("committed offsets %v, want %v at 9", resp.GetOffsets(), given[0])
	}
}

// TestFailoverRebuildsFromTheLog: a new coordinator of the same offsets
// partitions (a new leader epoch) answers the offsets committed through
// the old one and continues the group epoch above it; the old one's
// sessions end.
func TestFailoverRebuildsFromTheLog(t *testing.T) {
	fc := newFakeCluster(t, t.TempDir(), 3, 1)
	old := newCoordinator(t, fc)
	ctx := context.Background()
	m := join(t, old, &stratav1.Join{Group: "g", Topics: []string{"t", "u"}})
	a := m.assignment()
	m.ack(a)
	for p := range int32(4) {
		if err := old.Commit(ctx, &stratav1.CommitOffsetsRequest{Group: "g", MemberId: m.id, MemberEpoch: a.GetMemberEpoch(),
			Offsets: []*stratav1.PartitionOffset{{Topic: "t", Partition: p, Offset: int64(100 + p), Metadata: "m"}}}, allow); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Commit(ctx, &stratav1.CommitOffsetsRequest{Group: "solo", Offsets: []*stratav1.PartitionOffset{{Topic: "u", Partition: 1, Offset: 5}}}, allow); err != nil {
		t.Fatalf("a member-less commit: %v", err)
	}
	// Leadership moves (here: the same replicas, next epoch).
	for _, p := range fc.parts {
		st := p.State()
		st.LeaderEpoch++
		p.SetState(st)
	}
	select {
	case err := <-m.s.done:
		var nc *NotCoordinatorError
		if !errors.As(err, &nc) {
			t.Fatalf("old session ended with %v, want NotCoordinatorError", err)
		}
		m.s.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("the old coordinator's session did not end")
	}

	fresh := newCoordinator(t, fc)
	resp, err := fresh.Fetch(ctx, &stratav1.FetchOffsetsRequest{Group: "g", Topics: []string{"t"}}, allow)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetOffsets()) != 4 || resp.GetOffsets()[3].GetOffset() != 103 || resp.GetOffsets()[0].GetMetadata() != "m" {
		t.Fatalf("rebuilt offsets %v", resp.GetOffsets())
	}
	solo, err := fresh.Fetch(ctx, &stratav1.FetchOffsetsRequest{Group: "solo"}, allow)
	if err != nil || len(solo.GetOffsets()) != 1 {
		t.Fatalf("solo offsets %v, %v", solo.GetOffsets(), err)
	}
	m2 := join(t, fresh, &stratav1.Join{Group: "g", Topics: []string{"t", "u"}, MemberId: m.id, MemberEpoch: a.GetMemberEpoch(), Owned: a.GetPartitions()})
	if m2.id != m.id {
		t.Fatalf("rejoining member got id %s, want its old %s", m2.id, m.id)
	}
	a2 := m2.assignment()
	if a2.GetGroupEpoch() <= a.GetGroupEpoch() || count(a2.GetPartitions()) != 6 {
		t.Fatalf("after failover: %v (old group epoch %d)", a2, a.GetGroupEpoch())
	}
	d, err := fresh.Describe(ctx, "g", 1, allow)
	if err != nil || len(d.GetMembers()) != 1 || d.GetState() == "empty" {
		t.Fatalf("describe: %v, %v", d, err)
	}
	if err := fresh.Delete(ctx, "g", allow); !errors.Is(err, ErrHasMembers) {
		t.Fatalf("delete with members: %v", err)
	}
}

// TestStaticMemberSessionTimeout: a static member whose stream ends keeps
// its partitions for its session timeout: back in time, no rebalance; gone
// for longer, its partitions go to the others.
func TestStaticMemberSessionTimeout(t *testing.T) {
	fc := newFakeCluster(t, t.TempDir(), 1, 1)
	c := newCoordinator(t, fc)
	j := func(inst string, timeoutMs int32) *stratav1.Join {
		return &stratav1.Join{Group: "g", Topics: []string{"t"}, InstanceId: inst, SessionTimeoutMs: timeoutMs}
	}
	a := join(t, c, j("a", 60_000)) // a sends no heartbeats here
	aa := a.assignment()
	a.ack(aa)
	b := join(t, c, j("b", 1000))
	for done := false; !done; { // settle: both hold two
		select {
		case r := <-a.s.out:
			a.ack(r.GetAssignment())
		case r := <-b.s.out:
			b.ack(r.GetAssignment())
		case <-time.After(300 * time.Millisecond):
			done = true
		}
	}
	d, err := c.Describe(context.Background(), "g", 1, allow)
	if err != nil || d.GetState() != "stable" {
		t.Fatalf("not stable: %v %v", d, err)
	}
	epoch := d.GetGroupEpoch()
	b.s.cancel() // b's process restarts...
	b2 := join(t, c, j("b", 1000))
	if got := b2.assignment(); count(got.GetPartitions()) != 2 || got.GetGroupEpoch() != epoch {
		t.Fatalf("b back within its timeout: %v, want its two partitions at epoch %d", got, epoch)
	}
	b2.s.cancel() // ...and now stays away
	select {
	case r := <-a.s.out:
		if got := r.GetAssignment(); count(got.GetPartitions()) != 4 {
			t.Fatalf("after b's timeout a got %v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's partitions were not given to a after its session timeout")
	}
}

// TestDeletedTopicLeavesGroups: once a topic is gone, the next lag
// refresh removes every group's offsets of it (durably: a new coordinator
// does not bring them back); other topics' offsets stay.
func TestDeletedTopicLeavesGroups(t *testing.T) {
	fc := newFakeCluster(t, t.TempDir(), 2, 1)
	c := newCoordinator(t, fc)
	ctx := context.Background()
	for _, g := range []string{"g1", "g2"} {
		if err := c.Commit(ctx, &stratav1.CommitOffsetsRequest{Group: g, Offsets: []*stratav1.PartitionOffset{
			{Topic: "t", Partition: 0, Offset: 1}, {Topic: "u", Partition: 1, Offset: 2}}}, allow); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Commit(ctx, &stratav1.CommitOffsetsRequest{Group: "g1", Offsets: []*stratav1.PartitionOffset{{Topic: "nope", Offset: 1}}}, allow); !errors.Is(err, ErrNoPartition) {
		t.Fatalf("commit to a topic that does not exist: %v", err)
	}
	fc.mu.Lock()
	delete(fc.topics, "u")
	fc.mu.Unlock()
	c.refreshHW()
	check := func(c *Coordinator) {
		t.Helper()
		for _, g := range []string{"g1", "g2"} {
			resp, err := c.Fetch(ctx, &stratav1.FetchOffsetsRequest{Group: g}, allow)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetOffsets(); len(got) != 1 || got[0].GetTopic() != "t" {
				t.Fatalf("%s offsets after u was deleted: %v", g, got)
			}
		}
	}
	check(c)
	for _, p := range fc.parts {
		st := p.State()
		st.LeaderEpoch++
		p.SetState(st)
	}
	check(newCoordinator(t, fc))
}

// BenchmarkCommit: offset commits (one partition each) through the
// coordinator onto a real single-replica offsets partition, acks=ALL,
// from GOMAXPROCS*8 committers at once.
func BenchmarkCommit(b *testing.B) {
	fc := &fakeCluster{parts: map[int32]*partition.Partition{}, topics: map[string]int32{"t": 64}, hw: 1 << 40}
	l, err := logstore.Open(b.TempDir(), logstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fc.parts[0] = partition.New(l, partition.Options{Topic: OffsetsTopic, MaxRecordBytes: 1 << 20, MinInsyncReplicas: 1,
		State: partition.State{Role: partition.RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1}, ISR: []int32{1}}})
	defer fc.parts[0].Close()
	c := NewCoordinator(fc, Options{}, nil)
	defer c.Close()
	ctx := context.Background()
	var next int64
	var mu sync.Mutex
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			next++
			n := next
			mu.Unlock()
			if err := c.Commit(ctx, &stratav1.CommitOffsetsRequest{Group: "bench", Offsets: []*stratav1.PartitionOffset{
				{Topic: "t", Partition: int32(n % 64), Offset: n}}}, allow); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// TestFetchNeedsDescribeOrConsume: a member (consume on its group) reads
// the offsets it starts from; a caller with neither right does not.
func TestFetchNeedsDescribeOrConsume(t *testing.T) {
	fc := newFakeCluster(t, t.TempDir(), 1, 1)
	c := newCoordinator(t, fc)
	only := func(action string) Authorizer {
		return func(_, a string) error {
			if a == action {
				return nil
			}
			return errors.New("denied")
		}
	}
	req := &stratav1.FetchOffsetsRequest{Group: "g"}
	if _, err := c.Fetch(context.Background(), req, only("consume")); err != nil {
		t.Fatalf("consume only: %v", err)
	}
	if _, err := c.Fetch(context.Background(), req, only("describe")); err != nil {
		t.Fatalf("describe only: %v", err)
	}
	if _, err := c.Fetch(context.Background(), req, only("produce")); err == nil {
		t.Fatal("neither describe nor consume: allowed")
	}
}
