package logstore

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestCrashTornTail cuts the active store at every byte inside its last
// record, as a crash mid-write leaves it, and reopens. Under SyncNever the
// record was never synced: it is a torn write, gone, and the next append
// reuses only its (never acknowledged) offset. Under SyncAlways it was
// fsynced before Append returned, so the cut is corruption: the offset
// stays taken and reported, and the next append gets the one after it.
func TestCrashTornTail(t *testing.T) {
	for _, policy := range []SyncPolicy{{Mode: SyncNever}, {Mode: SyncAlways}} {
		t.Run(policy.String(), func(t *testing.T) {
			durable := policy.Mode == SyncAlways
			opts := Options{MaxSegmentBytes: 200, MaxIndexBytes: 1200, Sync: policy}
			dir := t.TempDir()
			l := openLog(t, dir, opts)
			appendN(t, l, 0, 10, 2)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			appendN(t, l, 0, 2, 1)
			crashed := snapshotDir(t, dir)
			closeLog(t, l)
			active := filepath.Join(crashed, storeName(lastBase(t, crashed)))
			full, err := os.ReadFile(active)
			if err != nil {
				t.Fatal(err)
			}
			last := len(full) - FrameSize(len(payload(11)))
			for cut := last; cut < len(full); cut++ {
				d := snapshotDir(t, crashed)
				if err := os.Truncate(filepath.Join(d, filepath.Base(active)), int64(cut)); err != nil {
					t.Fatal(err)
				}
				l := openLog(t, d, opts)
				s := l.Stats()
				if !durable {
					checkRange(t, l, 0, 11)
					if s.CorruptRecords != 0 || (cut > last && s.RecoveryTruncatedBytes != int64(cut-last)) {
						t.Fatalf("cut %d: %+v", cut, s)
					}
					appendN(t, l, 0, 1, 1)
					checkRange(t, l, 0, 12)
					closeLog(t, l)
					continue
				}
				if l.LogEndOffset() != 12 || s.CorruptRecords == 0 || s.RecoveryTruncatedBytes != 0 {
					t.Fatalf("cut %d: end %d, %+v", cut, l.LogEndOffset(), s)
				}
				var c *CorruptError
				if _, err := l.Read(11); !errors.As(err, &c) || c.Offset != 11 || c.Segment != filepath.Base(active) {
					t.Fatalf("cut %d: Read(11) = %v", cut, err)
				}
				appendN(t, l, 0, 1, 1)
				for off := int64(0); off < 13; off++ {
					if f, err := l.Read(off); off != 11 && (err != nil || string(f.Payload) != string(payload(off))) {
						t.Fatalf("cut %d: Read(%d) = %q, %v", cut, off, f.Payload, err)
					}
				}
				closeLog(t, l)
			}
		})
	}
}

func lastBase(t *testing.T, dir string) int64 {
	t.Helper()
	m := segFiles(t, dir, storeSuffix)
	b, ok := parseBase(filepath.Base(m[len(m)-1]), storeSuffix)
	if !ok {
		t.Fatal("bad segment name")
	}
	return b
}

// TestCrashZeroTail: what kill -9 (or a power loss on a delayed-allocation
// file system) leaves: zeros after the store's last record and the index
// still at its preallocated size.
func TestCrashZeroTail(t *testing.T) {
	dir := t.TempDir()
	opts := Options{MaxSegmentBytes: 300}
	l := openLog(t, dir, opts)
	appendN(t, l, 0, 20, 3)
	crashed := snapshotDir(t, dir)
	closeLog(t, l)
	base := lastBase(t, crashed)
	fi, err := os.Stat(filepath.Join(crashed, indexName(base)))
	if err != nil || fi.Size() != DefaultMaxIndexBytes {
		t.Fatalf("active index not preallocated: %v %v", fi.Size(), err)
	}
	f, err := os.OpenFile(filepath.Join(crashed, storeName(base)), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, crashed, opts)
	defer closeLog(t, l)
	checkRange(t, l, 0, 20)
	if s := l.Stats(); s.CorruptRecords != 0 || s.RecoveryTruncatedBytes != 4096 {
		t.Fatalf("stats %+v", s)
	}
	appendN(t, l, 0, 3, 3)
	checkRange(t, l, 0, 23)
}

// TestCorruptSealed flips bits in a sealed segment below the recovery point:
// that record reads ErrCorrupt, every other still reads, later segments stay.
func TestCorruptSealed(t *testing.T) {
	tests := []struct {
		name     string
		byteAt   int // within the victim frame
		dropIdx  bool
		reopened bool
	}{
		{name: "payload bit", byteAt: frameHeaderSize + 2},
		{name: "offset field", byteAt: 10},
		{name: "length field", byteAt: 2},
		{name: "length field, index lost", byteAt: 2, dropIdx: true},
		{name: "payload bit, index lost", byteAt: frameHeaderSize + 1, dropIdx: true},
	}
	const victim = 6 // second record of the second segment
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			frame := FrameSize(len(payload(0)))
			opts := Options{MaxSegmentBytes: int64(5 * frame)}
			l := openLog(t, dir, opts)
			appendN(t, l, 0, 17, 1)
			closeLog(t, l)
			store := filepath.Join(dir, storeName(5))
			b, err := os.ReadFile(store)
			if err != nil {
				t.Fatal(err)
			}
			b[(victim-5)*frame+tt.byteAt] ^= 0x40
			if err := os.WriteFile(store, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if tt.dropIdx {
				if err := os.Remove(filepath.Join(dir, indexName(5))); err != nil {
					t.Fatal(err)
				}
			}
			l = openLog(t, dir, opts)
			defer closeLog(t, l)
			if l.LogEndOffset() != 17 || l.LogStartOffset() != 0 {
				t.Fatalf("range [%d, %d)", l.LogStartOffset(), l.LogEndOffset())
			}
			var c *CorruptError
			if _, err := l.Read(victim); !errors.Is(err, ErrCorrupt) || !errors.As(err, &c) || c.Offset != victim {
				t.Fatalf("Read(victim) = %v", err)
			}
			for off := int64(0); off < 17; off++ {
				if off == victim {
					continue
				}
				f, err := l.Read(off)
				if err != nil || string(f.Payload) != string(payload(off)) {
					t.Fatalf("Read(%d) = %q, %v", off, f.Payload, err)
				}
			}
			r, err := l.NewReader(0)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			corrupt := 0
			for {
				f, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if errors.Is(err, ErrCorrupt) {
					corrupt++
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, f.Offset)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if corrupt != 1 || len(got) != 16 {
				t.Fatalf("reader: %d corrupt, %d good (%v)", corrupt, len(got), got)
			}
			if l.Stats().CorruptRecords == 0 || !errors.Is(l.Healthy(), ErrCorrupt) {
				t.Fatalf("corruption not counted: %+v, %v", l.Stats(), l.Healthy())
			}
			// The bad bytes are still on disk: never truncated silently.
			after, err := os.ReadFile(store)
			if err != nil || len(after) != len(b) {
				t.Fatalf("store changed size: %d -> %d (%v)", len(b), len(after), err)
			}
			appendN(t, l, 0, 1, 1)
		})
	}
}

// TestIndexRebuild deletes or scrambles indexes: they are derived state,
// rebuilt from the stores with identical reads.
func TestIndexRebuild(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{name: "deleted", damage: func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "scrambled", damage: func(t *testing.T, p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for i := len(b) / 3; i < len(b)/2; i++ {
				b[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "truncated odd", damage: func(t *testing.T, p string) {
			if err := os.Truncate(p, 17); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "emptied", damage: func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{MaxSegmentBytes: 400}
			l := openLog(t, dir, opts)
			appendN(t, l, 0, 60, 4)
			closeLog(t, l)
			idx := segFiles(t, dir, indexSuffix)
			for _, p := range idx {
				tt.damage(t, p)
			}
			l = openLog(t, dir, opts)
			defer closeLog(t, l)
			if got := l.Stats().IndexRebuilds; got != uint64(len(idx)) {
				t.Fatalf("rebuilt %d indexes, want %d", got, len(idx))
			}
			checkRange(t, l, 0, 60)
			for off := int64(0); off < 60; off++ {
				if f, err := l.Read(off); err != nil || f.Offset != off {
					t.Fatalf("Read(%d): %v", off, err)
				}
			}
		})
	}
}

// TestRecoveryLeftovers: temp files and orphan indexes are removed.
func TestRecoveryLeftovers(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 0, 3, 3)
	closeLog(t, l)
	for _, name := range []string{"recovery-point.tmp", indexName(99)} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l = openLog(t, dir, Options{})
	defer closeLog(t, l)
	checkRange(t, l, 0, 3)
	for _, name := range []string{"recovery-point.tmp", indexName(99)} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("%s left behind: %v", name, err)
		}
	}
}
