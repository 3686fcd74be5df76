package logstore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The reproductions of issue 11, each at the engine: damage a demanding
// user made, and what must hold afterwards.

// readEvery reads [0, end) with a Reader and returns the offsets read and
// the offsets reported corrupt; any record read must be the right one.
func readEvery(tb testing.TB, l *Log) (good, corrupt []int64) {
	tb.Helper()
	r, err := l.NewReader(l.LogStartOffset())
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			tb.Fatal(err)
		}
	}()
	for {
		f, err := r.Next()
		var c *CorruptError
		switch {
		case errors.Is(err, io.EOF):
			return good, corrupt
		case errors.As(err, &c):
			corrupt = append(corrupt, c.Offset)
			continue
		case err != nil:
			tb.Fatalf("Next at %d: %v", r.Offset(), err)
		}
		if string(f.Payload) != string(payload(f.Offset)) {
			tb.Fatalf("offset %d carries %q", f.Offset, f.Payload)
		}
		good = append(good, f.Offset)
	}
}

// TestTornAcknowledgedTail (reproduction 1): fsync=always, 50 acknowledged
// records, a clean close, the last 5 bytes cut off the active store. The
// cut record was durable: it is reported corrupt, naming file and position,
// its offset stays taken, everything before it reads, a new record gets
// offset 50 and reads, from the start too; garbage after a crash is then a
// torn tail that costs nothing acknowledged.
func TestTornAcknowledgedTail(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: SyncPolicy{Mode: SyncAlways}}
	l := openLog(t, dir, opts)
	appendN(t, l, 0, 50, 1)
	closeLog(t, l)
	store := filepath.Join(dir, storeName(0))
	fi, err := os.Stat(store)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(store, fi.Size()-5); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir, opts)
	if end := l.LogEndOffset(); end != 50 {
		t.Fatalf("LogEndOffset %d after the cut, want 50: an acknowledged offset was given back", end)
	}
	var c *CorruptError
	if _, err := l.Read(49); !errors.As(err, &c) || c.Offset != 49 || c.Segment != storeName(0) || c.Position != fi.Size()-int64(FrameSize(len(payload(49)))) {
		t.Fatalf("Read(49) = %v, want corruption naming %s and its position", err, storeName(0))
	}
	appendN(t, l, 0, 1, 1) // gets 50
	good, corrupt := readEvery(t, l)
	if len(good) != 50 || good[49] != 50 || len(corrupt) != 1 || corrupt[0] != 49 {
		t.Fatalf("read %v, corrupt %v", good, corrupt)
	}
	appendN(t, l, 0, 2, 1) // 51, 52
	crashed := snapshotDir(t, dir)
	closeLog(t, l)

	f, err := os.OpenFile(filepath.Join(crashed, storeName(lastBase(t, crashed))), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("garbage after a crash")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, crashed, opts)
	defer closeLog(t, l)
	good, corrupt = readEvery(t, l)
	if l.LogEndOffset() != 53 || len(good) != 52 || len(corrupt) != 1 || corrupt[0] != 49 {
		t.Fatalf("after crash and garbage: end %d, read %v, corrupt %v", l.LogEndOffset(), good, corrupt)
	}
	if s := l.Stats(); s.RecoveryTruncatedBytes != int64(len("garbage after a crash")) {
		t.Fatalf("torn tail not truncated: %+v", s)
	}
}

// TestBitFlipBelowRecoveryPoint (reproduction 2): fsync=always, 300
// acknowledged records, kill -9 (the directory as the crash leaves it), one
// bit flipped in the middle of the active segment. The records were fsynced,
// so this is corruption: reported for that record only, nothing truncated,
// the other 299 readable.
func TestBitFlipBelowRecoveryPoint(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: SyncPolicy{Mode: SyncAlways}}
	l := openLog(t, dir, opts)
	appendN(t, l, 0, 300, 3)
	crashed := snapshotDir(t, dir)
	closeLog(t, l)

	store := filepath.Join(crashed, storeName(0))
	b, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	frame := FrameSize(len(payload(0)))
	b[150*frame+frameHeaderSize+3] ^= 0x10
	if err := os.WriteFile(store, b, 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, crashed, opts)
	defer closeLog(t, l)
	good, corrupt := readEvery(t, l)
	if l.LogEndOffset() != 300 || len(good) != 299 || len(corrupt) != 1 || corrupt[0] != 150 {
		t.Fatalf("end %d, %d read, corrupt %v", l.LogEndOffset(), len(good), corrupt)
	}
	if s := l.Stats(); s.RecoveryTruncatedBytes != 0 {
		t.Fatalf("fsynced records truncated as a torn tail: %+v", s)
	}
	var c *CorruptError
	if !errors.As(l.Healthy(), &c) || c.Offset != 150 {
		t.Fatalf("Healthy = %v, want the corruption at 150", l.Healthy())
	}
	appendN(t, l, 0, 1, 1)
}

// TestDamagedIndexEntry (reproduction 4): an index entry whose position was
// flipped passes the open-time check; reading the intact record it points
// to falls back to the store, and the index is rebuilt on disk.
func TestDamagedIndexEntry(t *testing.T) {
	frame := FrameSize(len(payload(0)))
	for _, sealed := range []bool{true, false} {
		name := map[bool]string{true: "sealed", false: "active"}[sealed]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{MaxSegmentBytes: int64(20 * frame)}
			l := openLog(t, dir, opts)
			appendN(t, l, 0, 30, 5) // segments 0 (sealed, 20 records) and 20
			closeLog(t, l)
			base, victim := int64(0), int64(11)
			if !sealed {
				base, victim = 20, 25
			}
			idx := filepath.Join(dir, indexName(base))
			b, err := os.ReadFile(idx)
			if err != nil {
				t.Fatal(err)
			}
			// The entry points at the next record: positions still never
			// decrease (an unreadable placeholder may share its
			// successor's), so the open-time check passes.
			e := int(victim-base) * indexEntrySize
			orig := append([]byte(nil), b[e:e+indexEntrySize]...)
			putIndexEntry(b[e:], uint32(victim-base), int64(int(victim-base+1)*frame))
			if err := os.WriteFile(idx, b, 0o644); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, opts)
			defer closeLog(t, l)
			if f, err := l.Read(victim); err != nil || string(f.Payload) != string(payload(victim)) {
				t.Fatalf("Read(%d) = %q, %v", victim, f.Payload, err)
			}
			if good, corrupt := readEvery(t, l); len(good) != 30 || len(corrupt) != 0 {
				t.Fatalf("read %d, corrupt %v", len(good), corrupt)
			}
			if l.Healthy() != nil {
				t.Fatalf("Healthy = %v after a repaired index", l.Healthy())
			}
			after, err := os.ReadFile(idx)
			if err != nil {
				t.Fatal(err)
			}
			if string(after[e:e+indexEntrySize]) != string(orig) {
				t.Fatal("the index entry was not rebuilt on disk")
			}
		})
	}
}

// TestFullDisk (reproduction 5): a write refused for lack of space answers
// at once with ErrNoSpace naming the directory, leaves the log writable and
// healthy, and once space returns the log resumes with no reopen and
// nothing lost: for a plain append, one that rolls a segment, and a new
// leader epoch.
func TestFullDisk(t *testing.T) {
	frame := int64(FrameSize(len(payload(0))))
	tests := []struct {
		name  string
		full  func(f *faultFS)
		epoch int32
	}{
		{name: "store write", full: func(f *faultFS) { f.noSpace.Store(true) }},
		{name: "segment roll", full: func(f *faultFS) { f.noSpaceCreate.Store(true) }},
		{name: "epoch checkpoint", full: func(f *faultFS) { f.noSpaceCreate.Store(true) }, epoch: 1},
	}
	for _, policy := range []SyncPolicy{{Mode: SyncNever}, {Mode: SyncAlways}} {
		for _, tt := range tests {
			t.Run(policy.String()+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				ffs := &faultFS{}
				opts := Options{Sync: policy, FS: ffs, MaxSegmentBytes: 10 * frame}
				l := openLog(t, dir, opts)
				appendN(t, l, 0, 10, 5) // the active segment is full: the next append rolls
				tt.full(ffs)
				_, err := l.Append(tt.epoch, []Record{{Timestamp: 10, Payload: payload(10)}, {Timestamp: 11, Payload: payload(11)}})
				var ns *NoSpaceError
				if !errors.Is(err, ErrNoSpace) || !errors.As(err, &ns) || ns.Dir != dir || !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("append on a full disk: %v", err)
				}
				if errors.Is(err, ErrFailed) || l.Healthy() != nil {
					t.Fatalf("a full disk failed the log: %v, Healthy %v", err, l.Healthy())
				}
				if l.LogEndOffset() != 10 {
					t.Fatalf("refused batch visible: end %d", l.LogEndOffset())
				}
				ffs.noSpace.Store(false)
				ffs.noSpaceCreate.Store(false)
				if base, err := l.Append(tt.epoch, []Record{{Timestamp: 10, Payload: payload(10)}, {Timestamp: 11, Payload: payload(11)}}); err != nil || base != 10 {
					t.Fatalf("append once space returned = %d, %v", base, err)
				}
				checkRange(t, l, 0, 12)
				if l.LatestEpoch() != tt.epoch {
					t.Fatalf("latest epoch %d, want %d", l.LatestEpoch(), tt.epoch)
				}
				closeLog(t, l)
				l = openLog(t, dir, Options{Sync: policy, MaxSegmentBytes: 10 * frame})
				defer closeLog(t, l)
				checkRange(t, l, 0, 12)
				if e, end := l.EndOffsetForEpoch(0); e != 0 || tt.epoch == 1 && end != 10 {
					t.Fatalf("EndOffsetForEpoch(0) = %d, %d", e, end)
				}
			})
		}
	}
}

// TestCheckpointFormats: the checkpoints written before issue 11 (a 12-byte
// recovery point, a leader-epoch file without a checksum) are still read,
// and the new ones refuse a flipped digit or slot instead of reading it as
// another value.
func TestCheckpointFormats(t *testing.T) {
	v1 := []byte(epochFileMagicV1 + "\n2\n0 0\n3 17\n")
	if got, err := decodeEpochs(v1); err != nil || len(got) != 2 || got[1] != (EpochEntry{Epoch: 3, StartOffset: 17}) {
		t.Fatalf("version 1 epochs = %v, %v", got, err)
	}
	c := epochs{entries: []EpochEntry{{0, 0}, {3, 17}}}
	v2 := c.encode()
	if got, err := decodeEpochs(v2); err != nil || len(got) != 2 {
		t.Fatalf("version 2 epochs = %v, %v", got, err)
	}
	for i := range v2 {
		b := append([]byte(nil), v2...)
		b[i] ^= 0x01
		if got, err := decodeEpochs(b); err == nil {
			t.Fatalf("byte %d flipped: read %v", i, got)
		}
	}

	legacy := make([]byte, rpLegacySize)
	binary.BigEndian.PutUint64(legacy[4:], 42)
	binary.BigEndian.PutUint32(legacy, crc32.Checksum(legacy[4:], castagnoli))
	if _, off, ok := decodeRecoveryPoint(legacy); !ok || off != 42 {
		t.Fatalf("legacy recovery point = %d, %v", off, ok)
	}
	var b1, b2 [rpSlotSize]byte
	slots := append(encodeRecoveryPointSlot(&b1, 8, 100), encodeRecoveryPointSlot(&b2, 7, 90)...)
	if seq, off, ok := decodeRecoveryPoint(slots); !ok || seq != 8 || off != 100 {
		t.Fatalf("two slots = %d, %d, %v", seq, off, ok)
	}
	slots[5] ^= 0x04 // the newer slot torn: the older one holds
	if seq, off, ok := decodeRecoveryPoint(slots); !ok || seq != 7 || off != 90 {
		t.Fatalf("newer slot damaged = %d, %d, %v", seq, off, ok)
	}
}

// TestDamagedRangeSkippedAtOnce: a store cut at a frame boundary ten
// records before the recovery point loses ten durable records at one
// position. A Reader reports them as one range, names it, and goes on with
// the record appended after them; Read of any one of them names the file.
func TestDamagedRangeSkippedAtOnce(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: SyncPolicy{Mode: SyncAlways}, SegmentMaxAge: 1 << 62}
	l := openLog(t, dir, opts)
	appendN(t, l, 0, 50, 5)
	closeLog(t, l)
	if err := os.Truncate(filepath.Join(dir, storeName(0)), int64(40*FrameSize(len(payload(0))))); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	defer closeLog(t, l)
	appendN(t, l, 0, 1, 1) // offset 50
	r, err := l.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	var got []int64
	var ranges []*CorruptError
	for {
		f, err := r.Next()
		var c *CorruptError
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.As(err, &c) {
			ranges = append(ranges, c)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Offset)
	}
	if len(got) != 41 || got[40] != 50 || len(ranges) != 1 || ranges[0].Offset != 40 || ranges[0].End != 50 {
		t.Fatalf("read %v, damaged %v", got, ranges)
	}
	if _, err := l.Read(45); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read(45) = %v", err)
	}
	t.Log(ranges[0])
}
