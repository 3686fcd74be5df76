package partition

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func recsN(n int, prefix string) []*stratav1.Record {
	out := make([]*stratav1.Record, n)
	for i := range out {
		out[i] = &stratav1.Record{Value: []byte(fmt.Sprint(prefix, i))}
	}
	return out
}

func openIdem(t *testing.T, dir string, clk *clock, role Role) *Partition {
	t.Helper()
	l, err := logstore.Open(dir, logstore.Options{MaxSegmentBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	return New(l, Options{Topic: "t", MaxRecordBytes: 1 << 10, MinInsyncReplicas: 1, Now: clk.now,
		State: State{Role: role, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2}, ISR: []int32{1}}})
}

// TestProducerDedupeWindow drives one leader through the dedupe rules in
// order: each case's batch is decided against the state the cases before
// it left.
func TestProducerDedupeWindow(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	p := openIdem(t, t.TempDir(), clk, RoleLeader)
	t.Cleanup(func() { p.Close() })
	ctx := context.Background()
	plain := func() {
		t.Helper()
		if _, err := p.Produce(ctx, recsN(1, "plain"), stratav1.Acks_ACKS_LEADER); err != nil {
			t.Fatal(err)
		}
	}
	type want struct {
		base int64
		dup  bool
		err  error
	}
	produce := func(id int64, epoch int32, seq int64, n int) (ProduceResult, error) {
		return p.ProduceBatch(ctx, recsN(n, "r"), stratav1.Acks_ACKS_LEADER, ProducerBatch{ID: id, Epoch: epoch, Sequence: seq})
	}
	for _, tc := range []struct {
		name      string
		before    func()
		id        int64
		epoch     int32
		seq       int64
		n         int
		want      want
		wantFault FaultReason
	}{
		{name: "unknown producer starts past 0", id: 7, seq: 3, n: 1, wantFault: FaultOutOfOrderSequence},
		{name: "first batch", id: 7, seq: 0, n: 3, want: want{base: 0}},
		{name: "duplicate of the first", id: 7, seq: 0, n: 3, want: want{base: 0, dup: true}},
		{name: "duplicate of its tail", id: 7, seq: 1, n: 2, want: want{base: 1, dup: true}},
		{name: "gap", id: 7, seq: 4, n: 1, wantFault: FaultOutOfOrderSequence},
		{name: "next batch", before: plain, id: 7, seq: 3, n: 2, want: want{base: 4}},
		{name: "batches 3-5", before: plain, id: 7, seq: 5, n: 1, want: want{base: 7}},
		{name: "batch 4", before: plain, id: 7, seq: 6, n: 1, want: want{base: 9}},
		{name: "batch 5", before: plain, id: 7, seq: 7, n: 1, want: want{base: 11}},
		{name: "first still in the window of 5", id: 7, seq: 0, n: 3, want: want{base: 0, dup: true}},
		{name: "batch 6 pushes the first out", before: plain, id: 7, seq: 8, n: 1, want: want{base: 13}},
		{name: "first out of the window", id: 7, seq: 0, n: 3, wantFault: FaultOutOfOrderSequence},
		{name: "second still in it", id: 7, seq: 3, n: 2, want: want{base: 4, dup: true}},
		{name: "another producer is separate", id: 8, seq: 0, n: 1, want: want{base: 14}},
		{name: "new epoch starts at 0", id: 7, epoch: 1, seq: 0, n: 1, want: want{base: 15}},
		{name: "old epoch fenced", id: 7, epoch: 0, seq: 9, n: 1, wantFault: FaultProducerFenced},
		{name: "new epoch not at 0", id: 8, epoch: 2, seq: 5, n: 1, wantFault: FaultOutOfOrderSequence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			end := p.LogEndOffset()
			res, err := produce(tc.id, tc.epoch, tc.seq, tc.n)
			if tc.wantFault != 0 {
				var fe *ProducerFaultError
				if !errors.As(err, &fe) || fe.Reason != tc.wantFault {
					t.Fatalf("err = %v, want fault %d", err, tc.wantFault)
				}
				if p.LogEndOffset() != end {
					t.Fatalf("refused batch appended: log end %d -> %d", end, p.LogEndOffset())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Base != tc.want.base || res.Last != tc.want.base+int64(tc.n)-1 || res.Duplicate != tc.want.dup {
				t.Fatalf("result %+v, want base %d dup %v", res, tc.want.base, tc.want.dup)
			}
			if tc.want.dup && p.LogEndOffset() != end {
				t.Fatalf("duplicate appended: log end %d -> %d", end, p.LogEndOffset())
			}
		})
	}
}

// TestProducerStateRebuilt: a follower fed the leader's frames, a
// partition reopened from its snapshot plus a scan, and one reopened with
// no snapshot at all decide every retried batch as the leader does; a
// truncation forgets the batches it removed; idle ids expire.
func TestProducerStateRebuilt(t *testing.T) {
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	ctx := context.Background()
	leaderDir, followerDir := t.TempDir(), t.TempDir()
	leader := openIdem(t, leaderDir, clk, RoleLeader)
	follower := openIdem(t, followerDir, clk, RoleFollower)
	// Three producers, interleaved, 40 batches each, with a plain record
	// between rounds; small segments so the log rolls and snapshots.
	for round := range 40 {
		for id := int64(1); id <= 3; id++ {
			if _, err := leader.ProduceBatch(ctx, recsN(2, "x"), stratav1.Acks_ACKS_LEADER, ProducerBatch{ID: id, Sequence: int64(round) * 2}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := leader.Produce(ctx, recsN(1, "plain"), stratav1.Acks_ACKS_LEADER); err != nil {
			t.Fatal(err)
		}
	}
	for follower.LogEndOffset() < leader.LogEndOffset() {
		c, err := leader.NewReplicaCursor(follower.LogEndOffset())
		if err != nil {
			t.Fatal(err)
		}
		frames, epoch, _, err := c.ReadFrames(nil, 100) // small reads: batches split across appends
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := follower.AppendReplicated(1, epoch, frames, 0); err != nil {
			t.Fatal(err)
		}
	}
	offs, err := listSnapshots(leaderDir)
	if err != nil || len(offs) == 0 {
		t.Fatalf("no snapshot after %d rolls: %v", leader.log.(statser).Stats().Rolls, err)
	}
	decide := func(p *Partition) string {
		p.pmu.Lock()
		defer p.pmu.Unlock()
		out := ""
		for id := int64(1); id <= 3; id++ {
			for seq := int64(64); seq <= 82; seq += 2 {
				d, err := p.producers.check(ProducerBatch{ID: id, Sequence: seq}, 2)
				out += fmt.Sprintf("%d/%d:%+v/%v ", id, seq, d, err)
			}
		}
		return out
	}
	want := decide(leader)
	if got := decide(follower); got != want {
		t.Fatalf("follower decides\n%s\nleader\n%s", got, want)
	}
	if err := leader.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := openIdem(t, leaderDir, clk, RoleLeader)
	if got := decide(reopened); got != want {
		t.Fatalf("reopened from snapshot decides\n%s\nleader\n%s", got, want)
	}
	if err := reopened.Close(); err != nil {
		t.Fatal(err)
	}
	offs, _ = listSnapshots(leaderDir)
	for _, off := range offs {
		if err := os.Remove(filepath.Join(leaderDir, snapshotName(off))); err != nil {
			t.Fatal(err)
		}
	}
	scanned := openIdem(t, leaderDir, clk, RoleLeader)
	if got := decide(scanned); got != want {
		t.Fatalf("rebuilt by a full scan decides\n%s\nleader\n%s", got, want)
	}
	t.Cleanup(func() { scanned.Close() })

	// Truncating the follower before the last round forgets it: the last
	// batch of producer 1 is then the next one to append, not a duplicate.
	if _, err := follower.TruncateReplica(1, follower.LogEndOffset()-7, false); err != nil {
		t.Fatal(err)
	}
	follower.pmu.Lock()
	d, err := follower.producers.check(ProducerBatch{ID: 1, Sequence: 78}, 2)
	follower.pmu.Unlock()
	if err != nil || d.dup {
		t.Fatalf("after truncation: %+v, %v; want an append", d, err)
	}

	// Idle producer ids expire at the next snapshot.
	clk.advance(DefaultProducerIDExpiry + time.Hour)
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	expired := openIdem(t, followerDir, clk, RoleLeader)
	t.Cleanup(func() { expired.Close() })
	if n := expired.ProducerCount(); n != 0 {
		t.Fatalf("%d producers after the expiry, want 0", n)
	}
}

// TestSnapshotDecodeRefusesDamage: every truncation and every flipped byte
// of a snapshot is refused, never half-loaded.
func TestSnapshotDecodeRefusesDamage(t *testing.T) {
	tab := newProducerTable()
	tab.apply(1, 2, 0, 3, 10, 99)
	tab.apply(1, 2, 3, 2, 20, 100)
	tab.apply(5, 0, 0, 1, 30, 101)
	b := encodeSnapshot(tab, 42)
	got, off, err := decodeSnapshot(b)
	if err != nil || off != 42 || len(got.m) != 2 || got.m[1].n != 2 {
		t.Fatalf("round trip: %v, offset %d, %+v", err, off, got)
	}
	for i := range b {
		if _, _, err := decodeSnapshot(b[:i]); err == nil {
			t.Fatalf("truncated at %d: decoded", i)
		}
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, _, err := decodeSnapshot(c); err == nil {
			t.Fatalf("byte %d flipped: decoded", i)
		}
	}
}
