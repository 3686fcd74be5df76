package logstore

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSyncPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    SyncPolicy
		wantErr bool
	}{
		{in: "always", want: SyncPolicy{Mode: SyncAlways}},
		{in: "never", want: SyncPolicy{Mode: SyncNever}},
		{in: "interval:100ms", want: SyncPolicy{Mode: SyncInterval, Interval: 100 * time.Millisecond}},
		{in: "interval:0s", wantErr: true},
		{in: "interval:x", wantErr: true},
		{in: "sometimes", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSyncPolicy(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			back, err := ParseSyncPolicy(got.String())
			if err != nil || back != got {
				t.Fatalf("round trip %q: %+v, %v", got.String(), back, err)
			}
		})
	}
}

func TestAppendReadReopen(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		n     int
		batch int
	}{
		{name: "one segment", n: 100, batch: 7},
		{name: "many segments", opts: Options{MaxSegmentBytes: 512}, n: 100, batch: 3},
		{name: "index rolls", opts: Options{MaxIndexBytes: 5 * 12}, n: 23, batch: 1},
		{name: "empty", n: 0, batch: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, tt.opts)
			appendN(t, l, 0, tt.n, tt.batch)
			checkRange(t, l, 0, int64(tt.n))
			closeLog(t, l)
			for _, x := range segFiles(t, dir, indexSuffix) {
				fi, err := os.Stat(x)
				if err != nil || fi.Size()%indexEntrySize != 0 || fi.Size() > tt.opts.MaxIndexBytes && tt.opts.MaxIndexBytes > 0 {
					t.Fatalf("index %s: size %v, %v", x, fi.Size(), err)
				}
			}
			l = openLog(t, dir, tt.opts)
			defer closeLog(t, l)
			if s := l.Stats(); s.IndexRebuilds != 0 || s.CorruptRecords != 0 {
				t.Fatalf("clean reopen rebuilt or found corruption: %+v", s)
			}
			checkRange(t, l, 0, int64(tt.n))
			appendN(t, l, 0, 5, 2)
			checkRange(t, l, 0, int64(tt.n)+5)
		})
	}
}

func TestRoll(t *testing.T) {
	t.Run("by size", func(t *testing.T) {
		l := openLog(t, t.TempDir(), Options{MaxSegmentBytes: int64(3 * FrameSize(len(payload(0))))})
		defer closeLog(t, l)
		appendN(t, l, 0, 10, 1)
		if got := l.Stats().Segments; got != 4 {
			t.Fatalf("segments %d, want 4 (3 records each)", got)
		}
		checkRange(t, l, 0, 10)
	})
	t.Run("by age", func(t *testing.T) {
		c := newClock()
		l := openLog(t, t.TempDir(), Options{SegmentMaxAge: time.Hour, Now: c.Now})
		defer closeLog(t, l)
		appendN(t, l, 0, 3, 1)
		c.Add(59 * time.Minute)
		appendN(t, l, 0, 1, 1)
		if got := l.Stats().Segments; got != 1 {
			t.Fatalf("segments %d before the age, want 1", got)
		}
		c.Add(time.Minute)
		appendN(t, l, 0, 1, 1)
		if got := l.Stats().Segments; got != 2 {
			t.Fatalf("segments %d after the age, want 2", got)
		}
		checkRange(t, l, 0, 5)
	})
	t.Run("batch larger than a segment", func(t *testing.T) {
		// A batch is split so that no segment exceeds MaxSegmentBytes by
		// more than one record, for Append and for a follower's frames.
		frame := int64(FrameSize(len(payload(0))))
		for _, follower := range []bool{false, true} {
			dir := t.TempDir()
			l := openLog(t, dir, Options{MaxSegmentBytes: 3*frame + frame/2})
			appendN(t, l, 0, 2, 2)
			if follower {
				var frames []byte
				for off := int64(2); off < 20; off++ {
					frames = AppendFrame(frames, off, off, payload(off))
				}
				if last, err := l.AppendFrames(0, frames); err != nil || last != 19 {
					t.Fatalf("AppendFrames = %d, %v", last, err)
				}
			} else {
				appendN(t, l, 0, 18, 18)
			}
			checkRange(t, l, 0, 20)
			closeLog(t, l)
			for _, p := range segFiles(t, dir, storeSuffix) {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > 3*frame {
					t.Fatalf("follower %v: %s has %d bytes, limit %d", follower, filepath.Base(p), fi.Size(), 3*frame+frame/2)
				}
			}
			if n := len(segFiles(t, dir, storeSuffix)); n != 7 {
				t.Fatalf("follower %v: %d segments, want 7 of 3 records", follower, n)
			}
		}
	})
	t.Run("record larger than a segment", func(t *testing.T) {
		l := openLog(t, t.TempDir(), Options{MaxSegmentBytes: 8})
		defer closeLog(t, l)
		appendN(t, l, 0, 3, 3)
		if got := l.Stats().Segments; got != 3 {
			t.Fatalf("segments %d, want one record each", got)
		}
		checkRange(t, l, 0, 3)
	})
}

func TestRetention(t *testing.T) {
	frame := int64(FrameSize(len(payload(0))))
	tests := []struct {
		name      string
		opts      func(c *clock) Options
		advance   time.Duration
		wantStart int64
	}{
		{
			name: "by bytes",
			opts: func(c *clock) Options {
				return Options{MaxSegmentBytes: 4 * frame, RetentionBytes: 9 * frame}
			},
			wantStart: 12, // 20 records, 4 per segment; sealed deleted while total > 9 frames
		},
		{
			name: "by age",
			opts: func(c *clock) Options {
				return Options{MaxSegmentBytes: 4 * frame, RetentionAge: time.Hour, Now: c.Now}
			},
			advance:   2 * time.Hour,
			wantStart: 16, // every sealed segment is old; the active one stays
		},
		{
			name: "age not reached",
			opts: func(c *clock) Options {
				return Options{MaxSegmentBytes: 4 * frame, RetentionAge: time.Hour, Now: c.Now}
			},
			advance:   time.Minute,
			wantStart: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock()
			l := openLog(t, t.TempDir(), tt.opts(c))
			defer closeLog(t, l)
			// Timestamps are "now" in ms.
			for i := 0; i < 20; i++ {
				off := l.LogEndOffset()
				if _, err := l.Append(0, []Record{{Timestamp: c.Now().UnixMilli(), Payload: payload(off)}}); err != nil {
					t.Fatal(err)
				}
			}
			c.Add(tt.advance)
			if err := l.ApplyRetention(); err != nil {
				t.Fatal(err)
			}
			checkRange(t, l, tt.wantStart, 20)
			if got := l.Size(); got != (20-tt.wantStart)*frame {
				t.Fatalf("Size %d, want %d", got, (20-tt.wantStart)*frame)
			}
		})
	}
}

func TestDeleteBefore(t *testing.T) {
	frame := int64(FrameSize(len(payload(0))))
	tests := []struct {
		before, wantStart int64
	}{
		{before: 0, wantStart: 0},
		{before: 4, wantStart: 0},   // segment [0,5) is not entirely below 4
		{before: 5, wantStart: 5},   // it is below 5
		{before: 12, wantStart: 10}, // [10,15) holds 12
		{before: 100, wantStart: 20},
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			dir := t.TempDir()
			l := openLog(t, dir, Options{MaxSegmentBytes: 5 * frame})
			appendN(t, l, 0, 23, 1)
			if err := l.DeleteBefore(tt.before); err != nil {
				t.Fatal(err)
			}
			checkRange(t, l, tt.wantStart, 23)
			closeLog(t, l)
			l = openLog(t, dir, Options{MaxSegmentBytes: 5 * frame})
			defer closeLog(t, l)
			checkRange(t, l, tt.wantStart, 23)
		})
	}
}

func TestTruncate(t *testing.T) {
	frame := int64(FrameSize(len(payload(0))))
	tests := []struct {
		name          string
		to            int64
		wantEnd       int64
		wantStart     int64
		wantEpochs    []EpochEntry
		wantLatestEnd int64
	}{
		{name: "no-op at end", to: 30, wantEnd: 30, wantEpochs: []EpochEntry{{1, 0}, {2, 12}, {3, 25}}},
		{name: "within active", to: 27, wantEnd: 27, wantEpochs: []EpochEntry{{1, 0}, {2, 12}, {3, 25}}},
		{name: "at active base", to: 25, wantEnd: 25, wantEpochs: []EpochEntry{{1, 0}, {2, 12}}},
		{name: "across segments", to: 13, wantEnd: 13, wantEpochs: []EpochEntry{{1, 0}, {2, 12}}},
		{name: "inside first segment", to: 3, wantEnd: 3, wantEpochs: []EpochEntry{{1, 0}}},
		{name: "to start empties", to: 0, wantEnd: 0, wantEpochs: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{MaxSegmentBytes: 5 * frame, Sync: SyncPolicy{Mode: SyncAlways}}
			l := openLog(t, dir, opts)
			appendN(t, l, 1, 12, 2)
			appendN(t, l, 2, 13, 2)
			appendN(t, l, 3, 5, 2)
			r, err := l.NewReader(0)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Truncate(tt.to); err != nil {
				t.Fatal(err)
			}
			checkRange(t, l, tt.wantStart, tt.wantEnd)
			if got := l.Epochs(); !equalEpochs(got, tt.wantEpochs) {
				t.Fatalf("epochs %v, want %v", got, tt.wantEpochs)
			}
			// A reader opened before reads the truncated log, never garbage.
			n := int64(0)
			for {
				f, err := r.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("old reader: %v", err)
				}
				if f.Offset != n || string(f.Payload) != string(payload(n)) {
					t.Fatalf("old reader got %d %q", f.Offset, f.Payload)
				}
				n++
			}
			if n != tt.wantEnd {
				t.Fatalf("old reader read %d records, want %d", n, tt.wantEnd)
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			// New records get the truncated offsets; they survive reopen.
			appendN(t, l, 4, 4, 3)
			checkRange(t, l, tt.wantStart, tt.wantEnd+4)
			closeLog(t, l)
			l = openLog(t, dir, opts)
			defer closeLog(t, l)
			checkRange(t, l, tt.wantStart, tt.wantEnd+4)
			if e, end := l.EndOffsetForEpoch(4); e != 4 || end != tt.wantEnd+4 {
				t.Fatalf("EndOffsetForEpoch(4) = %d, %d", e, end)
			}
		})
	}
}

func equalEpochs(a, b []EpochEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReset(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendN(t, l, 0, 10, 3)
	if err := l.Reset(500); err != nil {
		t.Fatal(err)
	}
	checkRange(t, l, 500, 500)
	appendN(t, l, 1, 3, 3)
	checkRange(t, l, 500, 503)
	closeLog(t, l)
	l = openLog(t, dir, Options{})
	defer closeLog(t, l)
	checkRange(t, l, 500, 503)
}

func TestEpochs(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if got := l.LatestEpoch(); got != -1 {
		t.Fatalf("LatestEpoch of an empty log %d", got)
	}
	if e, end := l.EndOffsetForEpoch(5); e != -1 || end != -1 {
		t.Fatalf("EndOffsetForEpoch on no epochs = %d, %d", e, end)
	}
	appendN(t, l, 1, 5, 5) // epoch 1: [0,5)
	appendN(t, l, 1, 2, 1) // same epoch: no entry
	appendN(t, l, 3, 4, 2) // epoch 3: [7,11)
	appendN(t, l, 6, 1, 1) // epoch 6: [11,12)
	if _, err := l.Append(5, []Record{{Payload: []byte("x")}}); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("stale epoch append: %v", err)
	}
	want := []EpochEntry{{1, 0}, {3, 7}, {6, 11}}
	if got := l.Epochs(); !equalEpochs(got, want) {
		t.Fatalf("Epochs %v, want %v", got, want)
	}
	tests := []struct {
		ask      int32
		epoch    int32
		endOff   int64
		scenario string
	}{
		{ask: 0, epoch: -1, endOff: -1, scenario: "below the first epoch"},
		{ask: 1, epoch: 1, endOff: 7, scenario: "exact, ends where 3 starts"},
		{ask: 2, epoch: 1, endOff: 7, scenario: "unknown epoch: the largest below (KIP-279)"},
		{ask: 3, epoch: 3, endOff: 11, scenario: "exact"},
		{ask: 5, epoch: 3, endOff: 11, scenario: "unknown, between"},
		{ask: 6, epoch: 6, endOff: 12, scenario: "latest ends at the log end"},
		{ask: 9, epoch: 6, endOff: 12, scenario: "newer than any"},
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			e, end := l.EndOffsetForEpoch(tt.ask)
			if e != tt.epoch || end != tt.endOff {
				t.Fatalf("EndOffsetForEpoch(%d) = %d, %d; want %d, %d", tt.ask, e, end, tt.epoch, tt.endOff)
			}
		})
	}
	closeLog(t, l)
	l = openLog(t, dir, Options{})
	defer closeLog(t, l)
	if got := l.Epochs(); !equalEpochs(got, want) {
		t.Fatalf("Epochs after reopen %v, want %v", got, want)
	}
}

// TestEpochsDoubleFailover is the KIP-279 shape: a follower that was leader
// of an epoch the new leader never saw must find the point of divergence by
// asking about its latest epoch, then about the epoch the answer names.
func TestEpochsDoubleFailover(t *testing.T) {
	// Leader B: epoch 0 [0,2), epoch 2 [2,4), epoch 4 [4,6).
	leader := openLog(t, t.TempDir(), Options{})
	defer closeLog(t, leader)
	appendN(t, leader, 0, 2, 1)
	appendN(t, leader, 2, 2, 1)
	appendN(t, leader, 4, 2, 1)
	// Follower A: epoch 0 [0,2), epoch 1 [2,3) (its own short reign), epoch 3 [3,4).
	follower := openLog(t, t.TempDir(), Options{})
	defer closeLog(t, follower)
	appendN(t, follower, 0, 2, 1)
	appendN(t, follower, 1, 1, 1)
	appendN(t, follower, 3, 1, 1)

	ask := follower.LatestEpoch()
	for round := 0; round < 5; round++ {
		e, end := leader.EndOffsetForEpoch(ask)
		fe, fend := follower.EndOffsetForEpoch(e)
		if e == fe {
			// Both know epoch e: diverge at the smaller end.
			if err := follower.Truncate(min(end, fend)); err != nil {
				t.Fatal(err)
			}
			break
		}
		// The leader answered an epoch the follower does not have: ask
		// again about the follower's largest epoch below it.
		if fe < 0 {
			if err := follower.Truncate(0); err != nil {
				t.Fatal(err)
			}
			break
		}
		ask = fe
	}
	if got := follower.LogEndOffset(); got != 2 {
		t.Fatalf("follower truncated to %d, want 2 (end of the shared epoch 0)", got)
	}
	if got := follower.Epochs(); !equalEpochs(got, []EpochEntry{{0, 0}}) {
		t.Fatalf("follower epochs %v", got)
	}
}

func TestOffsetForTime(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{MaxSegmentBytes: 100})
	defer closeLog(t, l)
	for i, ts := range []int64{10, 20, 20, 30, 25, 40, 50} {
		if _, err := l.Append(0, []Record{{Timestamp: ts, Payload: payload(int64(i))}}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ ts, want int64 }{
		{0, 0}, {10, 0}, {11, 1}, {20, 1}, {21, 3}, {26, 3}, {31, 5}, {50, 6}, {51, 7},
	}
	for _, tt := range tests {
		got, err := l.OffsetForTime(tt.ts)
		if err != nil || got != tt.want {
			t.Errorf("OffsetForTime(%d) = %d, %v; want %d", tt.ts, got, err, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{MaxRecordBytes: 16})
	appendN(t, l, 0, 3, 3)
	t.Run("record too large", func(t *testing.T) {
		_, err := l.Append(0, []Record{{Payload: make([]byte, 17)}})
		if !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("err %v", err)
		}
		if l.LogEndOffset() != 3 {
			t.Fatal("a refused batch moved the log end")
		}
	})
	t.Run("not at end", func(t *testing.T) {
		frames := AppendFrame(nil, 7, 0, []byte("x"))
		_, err := l.AppendFrames(0, frames)
		if !errors.Is(err, ErrNotAtEnd) || !strings.Contains(err.Error(), "log end offset 3") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("frames", func(t *testing.T) {
		good := AppendFrame(AppendFrame(nil, 3, 1, payload(3)), 4, 2, payload(4))
		gap := AppendFrame(AppendFrame(nil, 5, 1, payload(5)), 7, 2, payload(7))
		bad := append([]byte(nil), good...)
		bad[30] ^= 1
		big := AppendFrame(nil, 5, 0, make([]byte, 17))
		if _, err := l.AppendFrames(0, gap); !errors.Is(err, ErrNotAtEnd) {
			t.Fatalf("gap at the start: %v", err)
		}
		if _, err := l.AppendFrames(0, bad); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bad crc: %v", err)
		}
		if _, err := l.AppendFrames(0, good[:len(good)-1]); !errors.Is(err, ErrBadBatch) {
			t.Fatalf("truncated: %v", err)
		}
		last, err := l.AppendFrames(0, good)
		if err != nil || last != 4 {
			t.Fatalf("good frames: %d, %v", last, err)
		}
		if _, err := l.AppendFrames(0, big); !errors.Is(err, ErrRecordTooLarge) {
			t.Fatalf("big: %v", err)
		}
		gap2 := AppendFrame(AppendFrame(nil, 5, 1, payload(5)), 7, 2, payload(7))
		if _, err := l.AppendFrames(0, gap2); !errors.Is(err, ErrBadBatch) {
			t.Fatalf("gap inside: %v", err)
		}
		checkRange(t, l, 0, 5)
	})
	t.Run("out of range", func(t *testing.T) {
		for _, off := range []int64{-1, 5, 100} {
			_, err := l.Read(off)
			var oor *OutOfRangeError
			if !errors.Is(err, ErrOffsetOutOfRange) || !errors.As(err, &oor) || oor.Start != 0 || oor.End != 5 || oor.Offset != off {
				t.Fatalf("Read(%d): %v", off, err)
			}
		}
		if _, err := l.NewReader(6); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("NewReader(6): %v", err)
		}
		r, err := l.NewReader(5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("Next at the end: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	})
	closeLog(t, l)
	t.Run("closed", func(t *testing.T) {
		if _, err := l.Append(0, []Record{{}}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Append after Close: %v", err)
		}
		if _, err := l.Read(0); !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Close: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		for _, o := range []Options{{MaxSegmentBytes: -1}, {MaxIndexBytes: 5}, {Sync: SyncPolicy{Mode: SyncInterval}}} {
			if _, err := Open(t.TempDir(), o); err == nil {
				t.Fatalf("Open(%+v) accepted", o)
			}
		}
	})
}

func TestChanged(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	ch := l.Changed()
	select {
	case <-ch:
		t.Fatal("fired before any change")
	default:
	}
	appendN(t, l, 0, 1, 1)
	<-ch // fired by the append (a missing notification blocks the test)
	ch = l.Changed()
	appendN(t, l, 0, 2, 2)
	<-ch
	ch = l.Changed()
	if err := l.Truncate(1); err != nil {
		t.Fatal(err)
	}
	<-ch
	ch = l.Changed()
	closeLog(t, l)
	<-ch
	<-l.Changed() // stays closed after Close
}

func TestReadFrames(t *testing.T) {
	src := openLog(t, t.TempDir(), Options{MaxSegmentBytes: 300})
	defer closeLog(t, src)
	appendN(t, src, 0, 50, 4)
	dst := openLog(t, t.TempDir(), Options{})
	defer closeLog(t, dst)
	r, err := src.NewReader(0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	var buf []byte
	for {
		out, next, err := r.ReadFrames(buf[:0], 200)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > 200 {
			t.Fatalf("ReadFrames returned %d bytes over 200", len(out))
		}
		last, err := dst.AppendFrames(0, out)
		if err != nil || last != next-1 {
			t.Fatalf("AppendFrames: %d, %v (next %d)", last, err, next)
		}
		buf = out
	}
	checkRange(t, dst, 0, 50)
}

func TestSizeMatchesFiles(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{MaxSegmentBytes: 200})
	defer closeLog(t, l)
	appendN(t, l, 0, 40, 3)
	var total int64
	for _, f := range segFiles(t, dir, storeSuffix) {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if l.Size() != total {
		t.Fatalf("Size %d, files %d", l.Size(), total)
	}
	if _, err := os.Stat(filepath.Join(dir, storeName(0))); err != nil {
		t.Fatal(err)
	}
}
