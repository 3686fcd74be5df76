package group

import (
	"errors"
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func set(tps ...TP) Set {
	s := Set{}
	for _, tp := range tps {
		s[tp] = struct{}{}
	}
	return s
}

func tp(p int32) TP { return TP{"t", p} }

func changedIDs(g *Group) []string {
	var ids []string
	for _, m := range g.TakeChanged() {
		ids = append(ids, m.ID)
	}
	return ids
}

// TestCooperativeTwoStepRevoke: a second member joining makes the first
// give up half its partitions before the second gets them; the first
// keeps (and keeps consuming) its other half throughout, and no partition
// is ever assigned to both.
func TestCooperativeTwoStepRevoke(t *testing.T) {
	parts := map[string]int32{"t": 4}
	g := New("g", 0)
	g.Join(&Member{ID: "m1", Topics: []string{"t"}}, parts)
	m1 := g.Member("m1")
	if !m1.Assigned.Equal(set(tp(0), tp(1), tp(2), tp(3))) || m1.Epoch != 1 {
		t.Fatalf("m1 alone: %v at epoch %d", m1.Assigned.Sorted(), m1.Epoch)
	}
	if err := g.Ack("m1", 1, 0, m1.Assigned); err != nil {
		t.Fatal(err)
	}
	changedIDs(g)

	g.Join(&Member{ID: "m2", Topics: []string{"t"}}, parts)
	m2 := g.Member("m2")
	if g.Epoch != 2 || g.State() != "reconciling" {
		t.Fatalf("after m2 joined: epoch %d state %s", g.Epoch, g.State())
	}
	// Step one: m1 is told to give up two partitions and keeps the other
	// two; m2 gets nothing yet: its partitions are still m1's.
	kept, given := g.Target("m1"), g.Target("m2")
	if len(kept) != 2 || len(given) != 2 {
		t.Fatalf("targets %v / %v", kept.Sorted(), given.Sorted())
	}
	if !m1.Assigned.Equal(kept) || m1.Epoch != 1 || len(m1.Pending) != 0 {
		t.Fatalf("m1 during revoke: assigned %v epoch %d pending %v", m1.Assigned.Sorted(), m1.Epoch, m1.Pending.Sorted())
	}
	if len(m2.Assigned) != 0 || !m2.Pending.Equal(given) || m2.Epoch != 2 {
		t.Fatalf("m2 during revoke: assigned %v pending %v epoch %d", m2.Assigned.Sorted(), m2.Pending.Sorted(), m2.Epoch)
	}
	// m1 may still commit what it is giving up (it commits before acking).
	for tp := range given {
		if err := g.CheckCommit("m1", 1, []TP{tp}); err != nil {
			t.Fatalf("m1 commit of %v while revoking: %v", tp, err)
		}
	}
	// A heartbeat that still owns everything changes nothing.
	if err := g.Ack("m1", 1, 0, set(tp(0), tp(1), tp(2), tp(3))); err != nil {
		t.Fatal(err)
	}
	if len(m2.Assigned) != 0 {
		t.Fatalf("m2 got %v before m1 gave them up", m2.Assigned.Sorted())
	}
	changedIDs(g)

	// Step two: m1 acknowledges; m2 gets the partitions and m1 advances.
	if err := g.Ack("m1", 1, 0, kept); err != nil {
		t.Fatal(err)
	}
	if !m2.Assigned.Equal(given) || len(m2.Pending) != 0 || m1.Epoch != 2 {
		t.Fatalf("after m1's ack: m2 %v pending %v, m1 epoch %d", m2.Assigned.Sorted(), m2.Pending.Sorted(), m1.Epoch)
	}
	if ids := changedIDs(g); len(ids) != 2 {
		t.Fatalf("changed after the ack: %v, want m1 (epoch) and m2 (partitions)", ids)
	}
	if err := g.Ack("m2", 2, 0, given); err != nil {
		t.Fatal(err)
	}
	if g.State() != "stable" {
		t.Fatalf("state %s after both acked", g.State())
	}
	// Fencing: m1 no longer owns what it gave up.
	for tp := range given {
		if err := g.CheckCommit("m1", 2, []TP{tp}); !errors.Is(err, ErrNotOwned) {
			t.Fatalf("m1 commit of given-up %v: %v, want ErrNotOwned", tp, err)
		}
	}
}

// TestLeaveFreesAtOnce: a member that leaves gives its partitions to the
// others in one step, and is a zombie from then on.
func TestLeaveFreesAtOnce(t *testing.T) {
	parts := map[string]int32{"t": 4}
	g := New("g", 10)
	for _, id := range []string{"m1", "m2"} {
		g.Join(&Member{ID: id, Topics: []string{"t"}}, parts)
	}
	for _, m := range g.Members() {
		if err := g.Ack(m.ID, m.Epoch, 0, m.Assigned); err != nil {
			t.Fatal(err)
		}
	}
	if g.State() != "stable" {
		t.Fatalf("state %s", g.State())
	}
	epoch := g.Epoch
	g.Leave("m2", parts)
	m1 := g.Member("m1")
	if len(m1.Assigned) != 4 || m1.Epoch != epoch+1 {
		t.Fatalf("after m2 left: m1 %v epoch %d", m1.Assigned.Sorted(), m1.Epoch)
	}
	if err := g.CheckCommit("m2", epoch, []TP{tp(0)}); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("zombie commit: %v", err)
	}
	if err := g.CheckCommit("m1", epoch-5, []TP{tp(0)}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale-epoch commit: %v", err)
	}
	if err := g.CheckCommit("", 0, []TP{tp(0)}); !errors.Is(err, ErrHasMembers) {
		t.Fatalf("member-less commit into a group with members: %v", err)
	}
}

// TestStaticMemberReturnsWithoutRebalance: a static member coming back
// with its instance id takes its old place (same partitions, same epoch)
// and the old member id is fenced.
func TestStaticMemberReturnsWithoutRebalance(t *testing.T) {
	parts := map[string]int32{"t": 6}
	g := New("g", 0)
	g.Assignor = stratav1.Assignor_ASSIGNOR_RANGE
	g.Join(&Member{ID: "a1", InstanceID: "a", Topics: []string{"t"}}, parts)
	g.Join(&Member{ID: "b1", InstanceID: "b", Topics: []string{"t"}}, parts)
	for _, m := range g.Members() {
		if err := g.Ack(m.ID, m.Epoch, 0, m.Assigned); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range g.Members() { // the ack may have advanced the first
		if err := g.Ack(m.ID, m.Epoch, 0, m.Assigned); err != nil {
			t.Fatal(err)
		}
	}
	before, epoch := g.Member("a1").Assigned.clone(), g.Epoch
	g.Member("a1").Connected = false
	g.Join(&Member{ID: "a2", InstanceID: "a", Topics: []string{"t"}}, parts)
	if g.Epoch != epoch {
		t.Fatalf("a static member's return bumped the epoch %d -> %d", epoch, g.Epoch)
	}
	if a2 := g.Member("a2"); !a2.Assigned.Equal(before) {
		t.Fatalf("a2 got %v, want a1's %v", a2.Assigned.Sorted(), before.Sorted())
	}
	if err := g.CheckCommit("a1", epoch, before.Sorted()); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("old static member id commit: %v", err)
	}
}

// TestTopicGrowsRebalances: more partitions in a subscribed topic bump the
// epoch and get assigned.
func TestTopicGrowsRebalances(t *testing.T) {
	g := New("g", 0)
	g.Join(&Member{ID: "m", Topics: []string{"t", "u"}}, map[string]int32{"t": 2})
	epoch := g.Epoch
	g.Rebalance(map[string]int32{"t": 2})
	if g.Epoch != epoch {
		t.Fatal("an unchanged rebalance bumped the epoch")
	}
	g.Rebalance(map[string]int32{"t": 2, "u": 3})
	if g.Epoch != epoch+1 || len(g.Member("m").Assigned) != 5 {
		t.Fatalf("after u appeared: epoch %d, %v", g.Epoch, g.Member("m").Assigned.Sorted())
	}
}

// TestStaleAckDoesNotReleaseRevoked: a member told to give up partitions
// it may have started consuming keeps them until an Ack of that very
// assignment; an Ack written before it applied the assignment (even one
// that lists nothing) releases nothing.
func TestStaleAckDoesNotReleaseRevoked(t *testing.T) {
	parts := map[string]int32{"t": 4}
	g := New("g", 0)
	g.Join(&Member{ID: "m1", Topics: []string{"t"}}, parts)
	m1 := g.Member("m1")
	m1.Sent = 1 // assignment 1 (all four) sent, not acked
	g.Join(&Member{ID: "m2", Topics: []string{"t"}}, parts)
	m1.Sent = 2 // assignment 2 (two of them) sent
	m2 := g.Member("m2")
	if len(m2.Assigned) != 0 {
		t.Fatalf("m2 got %v while m1 has not acked anything", m2.Assigned.Sorted())
	}
	if err := g.Ack("m1", m1.Epoch, 0, Set{}); err != nil {
		t.Fatal(err)
	}
	if len(m2.Assigned) != 0 {
		t.Fatalf("a stale ack released %v to m2", m2.Assigned.Sorted())
	}
	if err := g.Ack("m1", m1.Epoch, 2, m1.Assigned); err != nil {
		t.Fatal(err)
	}
	if len(m2.Assigned) != 2 {
		t.Fatalf("after m1 acked assignment 2, m2 has %v", m2.Assigned.Sorted())
	}
}

// TestStaleEpochAckIsHarmless: an Ack written before the member heard of
// its newest epoch (two advances in a row) is taken, not refused: refusing
// it used to end the session while leaving the member in the group.
func TestStaleEpochAckIsHarmless(t *testing.T) {
	parts := map[string]int32{"t": 4}
	g := New("g", 0)
	g.Join(&Member{ID: "m1", Topics: []string{"t"}}, parts)
	g.Join(&Member{ID: "m2", Topics: []string{"t"}}, parts)
	g.Leave("m2", parts)
	g.Join(&Member{ID: "m3", Topics: []string{"t"}}, parts)
	if err := g.Ack("m1", 0, 0, Set{}); err != nil {
		t.Fatalf("stale ack: %v", err)
	}
}
