package partition

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLeader(t *testing.T, clk *clock, isr []int32) *Partition {
	t.Helper()
	l, err := logstore.Open(t.TempDir(), logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(l, Options{Topic: "t", MaxRecordBytes: 1 << 20, MinInsyncReplicas: 1, Now: clk.now,
		State: State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: isr}})
	t.Cleanup(func() { p.Close() })
	return p
}

func produceN(t *testing.T, p *Partition, n int) {
	t.Helper()
	recs := make([]*stratav1.Record, n)
	for i := range recs {
		recs[i] = &stratav1.Record{Value: []byte("v")}
	}
	if _, err := p.Produce(context.Background(), recs, stratav1.Acks_ACKS_LEADER); err != nil {
		t.Fatal(err)
	}
}

func TestHighWatermarkIsMinOverISR(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeader(t, clk, []int32{1, 2, 3})
	produceN(t, p, 5)
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("HW = %d with no follower position known, want 0", hw)
	}
	must(t, p.FollowerFetched(2, 1, 5))
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("HW = %d with follower 3 unknown, want 0", hw)
	}
	must(t, p.FollowerFetched(3, 1, 3))
	if hw := p.HighWatermark(); hw != 3 {
		t.Fatalf("HW = %d, want min(5, 5, 3) = 3", hw)
	}
	must(t, p.FollowerFetched(3, 1, 5))
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("HW = %d, want 5", hw)
	}
	// The HW never moves back on a leader, even if a position does.
	must(t, p.FollowerFetched(3, 1, 1))
	if hw := p.HighWatermark(); hw != 5 {
		t.Fatalf("HW moved back to %d", hw)
	}
	// A follower not in the ISR does not hold the HW.
	p.SetState(State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}})
	produceN(t, p, 2)
	must(t, p.FollowerFetched(2, 1, 7))
	if hw := p.HighWatermark(); hw != 7 {
		t.Fatalf("HW = %d, want 7 (follower 3 is out of the ISR)", hw)
	}
}

func TestFollowerFetchedRefusals(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeader(t, clk, []int32{1, 2})
	if err := p.FollowerFetched(2, 0, 0); !errors.Is(err, ErrStaleEpoch) {
		t.Errorf("stale epoch: %v", err)
	}
	if err := p.FollowerFetched(2, 2, 0); !errors.Is(err, ErrUnknownEpoch) {
		t.Errorf("future epoch: %v", err)
	}
	if err := p.FollowerFetched(9, 1, 0); !errors.Is(err, ErrNotReplica) {
		t.Errorf("not a replica: %v", err)
	}
	if err := p.FollowerFetched(1, 1, 0); !errors.Is(err, ErrNotReplica) {
		t.Errorf("the leader itself: %v", err)
	}
}

// TestProposedISR: a follower that has not caught up within the lag bound
// is proposed out, one that caught up to the HW is proposed back in, and
// nothing is proposed while the committed ISR is right.
func TestProposedISR(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeader(t, clk, []int32{1, 2, 3})
	lag := 5 * time.Second
	if _, _, ok := p.ProposedISR(lag); ok {
		t.Fatal("proposal right after election")
	}
	produceN(t, p, 10)
	clk.advance(time.Second)
	must(t, p.FollowerFetched(2, 1, 10)) // caught up
	must(t, p.FollowerFetched(3, 1, 4))  // behind
	clk.advance(3 * time.Second)
	must(t, p.FollowerFetched(2, 1, 10))
	if _, _, ok := p.ProposedISR(lag); ok {
		t.Fatal("proposal while both followers are within the lag bound")
	}
	clk.advance(2 * time.Second) // 6 s since election: 3 never caught up
	epoch, isr, ok := p.ProposedISR(lag)
	if !ok || epoch != 1 || !slices.Equal(isr, []int32{1, 2}) {
		t.Fatalf("proposal = %v %v %v, want shrink to [1 2] in epoch 1", epoch, isr, ok)
	}
	// Not used until committed: the HW still waits for 3.
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("HW = %d before the shrink is committed, want 4", hw)
	}
	p.SetState(State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}})
	if hw := p.HighWatermark(); hw != 10 {
		t.Fatalf("HW = %d after the shrink, want 10", hw)
	}
	// Follower 3 reaches what the leader had at its previous report: it
	// counts as caught up then, and once at the HW it is proposed back.
	must(t, p.FollowerFetched(3, 1, 10))
	_, isr, ok = p.ProposedISR(lag)
	if !ok || !slices.Equal(isr, []int32{1, 2, 3}) {
		t.Fatalf("proposal = %v %v, want expand to [1 2 3]", isr, ok)
	}
	// A new epoch forgets positions from the old one.
	p.SetState(State{Role: RoleLeader, LeaderEpoch: 2, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2}})
	if _, _, ok := p.ProposedISR(lag); ok {
		t.Fatal("an expansion proposed from positions of an older epoch")
	}
	// A follower does not propose.
	p.SetState(State{Role: RoleFollower, LeaderEpoch: 3, LeaderID: 2, Replicas: []int32{1, 2, 3}, ISR: []int32{2}})
	if _, _, ok := p.ProposedISR(lag); ok {
		t.Fatal("a follower proposed an ISR")
	}
}

// TestAcksAllEndsWhenLeadershipMoves: a produce waiting for the HW answers
// NotLeader when the broker stops leading, instead of waiting forever.
func TestAcksAllEndsWhenLeadershipMoves(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeader(t, clk, []int32{1, 2})
	done := make(chan error, 1)
	go func() {
		_, err := p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("x")}}, stratav1.Acks_ACKS_ALL)
		done <- err
	}()
	for changed := p.LogChanged(); p.LogEndOffset() == 0; changed = p.LogChanged() {
		<-changed // the append is the next change of the log end
	}
	must(t, p.ApplyState(State{Role: RoleFollower, LeaderEpoch: 2, LeaderID: 2, Replicas: []int32{1, 2, 3}, ISR: []int32{2}}))
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("acks=ALL after demotion: %v, want ErrNotLeader", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acks=ALL still waiting after demotion")
	}
}

// TestAcksAllNotAcknowledgedAfterISRShrinksBelowMin: an acks=ALL produce
// is appended and waits for its followers; the committed ISR then shrinks
// below min_insync_replicas. The HW over the shrunken ISR (the leader
// alone) passes the batch at once, but fewer copies than promised hold it:
// the produce must fail with ErrNotEnoughReplicas (Unavailable on the
// wire, Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND), never be acknowledged.
func TestAcksAllNotAcknowledgedAfterISRShrinksBelowMin(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeader(t, clk, []int32{1, 2, 3})
	p.SetLimits(1<<20, 2)
	must(t, p.FollowerFetched(2, 1, 0))
	must(t, p.FollowerFetched(3, 1, 0))
	done := make(chan error, 1)
	go func() {
		_, err := p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("x")}}, stratav1.Acks_ACKS_ALL)
		done <- err
	}()
	for changed := p.LogChanged(); p.LogEndOffset() == 0; changed = p.LogChanged() {
		<-changed // the append is the next change of the log end
	}
	select {
	case err := <-done:
		t.Fatalf("acks=ALL answered (%v) before any follower copied the batch", err)
	default:
	}
	// The controller committed ISR [1]: both followers fell out.
	must(t, p.ApplyState(State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}))
	select {
	case err := <-done:
		var ne *NotEnoughReplicasError
		if !errors.As(err, &ne) || !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("acks=ALL after the ISR shrank to 1 of min 2: %v, want NotEnoughReplicasError", err)
		}
		if !ne.AfterAppend || ne.ISR != 1 || ne.MinISR != 2 {
			t.Fatalf("error %+v, want after-append with ISR 1 of min 2", ne)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acks=ALL still waiting after the ISR shrank")
	}
	// What makes the check necessary: the HW did pass the batch.
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("HW = %d over ISR [1], want 1", hw)
	}
	// A new acks=ALL produce is refused before appending.
	_, err := p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("y")}}, stratav1.Acks_ACKS_ALL)
	var ne *NotEnoughReplicasError
	if !errors.As(err, &ne) || ne.AfterAppend {
		t.Fatalf("new acks=ALL with ISR 1 of min 2: %v, want NotEnoughReplicasError before the append", err)
	}
	if end := p.LogEndOffset(); end != 1 {
		t.Fatalf("log end %d after a refused produce, want 1", end)
	}
}

func TestHighWatermarkCheckpoint(t *testing.T) {
	dir := t.TempDir()
	open := func(st State) *Partition {
		l, err := logstore.Open(dir, logstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return New(l, Options{Topic: "t", MaxRecordBytes: 1 << 20, State: st})
	}
	single := State{Role: RoleLeader, LeaderEpoch: 0, LeaderID: 1, Replicas: []int32{1}, ISR: []int32{1}}
	p := open(single)
	produceN(t, p, 7)
	must(t, p.Close()) // checkpoints
	q := open(State{Role: RoleNone, LeaderID: -1})
	if hw := q.HighWatermark(); hw != 7 {
		t.Fatalf("HW after restart = %d, want the checkpointed 7", hw)
	}
	must(t, q.Close())
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
