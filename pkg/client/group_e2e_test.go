package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// End-to-end tests of GroupConsumer against the real broker (see
// broker_e2e_test.go): its coordinator, its __consumer_offsets, its logs.

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // a deadline-bounded poll: the helper the style allows
	}
}

// testMember is a GroupConsumer polled by its own goroutine, recording
// every record and callback.
type testMember struct {
	tb   testing.TB
	name string
	gc   *GroupConsumer

	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	seen     map[TopicPartition][]int64 // offsets Poll returned, in order
	assigned [][]TopicPartition         // OnAssigned calls
	revoked  [][]TopicPartition         // OnRevoked calls
	pollErr  error
}

func startMember(tb testing.TB, cl *Client, name string, o GroupConsumerOptions) *testMember {
	tb.Helper()
	m := &testMember{tb: tb, name: name, seen: map[TopicPartition][]int64{}, done: make(chan struct{})}
	o.OnAssigned = func(_ context.Context, tps []TopicPartition) {
		m.mu.Lock()
		m.assigned = append(m.assigned, tps)
		m.mu.Unlock()
	}
	o.OnRevoked = func(_ context.Context, tps []TopicPartition) {
		m.mu.Lock()
		m.revoked = append(m.revoked, tps)
		m.mu.Unlock()
	}
	if o.RetryBackoff == 0 {
		o.RetryBackoff, o.RetryBackoffMax = 10*time.Millisecond, 200*time.Millisecond
	}
	gc, err := cl.NewGroupConsumer(o)
	if err != nil {
		tb.Fatal(err)
	}
	m.gc = gc
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			recs, err := gc.Poll(ctx)
			if err != nil {
				if ctx.Err() == nil {
					m.mu.Lock()
					m.pollErr = err
					m.mu.Unlock()
				}
				if ctx.Err() != nil || errors.Is(err, ErrClosed) || errors.Is(err, ErrFenced) {
					return
				}
				continue
			}
			m.mu.Lock()
			for _, r := range recs {
				tp := TopicPartition{r.Topic, r.Partition}
				m.seen[tp] = append(m.seen[tp], r.Offset)
			}
			m.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { m.stopPolling(); m.closeNow() })
	return m
}

// stopPolling ends the member's Poll loop (the member stays in the group).
func (m *testMember) stopPolling() {
	m.cancel()
	<-m.done
}

// close stops polling and closes the consumer gracefully.
func (m *testMember) close() {
	m.tb.Helper()
	m.stopPolling()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.gc.Close(ctx); err != nil {
		m.tb.Fatalf("%s: close: %v", m.name, err)
	}
}

func (m *testMember) closeNow() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = m.gc.Close(ctx) // cleanup after the test's own checks: nothing left to assert
}

func (m *testMember) owned() map[TopicPartition]bool {
	out := map[TopicPartition]bool{}
	for _, tp := range m.gc.Assignment() {
		out[tp] = true
	}
	return out
}

func (m *testMember) callbacks() (assigned, revoked [][]TopicPartition) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.assigned), slices.Clone(m.revoked)
}

func (m *testMember) err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pollErr
}

// seenOffsets is every offset the members returned, per partition, with
// how many times.
func seenOffsets(ms ...*testMember) map[TopicPartition]map[int64]int {
	out := map[TopicPartition]map[int64]int{}
	for _, m := range ms {
		m.mu.Lock()
		for tp, offs := range m.seen {
			if out[tp] == nil {
				out[tp] = map[int64]int{}
			}
			for _, o := range offs {
				out[tp][o]++
			}
		}
		m.mu.Unlock()
	}
	return out
}

// produceSpread produces n records to every partition of topic and
// raises ends to each partition's end offset.
func produceSpread(tb testing.TB, ctx context.Context, p *Producer, topic string, partitions int32, n int, ends map[int32]int64) {
	tb.Helper()
	if err := produceSpreadErr(ctx, p, topic, partitions, n, ends); err != nil {
		tb.Fatal(err)
	}
}

// produceSpreadErr is produceSpread for goroutines other than the test's.
func produceSpreadErr(ctx context.Context, p *Producer, topic string, partitions int32, n int, ends map[int32]int64) error {
	var rs []*Result
	for i := range n {
		for part := range partitions {
			rs = append(rs, p.Produce(ctx, &Record{Topic: topic, Partition: part, ExplicitPartition: true, Value: fmt.Appendf(nil, "%d-%d", part, i)}))
		}
	}
	if err := p.Flush(ctx); err != nil {
		return err
	}
	for _, r := range rs {
		md, err := r.Wait(ctx)
		if err != nil {
			return err
		}
		ends[md.Partition] = max(ends[md.Partition], md.Offset+1)
	}
	return nil
}

// allConsumed reports whether every offset below each partition's end
// was returned by some member, and counts the records returned more than
// once.
func allConsumed(topic string, ends map[int32]int64, ms ...*testMember) (done bool, dups int) {
	seen := seenOffsets(ms...)
	done = true
	for part, end := range ends {
		got := seen[TopicPartition{topic, part}]
		for o := int64(0); o < end; o++ {
			switch n := got[o]; {
			case n == 0:
				done = false
			case n > 1:
				dups += n - 1
			}
		}
	}
	return done, dups
}

// disjointCover reports whether the members own every partition of topic
// between them, each exactly once, with the counts given (in any order).
func disjointCover(topic string, partitions int32, counts []int, ms ...*testMember) bool {
	all := map[TopicPartition]int{}
	var got []int
	for _, m := range ms {
		o := m.owned()
		got = append(got, len(o))
		for tp := range o {
			all[tp]++
		}
	}
	if len(all) != int(partitions) {
		return false
	}
	for p := range partitions {
		if all[TopicPartition{topic, p}] != 1 {
			return false
		}
	}
	slices.Sort(got)
	want := slices.Clone(counts)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func groupTestSetup(tb testing.TB, topic string, partitions int32) (*Client, *Producer, context.Context) {
	tb.Helper()
	b := startRealBroker(tb)
	cl := dialTest(tb, b.addr)
	ctx := testCtx(tb)
	if _, err := cl.CreateTopic(ctx, topic, &TopicConfig{Partitions: partitions, ReplicationFactor: 1}); err != nil {
		tb.Fatal(err)
	}
	return cl, newTestProducer(tb, cl, ProducerOptions{Linger: time.Millisecond}), ctx
}

// TestE2EGroupRebalancesIncrementally: two members share four partitions
// two and two; a third joins and takes what it needs from them (the
// group ends 2, 1, 1), and only those partitions move: neither old member is told to give up, or given again, a
// partition it keeps, and the partitions it keeps are read on without
// going back (each of their offsets returned once). Every record
// produced before, during and after is returned, none twice (each
// revocation commits what was returned before the move).
func TestE2EGroupRebalancesIncrementally(t *testing.T) {
	const topic, parts = "grp-inc", int32(4)
	cl, p, ctx := groupTestSetup(t, topic, parts)
	ends := map[int32]int64{}
	produceSpread(t, ctx, p, topic, parts, 50, ends)

	o := GroupConsumerOptions{Group: "inc", Topics: []string{topic}, AutoCommitInterval: 50 * time.Millisecond}
	a := startMember(t, cl, "a", o)
	b := startMember(t, cl, "b", o)
	waitFor(t, 20*time.Second, "a and b to own two partitions each", func() bool { return disjointCover(topic, parts, []int{2, 2}, a, b) })
	produceSpread(t, ctx, p, topic, parts, 50, ends)
	waitFor(t, 20*time.Second, "every record consumed", func() bool { done, _ := allConsumed(topic, ends, a, b); return done })

	aBefore, bBefore := a.owned(), b.owned()
	aAssigned, aRevoked := a.callbacks()
	bAssigned, bRevoked := b.callbacks()

	// Records keep arriving while c joins.
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for range 20 {
			if err := produceSpreadErr(ctx, p, topic, parts, 10, ends); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	c := startMember(t, cl, "c", o)
	waitFor(t, 20*time.Second, "a, b and c to own 2, 1 and 1 partitions", func() bool { return disjointCover(topic, parts, []int{1, 1, 2}, a, b, c) })
	<-prodDone
	produceSpread(t, ctx, p, topic, parts, 50, ends)
	waitFor(t, 20*time.Second, "every record consumed", func() bool { done, _ := allConsumed(topic, ends, a, b, c); return done })
	if _, dups := allConsumed(topic, ends, a, b, c); dups != 0 {
		t.Errorf("%d records returned twice", dups)
	}

	var allMoved []TopicPartition
	for _, m := range []struct {
		m                 *testMember
		before            map[TopicPartition]bool
		assigned, revoked [][]TopicPartition
	}{{a, aBefore, aAssigned, aRevoked}, {b, bBefore, bAssigned, bRevoked}} {
		assigned, revoked := m.m.callbacks()
		now := m.m.owned()
		var moved []TopicPartition
		for tp := range m.before {
			if !now[tp] {
				moved = append(moved, tp)
			}
		}
		sortTPs(moved)
		allMoved = append(allMoved, moved...)
		newRevoked := slices.Concat(revoked[len(m.revoked):]...)
		sortTPs(newRevoked)
		if !slices.Equal(newRevoked, moved) {
			t.Errorf("%s: revoked %v during the rebalance; only %v moved", m.m.name, newRevoked, moved)
		}
		if len(assigned) != len(m.assigned) {
			t.Errorf("%s: given %v during the rebalance; it only gave partitions up", m.m.name, assigned[len(m.assigned):])
		}
		// The partitions it kept: read on, never from an earlier offset.
		m.m.mu.Lock()
		for tp := range now {
			offs := m.m.seen[tp]
			for i := 1; i < len(offs); i++ {
				if offs[i] != offs[i-1]+1 {
					t.Errorf("%s: kept %s but read offset %d after %d", m.m.name, tp, offs[i], offs[i-1])
					break
				}
			}
		}
		m.m.mu.Unlock()
	}
	cAssigned, _ := c.callbacks()
	got := slices.Concat(cAssigned...)
	sortTPs(got)
	sortTPs(allMoved)
	if len(got) == 0 || !slices.Equal(got, allMoved) {
		t.Errorf("c was given %v; the partitions that moved are %v", got, allMoved)
	}
	for _, m := range []*testMember{a, b, c} {
		if err := m.err(); err != nil {
			t.Errorf("%s: Poll: %v", m.name, err)
		}
	}
	d, err := cl.DescribeGroup(ctx, "inc")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GetMembers()) != 3 || d.GetState() != "stable" {
		t.Errorf("describe: %d members, state %q; want 3, stable", len(d.GetMembers()), d.GetState())
	}
}

// TestE2EGroupMemberLeavesNothingSkipped: while records are produced,
// one of two members closes; the other takes its partitions from the
// offsets it committed on the way out. Every record produced is returned,
// and (the close committed everything it returned) none twice.
func TestE2EGroupMemberLeavesNothingSkipped(t *testing.T) {
	const topic, parts = "grp-leave", int32(4)
	cl, p, ctx := groupTestSetup(t, topic, parts)
	ends := map[int32]int64{}
	o := GroupConsumerOptions{Group: "leave", Topics: []string{topic}, AutoCommitInterval: 20 * time.Millisecond, MaxPollRecords: 7}
	a := startMember(t, cl, "a", o)
	b := startMember(t, cl, "b", o)
	waitFor(t, 20*time.Second, "a and b to own two partitions each", func() bool { return disjointCover(topic, parts, []int{2, 2}, a, b) })

	var mu sync.Mutex
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for range 30 {
			local := map[int32]int64{}
			if err := produceSpreadErr(ctx, p, topic, parts, 25, local); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for k, v := range local {
				ends[k] = max(ends[k], v)
			}
			mu.Unlock()
		}
	}()
	waitFor(t, 20*time.Second, "a to consume something", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.seen) > 0
	})
	a.close() // mid-stream
	waitFor(t, 20*time.Second, "b to own every partition", func() bool { return disjointCover(topic, parts, []int{4}, b) })
	<-prodDone
	mu.Lock()
	final := maps.Clone(ends)
	mu.Unlock()
	var total int64
	for _, e := range final {
		total += e
	}
	if total != int64(parts)*30*25 {
		t.Fatalf("produced %d records, want %d", total, parts*30*25)
	}
	waitFor(t, 30*time.Second, "every record consumed", func() bool { done, _ := allConsumed(topic, final, a, b); return done })
	if _, dups := allConsumed(topic, final, a, b); dups != 0 {
		t.Errorf("%d records returned twice after a graceful close", dups)
	}
	if err := b.err(); err != nil {
		t.Errorf("b: Poll: %v", err)
	}
	d, err := cl.DescribeGroup(ctx, "leave")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.GetMembers()) != 1 {
		t.Errorf("describe: %d members after a left, want 1", len(d.GetMembers()))
	}
}

// TestE2EGroupCrashResumesFromCommitted: a member that committed part of
// what it read and then died (its client closed without Close: no
// commit, no leave) has its partitions taken by the other member from the
// last committed offset: the uncommitted records are returned again,
// nothing is skipped.
func TestE2EGroupCrashResumesFromCommitted(t *testing.T) {
	const topic, parts = "grp-crash", int32(2)
	cl, p, ctx := groupTestSetup(t, topic, parts)
	ends := map[int32]int64{}
	produceSpread(t, ctx, p, topic, parts, 100, ends)

	crashCl := dialTest(t, cl.cfg.Brokers...)
	gc, err := crashCl.NewGroupConsumer(GroupConsumerOptions{Group: "crash", Topics: []string{topic}, DisableAutoCommit: true, MaxPollRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	read := 0
	for read < 60 {
		recs, err := gc.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read += len(recs)
		if read >= 30 && read-len(recs) < 30 {
			if err := gc.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	committed, err := cl.FetchGroupOffsets(ctx, "crash", topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) == 0 {
		t.Fatal("nothing committed")
	}
	from := map[int32]int64{}
	for _, o := range committed {
		from[o.GetPartition()] = o.GetOffset()
	}
	if err := crashCl.Close(); err != nil { // the crash: no commit, no leave
		t.Fatal(err)
	}

	b := startMember(t, cl, "b", GroupConsumerOptions{Group: "crash", Topics: []string{topic}})
	waitFor(t, 20*time.Second, "b to consume every record", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		for part, end := range ends {
			offs := b.seen[TopicPartition{topic, part}]
			if len(offs) == 0 || offs[len(offs)-1] != end-1 {
				return false
			}
		}
		return true
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	for part := range parts {
		offs := b.seen[TopicPartition{topic, part}]
		if offs[0] != from[part] {
			t.Errorf("partition %d: b started at %d, the last commit was %d", part, offs[0], from[part])
		}
		for i := 1; i < len(offs); i++ {
			if offs[i] != offs[i-1]+1 {
				t.Fatalf("partition %d: offset %d after %d", part, offs[i], offs[i-1])
			}
		}
	}
}

// TestE2EGroupStaticMemberRestart: a static member that closes and comes
// back with its instance id within the session timeout gets its own
// partitions back with no rebalance: the group epoch stays, the other
// member is told nothing, and the restarted member continues from its
// committed offsets. A second live member with the same instance id
// fences the first.
func TestE2EGroupStaticMemberRestart(t *testing.T) {
	const topic, parts = "grp-static", int32(4)
	cl, p, ctx := groupTestSetup(t, topic, parts)
	ends := map[int32]int64{}
	produceSpread(t, ctx, p, topic, parts, 20, ends)

	o := GroupConsumerOptions{Group: "static", Topics: []string{topic}, SessionTimeout: 30 * time.Second, AutoCommitInterval: 50 * time.Millisecond}
	oa, ob := o, o
	oa.InstanceID, ob.InstanceID = "a", "b"
	a := startMember(t, cl, "a", oa)
	b := startMember(t, cl, "b", ob)
	waitFor(t, 20*time.Second, "a and b to own two partitions each", func() bool { return disjointCover(topic, parts, []int{2, 2}, a, b) })
	waitFor(t, 20*time.Second, "every record consumed", func() bool { done, _ := allConsumed(topic, ends, a, b); return done })
	before, err := cl.DescribeGroup(ctx, "static")
	if err != nil {
		t.Fatal(err)
	}
	aOwned := a.owned()
	bAssigned, bRevoked := b.callbacks()

	a.close() // a static member's close does not leave
	produceSpread(t, ctx, p, topic, parts, 20, ends)
	a2 := startMember(t, cl, "a2", oa)
	waitFor(t, 20*time.Second, "a2 to own a's partitions", func() bool { return maps.Equal(a2.owned(), aOwned) })
	waitFor(t, 20*time.Second, "every record consumed", func() bool { done, _ := allConsumed(topic, ends, a, a2, b); return done })
	if _, dups := allConsumed(topic, ends, a, a2, b); dups != 0 {
		t.Errorf("%d records returned twice across the restart", dups)
	}
	after, err := cl.DescribeGroup(ctx, "static")
	if err != nil {
		t.Fatal(err)
	}
	if after.GetGroupEpoch() != before.GetGroupEpoch() {
		t.Errorf("group epoch %d -> %d: the restart rebalanced", before.GetGroupEpoch(), after.GetGroupEpoch())
	}
	if got, _ := b.callbacks(); len(got) != len(bAssigned) {
		t.Errorf("b was given partitions during a's restart: %v", got[len(bAssigned):])
	}
	if _, got := b.callbacks(); len(got) != len(bRevoked) {
		t.Errorf("b gave partitions up during a's restart: %v", got[len(bRevoked):])
	}

	// Another process with instance id "a" while a2 lives: a2 is fenced.
	a3 := startMember(t, cl, "a3", oa)
	waitFor(t, 20*time.Second, "a2 to be fenced", func() bool { return errors.Is(a2.err(), ErrFenced) })
	waitFor(t, 20*time.Second, "a3 to own a's partitions", func() bool { return maps.Equal(a3.owned(), aOwned) })
}

// TestE2EGroupSurvivesBrokerRestart: the broker (the coordinator, and the
// leader of every partition) restarts under two members; they join its
// new incarnation again, which rebuilds the group's offsets from
// __consumer_offsets, and every record produced before and after is
// returned.
func TestE2EGroupSurvivesBrokerRestart(t *testing.T) {
	const topic, parts = "grp-restart", int32(4)
	b := startRealBroker(t)
	cl := dialTest(t, b.addr)
	ctx := testCtx(t)
	if _, err := cl.CreateTopic(ctx, topic, &TopicConfig{Partitions: parts, ReplicationFactor: 1, Fsync: "always"}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, cl, ProducerOptions{Linger: time.Millisecond})
	ends := map[int32]int64{}
	produceSpread(t, ctx, p, topic, parts, 50, ends)
	o := GroupConsumerOptions{Group: "restart", Topics: []string{topic}, AutoCommitInterval: 20 * time.Millisecond}
	a := startMember(t, cl, "a", o)
	m2 := startMember(t, cl, "b", o)
	waitFor(t, 20*time.Second, "every record consumed", func() bool { done, _ := allConsumed(topic, ends, a, m2); return done })

	b.restart()
	produceSpread(t, ctx, p, topic, parts, 50, ends)
	waitFor(t, 30*time.Second, "every record consumed after the restart", func() bool { done, _ := allConsumed(topic, ends, a, m2); return done })
	waitFor(t, 30*time.Second, "a and b to own two partitions each again", func() bool { return disjointCover(topic, parts, []int{2, 2}, a, m2) })
	// Only members that joined the restarted coordinator are in its group.
	waitFor(t, 30*time.Second, "both members in the restarted coordinator's group", func() bool {
		d, err := cl.DescribeGroup(ctx, "restart")
		return err == nil && len(d.GetMembers()) == 2 && d.GetState() == "stable"
	})
	committed, err := cl.FetchGroupOffsets(ctx, "restart", topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) != int(parts) {
		t.Fatalf("committed offsets after the restart: %v", committed)
	}
}
