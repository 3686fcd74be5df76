package partition

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// newLeasedLeader is partition t/0 led by broker 1 in epoch 1 with a leader
// lease, as a cluster-mode broker's replicator would have applied it.
func newLeasedLeader(t *testing.T, clk *clock, lease time.Duration) *Partition {
	t.Helper()
	l, err := logstore.Open(t.TempDir(), logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(l, Options{Topic: "t", MaxRecordBytes: 1 << 20, MinInsyncReplicas: 1, Now: clk.now, LeaderLease: lease,
		State: State{Role: RoleNone, LeaderID: -1}})
	t.Cleanup(func() { p.Close() })
	must(t, p.ApplyState(State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}))
	return p
}

var allAcks = []stratav1.Acks{stratav1.Acks_ACKS_NONE, stratav1.Acks_ACKS_LEADER, stratav1.Acks_ACKS_ALL}

// produceAll produces one record with each acks and returns the errors.
func produceAll(p *Partition) []error {
	var errs []error
	for _, acks := range allAcks {
		_, err := p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("v")}}, acks)
		errs = append(errs, err)
	}
	return errs
}

func mustAccept(t *testing.T, p *Partition, when string) {
	t.Helper()
	for i, err := range produceAll(p) {
		if err != nil {
			t.Fatalf("%s: produce with %s: %v, want accepted", when, allAcks[i], err)
		}
	}
}

func mustRefuse(t *testing.T, p *Partition, when string) {
	t.Helper()
	end := p.LogEndOffset()
	for i, err := range produceAll(p) {
		var le *LeaseExpiredError
		if !errors.As(err, &le) || !errors.Is(err, ErrLeaseExpired) {
			t.Fatalf("%s: produce with %s: %v, want LeaseExpiredError", when, allAcks[i], err)
		}
		if le.Since <= le.Lease || le.Epoch != p.State().LeaderEpoch {
			t.Fatalf("%s: %+v, want more than the lease since the last confirmation in epoch %d", when, le, p.State().LeaderEpoch)
		}
	}
	if got := p.LogEndOffset(); got != end {
		t.Fatalf("%s: refused produces appended: log end %d, was %d", when, got, end)
	}
	if p.LeaseErr() == nil {
		t.Fatalf("%s: LeaseErr() = nil while produce is refused", when)
	}
}

// mustRead checks that the partition still serves reads as its leader:
// consumers up to the HW, and a follower's fetch.
func mustRead(t *testing.T, p *Partition, when string) {
	t.Helper()
	if err := p.NotLeader(); err != nil {
		t.Fatalf("%s: NotLeader() = %v, reads need the leader", when, err)
	}
	c, err := p.NewCursor(0)
	if err != nil {
		t.Fatalf("%s: consumer cursor: %v", when, err)
	}
	defer c.Close()
	n, err := c.Read(1<<20, 1<<20, func(logstore.Frame, int32) {})
	if err != nil || int64(n) != p.HighWatermark() || n == 0 {
		t.Fatalf("%s: read %d records (%v), want the HW's %d", when, n, err, p.HighWatermark())
	}
	rc, err := p.NewReplicaCursor(0)
	if err != nil {
		t.Fatalf("%s: follower cursor: %v", when, err)
	}
	defer rc.Close()
	if _, _, n, err := rc.ReadFrames(nil, 1<<20); err != nil || n == 0 {
		t.Fatalf("%s: follower fetch read %d frames (%v)", when, n, err)
	}
	if err := p.FollowerFetched(2, p.State().LeaderEpoch, 0); err != nil {
		t.Fatalf("%s: follower position report: %v", when, err)
	}
}

// TestLeaderLeaseFencesWithoutConfirmation: a leader whose replicator stops
// confirming it refuses produce of every acks once the lease has passed,
// and not a moment before; a confirmation in its epoch lets it accept
// again, one from another epoch does not; reads go on throughout.
func TestLeaderLeaseFencesWithoutConfirmation(t *testing.T) {
	const lease = 3 * time.Second
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeasedLeader(t, clk, lease)
	mustAccept(t, p, "just elected")
	mustRead(t, p, "just elected")

	// No confirmation since the ApplyPartitionState that made it leader.
	clk.advance(lease)
	mustAccept(t, p, "at the end of the lease")
	clk.advance(time.Millisecond)
	mustRefuse(t, p, "just past the lease")
	mustRead(t, p, "past the lease")
	clk.advance(time.Hour)
	mustRefuse(t, p, "an hour past the lease")
	mustRead(t, p, "an hour past the lease")

	// Confirmations of another epoch, or stamped before the last one,
	// change nothing.
	for _, epoch := range []int32{0, 2} {
		if p.ConfirmLeadership(epoch, clk.now()) {
			t.Fatalf("ConfirmLeadership(epoch %d) applied in epoch 1", epoch)
		}
	}
	mustRefuse(t, p, "after confirmations of other epochs")

	// The replicator is back: the next confirmation renews the lease.
	asked := clk.now()
	clk.advance(100 * time.Millisecond) // the answer's round trip
	if !p.ConfirmLeadership(1, asked) {
		t.Fatal("ConfirmLeadership(epoch 1) refused in epoch 1")
	}
	if err := p.LeaseErr(); err != nil {
		t.Fatalf("LeaseErr() after a confirmation = %v", err)
	}
	mustAccept(t, p, "after a confirmation")
	mustRead(t, p, "after a confirmation")
	// The lease runs from when the replicator was asked, not answered.
	clk.advance(lease - 100*time.Millisecond)
	mustAccept(t, p, "a lease after the question")
	if p.ConfirmLeadership(1, asked.Add(-time.Second)) != true {
		t.Fatal("an older confirmation in the current epoch should apply (and change nothing)")
	}
	clk.advance(time.Millisecond)
	mustRefuse(t, p, "a lease after the question, an older stamp later")

	// An applied state naming this broker leader renews it too: a new
	// epoch, and the same state applied again (a restarted replicator
	// applies every state).
	epoch2 := State{Role: RoleLeader, LeaderEpoch: 2, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}
	must(t, p.ApplyState(epoch2))
	mustAccept(t, p, "new epoch applied")
	clk.advance(lease + time.Millisecond)
	mustRefuse(t, p, "a lease after the new epoch")
	must(t, p.ApplyState(epoch2))
	mustAccept(t, p, "state applied again")

	// Demoted: NotLeader, not a lease error, and nothing to confirm.
	must(t, p.ApplyState(State{Role: RoleFollower, LeaderEpoch: 3, LeaderID: 2, Replicas: []int32{1, 2, 3}, ISR: []int32{2}}))
	if _, err := p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("v")}}, stratav1.Acks_ACKS_LEADER); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("produce on a follower: %v, want ErrNotLeader", err)
	}
	if p.LeaseErr() != nil || p.ConfirmLeadership(3, clk.now()) {
		t.Fatal("a follower has a lease")
	}
}

// TestNoLeaseNeverFences: without a lease (a single node) leadership needs
// no confirmation.
func TestNoLeaseNeverFences(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeasedLeader(t, clk, 0)
	clk.advance(24 * time.Hour)
	mustAccept(t, p, "a day without confirmation")
}

// TestDenyLeadership: a denial for another epoch than the broker's (a newer
// leadership applied meanwhile) changes nothing; one for its epoch refuses
// produce at once, well within the lease, until a confirmation or a new
// state; reads go on.
func TestDenyLeadership(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	p := newLeasedLeader(t, clk, time.Hour)
	mustAccept(t, p, "just elected")
	if p.DenyLeadership(0) || p.DenyLeadership(2) {
		t.Fatal("a denial of another epoch applied in epoch 1")
	}
	mustAccept(t, p, "after denials of other epochs")
	if !p.DenyLeadership(1) {
		t.Fatal("a denial of epoch 1 did not apply in epoch 1")
	}
	end := p.LogEndOffset()
	for i, err := range produceAll(p) {
		var le *LeaseExpiredError
		if !errors.As(err, &le) || !le.Revoked || !errors.Is(err, ErrLeaseExpired) {
			t.Fatalf("produce with %s after a denial: %v, want a revoked lease", allAcks[i], err)
		}
	}
	if p.LogEndOffset() != end {
		t.Fatal("refused produces appended")
	}
	mustRead(t, p, "after a denial")
	if !p.ConfirmLeadership(1, clk.now()) {
		t.Fatal("confirmation refused")
	}
	mustAccept(t, p, "confirmed after a denial")
	p.DenyLeadership(1)
	must(t, p.ApplyState(State{Role: RoleLeader, LeaderEpoch: 2, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}))
	mustAccept(t, p, "a new epoch after a denial")
}
