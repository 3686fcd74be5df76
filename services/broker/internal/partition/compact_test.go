package partition

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// readAll reads p's records below its high watermark: offset -> value.
func readAll(t *testing.T, p *Partition) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	c, err := p.NewCursor(p.LogStartOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for {
		n, err := c.Read(1000, 1<<20, func(f logstore.Frame, _ int32) { out[f.Offset] = string(f.Payload) })
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}

// TestFollowerOfCompactedLeader: a follower that starts empty copies a
// compacted leader's log, gaps included, to the same records at the same
// offsets, when the topic compacts; a follower of a topic that does not
// compact refuses the gap (a gap there is a bug).
func TestFollowerOfCompactedLeader(t *testing.T) {
	open := func() logstore.Options { return logstore.Options{MaxSegmentBytes: 1024} }
	ll, err := logstore.Open(t.TempDir(), open())
	if err != nil {
		t.Fatal(err)
	}
	leader := New(ll, Options{Topic: "t", MaxRecordBytes: 512, MinInsyncReplicas: 1, Compacted: true,
		State: State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1}, ISR: []int32{1}}})
	t.Cleanup(func() { leader.Close() })
	for r := range 20 {
		var recs []*stratav1.Record
		for k := range 5 {
			recs = append(recs, &stratav1.Record{Key: []byte(fmt.Sprint("k", k)), Value: []byte(fmt.Sprint("round", r))})
		}
		if _, err := leader.Produce(context.Background(), recs, stratav1.Acks_ACKS_LEADER); err != nil {
			t.Fatal(err)
		}
	}
	st, err := leader.Compact(context.Background(), time.Hour)
	if err != nil || st.RecordsRemoved == 0 {
		t.Fatalf("compact: %+v %v", st, err)
	}
	want := readAll(t, leader)

	follow := func(compacted bool) (*Partition, error) {
		fl, err := logstore.Open(t.TempDir(), open())
		if err != nil {
			t.Fatal(err)
		}
		f := New(fl, Options{Topic: "t", MaxRecordBytes: 512, MinInsyncReplicas: 1, Compacted: compacted,
			State: State{Role: RoleFollower, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2}, ISR: []int32{1}}})
		t.Cleanup(func() { f.Close() })
		for f.LogEndOffset() < leader.LogEndOffset() {
			c, err := leader.NewReplicaCursor(f.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			frames, epoch, _, err := c.ReadFrames(nil, 300)
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.AppendReplicated(1, epoch, frames, leader.HighWatermark()); err != nil {
				return f, err
			}
		}
		return f, nil
	}
	f, err := follow(true)
	if err != nil {
		t.Fatalf("follower of a compacted topic: %v", err)
	}
	got := readAll(t, f)
	if len(got) != len(want) || len(got) >= 100 {
		t.Fatalf("follower holds %d records, leader %d (of 100 produced)", len(got), len(want))
	}
	for off, v := range want {
		if got[off] != v {
			t.Fatalf("offset %d: follower %q, leader %q", off, got[off], v)
		}
	}
	if _, err := follow(false); err == nil {
		t.Fatal("a follower of a topic that does not compact took a gapped batch")
	}
}
