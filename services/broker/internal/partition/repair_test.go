package partition

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-log/strata/pkg/logstore"
)

// flipRecord flips one payload byte of the record at offset off in the
// store file name (frame layout in pkg/logstore/frame.go: u32 length of
// what follows, u32 crc, u64 offset, i64 timestamp, payload).
func flipRecord(tb testing.TB, name string, off int64) {
	tb.Helper()
	const headerSize, lenSize = 24, 4
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	for pos := int64(0); pos+headerSize <= int64(len(b)); pos += lenSize + int64(binary.BigEndian.Uint32(b[pos:])) {
		if int64(binary.BigEndian.Uint64(b[pos+8:])) == off {
			b[pos+headerSize] ^= 0x10
			if err := os.WriteFile(name, b, 0o644); err != nil {
				tb.Fatal(err)
			}
			return
		}
	}
	tb.Fatalf("no record %d in %s", off, name)
}

// TestFollowerTruncatesBeforeCorruption: a partition whose log reports a
// corrupt record below its log end keeps serving what is intact while it
// leads, and truncates to just before the damage when it becomes a
// follower, so that its fetcher copies that range again from the leader
// (DESIGN.md §8).
func TestFollowerTruncatesBeforeCorruption(t *testing.T) {
	dir := t.TempDir()
	leader := State{Role: RoleLeader, LeaderEpoch: 1, LeaderID: 1, Replicas: []int32{1, 2}, ISR: []int32{1}}
	open := func(t *testing.T) *Partition {
		t.Helper()
		l, err := logstore.Open(dir, logstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return New(l, Options{Topic: "t", MaxRecordBytes: 1 << 20, MinInsyncReplicas: 1, State: leader})
	}
	p := open(t)
	produceN(t, p, 10)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	const damaged = 5
	flipRecord(t, filepath.Join(dir, "00000000000000000000.log"), damaged)
	p = open(t)
	t.Cleanup(func() { p.Close() })

	// A consumer's read finds the damage.
	cur, err := p.NewCursor(0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := cur.Read(100, 1<<20, func(logstore.Frame, int32) {})
	if err != nil || n != damaged {
		t.Fatalf("read from 0: %d records, %v; want the %d before the damage", n, err, damaged)
	}
	if _, err := cur.Read(100, 1<<20, func(logstore.Frame, int32) {}); !errors.Is(err, logstore.ErrCorrupt) {
		t.Fatalf("read at the damage: %v, want a corrupt record", err)
	}
	must(t, cur.Close())

	t.Run("a leader keeps its log and refuses only the damaged range", func(t *testing.T) {
		must(t, p.ApplyState(leader))
		if end := p.LogEndOffset(); end != 10 {
			t.Fatalf("log end %d, want 10", end)
		}
		var ce *logstore.CorruptError
		if err := p.Healthy(); !errors.As(err, &ce) || ce.Offset != damaged {
			t.Fatalf("Healthy() = %v, want the corrupt record at %d", err, damaged)
		}
		if err := p.Damage(); !errors.As(err, &ce) || ce.Offset != damaged {
			t.Fatalf("Damage() = %v, want the corrupt record at %d", err, damaged)
		}
		// Alone in its ISR it keeps leading: nobody could take over.
		if _, why, ok := p.ProposedResignation(); ok {
			t.Fatalf("a leader alone in its ISR proposes to resign (%v)", why)
		}
	})
	t.Run("a leader with another in-sync replica proposes to resign", func(t *testing.T) {
		withFollower := leader
		withFollower.ISR = []int32{1, 2}
		must(t, p.ApplyState(withFollower))
		epoch, why, ok := p.ProposedResignation()
		var ce *logstore.CorruptError
		if !ok || epoch != 1 || !errors.As(why, &ce) || ce.Offset != damaged {
			t.Fatalf("ProposedResignation() = %d, %v, %v; want epoch 1 for the corrupt record at %d", epoch, why, ok, damaged)
		}
	})
	t.Run("a follower truncates to before the damage", func(t *testing.T) {
		must(t, p.ApplyState(State{Role: RoleFollower, LeaderEpoch: 2, LeaderID: 2, LeaderAddr: "b2", Replicas: []int32{1, 2}, ISR: []int32{2}}))
		if end := p.LogEndOffset(); end != damaged {
			t.Fatalf("log end %d, want %d: the fetcher must copy the damaged range again", end, damaged)
		}
		if hw := p.HighWatermark(); hw > damaged {
			t.Fatalf("high watermark %d past the log end %d", hw, damaged)
		}
		if err := p.Healthy(); err != nil {
			t.Fatalf("Healthy() = %v after the truncation, want nil", err)
		}
		if _, why, ok := p.ProposedResignation(); ok {
			t.Fatalf("a follower proposes to resign (%v)", why)
		}
	})
}
