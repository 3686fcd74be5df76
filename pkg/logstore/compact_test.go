package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The compaction tests write key-value payloads: "k=v" is a record of key
// k, "k!" a tombstone of k, "=v" a keyless record and "?" one kvKeyOf
// cannot decode.
func kvKeyOf(p []byte) ([]byte, bool, error) {
	if string(p) == "?" {
		return nil, false, errors.New("undecodable payload")
	}
	if k, ok := bytes.CutSuffix(p, []byte("!")); ok {
		return k, true, nil
	}
	k, _, ok := bytes.Cut(p, []byte("="))
	if !ok {
		return nil, false, fmt.Errorf("payload %q is not k=v", p)
	}
	return k, false, nil
}

// kvRec is one record of a compaction test: its payload and its age at the
// time of the clean.
type kvRec struct {
	p   string
	age time.Duration
}

// kvPer is the records a segment of the compaction tests holds.
const kvPer = 4

// kvOptions roll a segment every kvPer records.
func kvOptions(now func() time.Time) Options {
	return Options{MaxIndexBytes: kvPer * indexEntrySize, Sync: SyncPolicy{Mode: SyncAlways}, Now: now}
}

// kvView is what a log holds: offset -> payload.
type kvView map[int64]string

// kvWant is what a clean must leave, computed from its definition: the
// records of the segments below cleanEnd that are keyless, undecodable, or
// the latest of their key below upTo and not a tombstone older than the
// horizon; every record from cleanEnd on.
func kvWant(recs []kvRec, now time.Time, upTo, cleanEnd int64, retention time.Duration) kvView {
	latest := map[string]int64{}
	for off, r := range recs {
		if int64(off) >= upTo {
			break
		}
		if k, _, err := kvKeyOf([]byte(r.p)); err == nil && len(k) > 0 {
			latest[string(k)] = int64(off)
		}
	}
	horizon := now.Add(-retention).UnixMilli()
	want := kvView{}
	for i, r := range recs {
		off := int64(i)
		k, tomb, err := kvKeyOf([]byte(r.p))
		if off >= cleanEnd || err != nil || len(k) == 0 ||
			latest[string(k)] == off && !(tomb && now.Add(-r.age).UnixMilli() <= horizon) {
			want[off] = r.p
		}
	}
	return want
}

// kvAppend appends recs one at a time, each with the timestamp of its age.
func kvAppend(tb testing.TB, l *Log, epoch int32, now time.Time, recs []kvRec) {
	tb.Helper()
	for _, r := range recs {
		if _, err := l.Append(epoch, []Record{{Timestamp: now.Add(-r.age).UnixMilli(), Payload: []byte(r.p)}}); err != nil {
			tb.Fatalf("Append: %v", err)
		}
	}
}

// checkView asserts that l holds exactly want, through every read path: a
// Reader from the start and from every offset, ReadFrames, and Read of
// every offset in [start, end) (a removed offset reads as the next record,
// io.EOF when none is left).
func checkView(tb testing.TB, l *Log, want kvView) {
	tb.Helper()
	if err := viewError(l, want); err != nil {
		tb.Fatal(err)
	}
}

// readView reads the whole log with a Reader.
func readView(l *Log) (kvView, error) {
	start, end := l.LogStartOffset(), l.LogEndOffset()
	got := kvView{}
	r, err := l.NewReader(start)
	if err != nil {
		return nil, fmt.Errorf("NewReader(%d): %w", start, err)
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	prev := start - 1
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, fmt.Errorf("Next after %d: %w", prev, err)
		}
		if f.Offset <= prev || f.Offset >= end {
			return got, fmt.Errorf("Next returned offset %d after %d (log [%d, %d))", f.Offset, prev, start, end)
		}
		got[f.Offset], prev = string(f.Payload), f.Offset
	}
}

// viewError is checkView returning what it found wrong.
func viewError(l *Log, want kvView) error {
	start, end := l.LogStartOffset(), l.LogEndOffset()
	offs := slices.Sorted(maps.Keys(want))
	next := func(off int64) (int64, bool) {
		i, _ := slices.BinarySearch(offs, off)
		if i == len(offs) {
			return 0, false
		}
		return offs[i], true
	}
	got, err := readView(l)
	if err != nil {
		return err
	}
	if !maps.Equal(got, want) {
		return fmt.Errorf("the log holds\n\t%v\nwant\n\t%v", fmtView(got), fmtView(want))
	}
	// ReadFrames, two frames at a time.
	frames, err := readFrameOffsets(l, start, want)
	if err != nil {
		return err
	}
	if !slices.Equal(frames, offs) {
		return fmt.Errorf("ReadFrames returned %v, want %v", frames, offs)
	}
	for off := start; off < end; off++ {
		w, ok := next(off)
		f, err := l.Read(off)
		switch {
		case !ok && !errors.Is(err, io.EOF):
			return fmt.Errorf("Read(%d) past the last record: %d %q, %v; want io.EOF", off, f.Offset, f.Payload, err)
		case ok && (err != nil || f.Offset != w || string(f.Payload) != want[w]):
			return fmt.Errorf("Read(%d) = %d %q, %v; want %d %q", off, f.Offset, f.Payload, err, w, want[w])
		}
		r, err := l.NewReader(off)
		if err != nil {
			return fmt.Errorf("NewReader(%d): %v", off, err)
		}
		f, err = r.Next()
		if cerr := r.Close(); cerr != nil {
			return cerr
		}
		switch {
		case !ok && !errors.Is(err, io.EOF):
			return fmt.Errorf("a Reader from %d past the last record: %d, %v; want io.EOF", off, f.Offset, err)
		case ok && (err != nil || f.Offset != w):
			return fmt.Errorf("a Reader from %d returned %d, %v; want %d", off, f.Offset, err, w)
		}
	}
	if h := l.Healthy(); h != nil {
		return fmt.Errorf("Healthy() = %v", h)
	}
	if n := l.Stats().CorruptRecords; n != 0 {
		return fmt.Errorf("%d corrupt records", n)
	}
	return nil
}

// readFrameOffsets reads the log from start with ReadFrames, two frames at
// a time, checking each against want, and returns their offsets.
func readFrameOffsets(l *Log, start int64, want kvView) (offs []int64, err error) {
	r, err := l.NewReader(start)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	for {
		out, _, err := r.ReadFrames(nil, 2*FrameSize(4))
		if errors.Is(err, io.EOF) {
			return offs, nil
		}
		if err != nil {
			return offs, fmt.Errorf("ReadFrames: %w", err)
		}
		for p := 0; p < len(out); {
			f, n, err := DecodeFrame(out[p:], DefaultMaxRecordBytes)
			if err != nil || want[f.Offset] != string(f.Payload) {
				return offs, fmt.Errorf("ReadFrames: frame %d %q, %v", f.Offset, f.Payload, err)
			}
			offs = append(offs, f.Offset)
			p += n
		}
	}
}

func fmtView(v kvView) string {
	var b strings.Builder
	for _, off := range slices.Sorted(maps.Keys(v)) {
		fmt.Fprintf(&b, "%d:%s ", off, v[off])
	}
	return b.String()
}

// dirFiles reads the files of a log directory whose names end in suffix.
func dirFiles(tb testing.TB, dir string, names ...string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		out[name] = b
	}
	return out
}

func puts(ps ...string) []kvRec {
	out := make([]kvRec, len(ps))
	for i, p := range ps {
		out[i] = kvRec{p: p}
	}
	return out
}

// TestCompact is the semantics of a clean, table-driven: each case appends
// records (kvPer to a segment), cleans with its bound and tombstone
// retention, and checks the log against kvWant through every read path,
// that the active segment's files did not change, the stats, the leader
// epochs, a reopen, and that a second clean changes nothing.
func TestCompact(t *testing.T) {
	const hour = time.Hour
	cases := []struct {
		name      string
		recs      []kvRec
		upTo      int64 // -1: the log end
		retention time.Duration
		removed   int64 // RecordsRemoved
		tombs     int64 // TombstonesRemoved
		written   int   // SegmentsWritten
	}{
		{name: "last record per key",
			recs: puts("a=1", "b=1", "a=2", "c=1", "b=2", "a=3", "d=1", "c=2", "x=1"),
			upTo: -1, removed: 4, written: 1},
		{name: "a key written again in the active segment",
			recs: puts("a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "a=2", "e=2"),
			upTo: -1, removed: 2, written: 2},
		{name: "records past UpTo supersede nothing",
			recs: puts("a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "a=2", "e=2"),
			upTo: 8, removed: 0, written: 0},
		{name: "UpTo inside a sealed segment cleans the segments below it",
			recs: puts("a=1", "a=2", "a=3", "b=1", "a=4", "b=2", "c=1", "d=1", "b=3", "x=1"),
			upTo: 6, removed: 4, written: 1},
		{name: "tombstones younger than DeleteRetention stay, older ones go",
			recs: []kvRec{{p: "a=1", age: 5 * hour}, {p: "a!", age: 4 * hour}, {p: "b=1", age: 3 * hour}, {p: "b!", age: 1 * hour},
				{p: "c=1"}, {p: "c!", age: 3 * hour}, {p: "d=1"}, {p: "d!", age: time.Minute}, {p: "x=1"}},
			upTo: -1, retention: 2 * hour, removed: 4, tombs: 2, written: 1},
		{name: "DeleteRetention 0 removes every latest tombstone",
			recs: puts("a=1", "a!", "b!", "c=1", "d=1", "c!", "e=1", "f=1", "x=1"),
			upTo: -1, retention: 0, removed: 2, tombs: 3, written: 1},
		{name: "a tombstone written over goes whatever its age",
			recs: puts("a=1", "a!", "b=1", "c=1", "a=2", "e=1", "f=1", "g=1", "x=1"),
			upTo: -1, retention: 24 * hour, removed: 2, written: 1},
		{name: "keyless and undecodable records stay",
			recs: puts("=1", "?", "a=1", "=2", "a=2", "?", "=3", "b=1", "x=1"),
			upTo: -1, removed: 1, written: 1},
		{name: "a segment that loses every record",
			recs: puts("a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "a=2", "b=2", "c=2", "d=2", "x=1"),
			upTo: -1, removed: 4, written: 1},
		{name: "small segments are merged",
			recs: puts("a=1", "a=2", "a=3", "a=4", "b=1", "b=2", "b=3", "b=4", "c=1", "c=2", "c=3", "c=4", "d=1", "d=2", "d=3", "d=4", "x=1"),
			upTo: -1, removed: 12, written: 1},
		{name: "nothing to remove leaves every segment as it is",
			recs: puts("a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "i=1"),
			upTo: -1, removed: 0, written: 0},
		{name: "every key in the active segment",
			recs: puts("a=1", "b=1", "c=1"),
			upTo: -1, removed: 0, written: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			opts := kvOptions(clk.Now)
			l := openLog(t, dir, opts)
			defer func() { closeLog(t, l) }()
			now := clk.Now()
			half := len(tc.recs) / 2
			kvAppend(t, l, 1, now, tc.recs[:half])
			kvAppend(t, l, 3, now, tc.recs[half:])
			epochs := l.Epochs()
			n := int64(len(tc.recs))
			upTo := tc.upTo
			if upTo < 0 {
				upTo = n
			}
			activeBase := kvPer * ((n - 1) / kvPer)
			cleanEnd := min(upTo, activeBase) / kvPer * kvPer
			active := []string{storeName(activeBase), indexName(activeBase)}
			before := dirFiles(t, dir, active...)
			st, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: upTo, DeleteRetention: tc.retention})
			if err != nil {
				t.Fatalf("Compact: %v", err)
			}
			want := kvWant(tc.recs, now, upTo, cleanEnd, tc.retention)
			checkView(t, l, want)
			if st.CleanedUpTo != cleanEnd || st.RecordsRemoved != tc.removed || st.TombstonesRemoved != tc.tombs ||
				st.SegmentsWritten != tc.written || st.Records != cleanEnd || st.CorruptOffset != -1 {
				t.Fatalf("stats %+v; want CleanedUpTo %d, RecordsRemoved %d, TombstonesRemoved %d, SegmentsWritten %d, Records %d",
					st, cleanEnd, tc.removed, tc.tombs, tc.written, cleanEnd)
			}
			if st.SegmentsWritten > 0 && st.BytesAfter >= st.BytesBefore && st.SegmentsRewritten == st.SegmentsWritten {
				t.Fatalf("rewrote %d bytes into %d: %+v", st.BytesBefore, st.BytesAfter, st)
			}
			if after := dirFiles(t, dir, active...); !maps.EqualFunc(before, after, bytes.Equal) {
				t.Fatal("the clean changed the active segment's files")
			}
			if l.LogStartOffset() != 0 || l.LogEndOffset() != n {
				t.Fatalf("log [%d, %d) after the clean, want [0, %d)", l.LogStartOffset(), l.LogEndOffset(), n)
			}
			if got := l.Epochs(); !slices.Equal(got, epochs) {
				t.Fatalf("epochs %v after the clean, were %v", got, epochs)
			}
			if e, end := l.EndOffsetForEpoch(1); e != 1 || end != int64(half) {
				t.Fatalf("EndOffsetForEpoch(1) = %d, %d; want 1, %d", e, end, half)
			}
			// Again: nothing more to do.
			st2, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: upTo, DeleteRetention: tc.retention})
			if err != nil || st2.RecordsRemoved+st2.TombstonesRemoved != 0 || st2.SegmentsWritten != 0 {
				t.Fatalf("second Compact: %+v, %v", st2, err)
			}
			checkView(t, l, want)
			// Reopen: the same, then appends go on.
			closeLog(t, l)
			l = openLog(t, dir, opts)
			checkView(t, l, want)
			if got := l.Epochs(); !slices.Equal(got, epochs) {
				t.Fatalf("epochs %v after reopening, were %v", got, epochs)
			}
			if st := l.Stats(); st.IndexRebuilds != 0 {
				t.Fatalf("reopening rebuilt %d indexes", st.IndexRebuilds)
			}
			kvAppend(t, l, 3, now, puts("z=1"))
			want[n] = "z=1"
			checkView(t, l, want)
		})
	}
}

// concPayload is the record at off in TestCompactConcurrentReaders: one
// of 23 keys, its value the offset, so any record read proves itself.
func concPayload(off int64) []byte { return []byte(fmt.Sprintf("k%d=%d", off%23, off)) }

// checkConcFrame says what is wrong with a frame read at or after from.
func checkConcFrame(f Frame, from int64) error {
	if f.Offset < from || string(f.Payload) != string(concPayload(f.Offset)) {
		return fmt.Errorf("read from %d: offset %d carries %q", from, f.Offset, f.Payload)
	}
	return nil
}

// TestCompactConcurrentReaders cleans a log again and again while a writer
// appends (and now and then truncates its last records) and readers
// follow it: streaming Readers from the start, Read at random offsets and
// ReadFrames. Every record read carries its own offset's payload, offsets
// only go up, no read reports corruption, and at the end every key's
// latest record is still there. Run under -race.
func TestCompactConcurrentReaders(t *testing.T) {
	frame := int64(FrameSize(len(concPayload(1000))))
	l := openLog(t, t.TempDir(), Options{MaxSegmentBytes: 8 * frame})
	defer closeLog(t, l)
	const total = 4000
	done := make(chan struct{})
	errc := make(chan error, 16)
	var wg sync.WaitGroup
	run := func(fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- fn()
		}()
	}
	for range 3 {
		run(func() error { return followConc(l, done) })
	}
	run(func() error {
		rng := rand.New(rand.NewPCG(3, 4))
		for {
			select {
			case <-done:
				return nil
			default:
			}
			end := l.LogEndOffset()
			if end == 0 {
				continue
			}
			off := rng.Int64N(end)
			f, err := l.Read(off)
			switch {
			case err == nil:
				if err := checkConcFrame(f, off); err != nil {
					return err
				}
			case errors.Is(err, io.EOF), errors.Is(err, ErrOffsetOutOfRange):
			default:
				return fmt.Errorf("Read(%d): %w", off, err)
			}
		}
	})
	cleans := 0
	run(func() error {
		for {
			select {
			case <-done:
				return nil
			default:
			}
			st, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: l.LogEndOffset()})
			if err != nil && !errors.Is(err, ErrCompactConflict) {
				return fmt.Errorf("Compact: %w", err)
			}
			if st.SegmentsWritten > 0 {
				cleans++
			}
		}
	})
	for l.LogEndOffset() < total {
		next := l.LogEndOffset()
		recs := make([]Record, 5)
		for i := range recs {
			recs[i] = Record{Timestamp: next + int64(i), Payload: concPayload(next + int64(i))}
		}
		if _, err := l.Append(0, recs); err != nil {
			t.Fatal(err)
		}
		if next%97 == 0 {
			if err := l.Truncate(l.LogEndOffset() - 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	if cleans == 0 {
		t.Fatal("no clean swapped anything in; the test did not test it")
	}
	// A last clean; then every key's latest record is there.
	end := l.LogEndOffset()
	if _, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: end}); err != nil {
		t.Fatal(err)
	}
	got, err := readView(l)
	if err != nil {
		t.Fatal(err)
	}
	for off := end - 23; off < end; off++ {
		if got[off] != string(concPayload(off)) {
			t.Fatalf("the latest record of key k%d, %d, is gone (%q)", off%23, off, got[off])
		}
	}
	if len(got) > 23+int(end-l.segs.Load().segs[len(l.segs.Load().segs)-1].base) {
		t.Fatalf("%d records left after a clean of 23 keys", len(got))
	}
	t.Logf("%d cleans swapped segments in while %d records were written and read", cleans, end)
}

// followConc reads the log as a streaming consumer from its start, checking
// every record, until done.
func followConc(l *Log, done <-chan struct{}) (err error) {
	r, err := l.NewReader(l.LogStartOffset())
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	prev := int64(-1)
	for {
		ch := l.Changed()
		var out []byte
		var rerr error
		if prev%2 == 0 {
			out, _, rerr = r.ReadFrames(nil, 3*FrameSize(12))
		} else {
			var f Frame
			if f, rerr = r.Next(); rerr == nil {
				out = f.Raw
			}
		}
		switch {
		case rerr == nil:
			for p := 0; p < len(out); {
				f, n, err := DecodeFrame(out[p:], DefaultMaxRecordBytes)
				if err != nil {
					return err
				}
				if err := checkConcFrame(f, prev+1); err != nil {
					return err
				}
				prev = f.Offset
				p += n
			}
		case errors.Is(rerr, io.EOF):
			select {
			case <-ch:
			case <-done:
				return nil
			}
		case errors.Is(rerr, ErrOffsetOutOfRange):
			// Truncated below the reader: start over from there.
			if err := r.Close(); err != nil {
				return err
			}
			from := l.LogEndOffset()
			if r, err = l.NewReader(from); err != nil {
				return err
			}
			prev = from - 1
		default:
			return rerr
		}
	}
}

// TestCompactAborts: a clean that the log changes under, that is
// cancelled, or that cannot write swaps nothing in, leaves no file behind
// and leaves the log as it was and writable; the next clean works. The
// change comes from inside KeyOf, while the clean reads.
func TestCompactAborts(t *testing.T) {
	recs := puts("a=1", "b=1", "a=2", "c=1", "a=3", "b=2", "d=1", "e=1", "a=4", "f=1", "g=1")
	cases := []struct {
		name   string
		during func(t *testing.T, l *Log, fs *faultFS, cancel context.CancelFunc)
		want   error
		closed bool
	}{
		{name: "truncation in the active segment", want: ErrCompactConflict,
			during: func(t *testing.T, l *Log, _ *faultFS, _ context.CancelFunc) {
				if err := l.Truncate(l.LogEndOffset() - 1); err != nil {
					t.Error(err)
				}
			}},
		{name: "retention deletes a segment being cleaned", want: ErrCompactConflict,
			during: func(t *testing.T, l *Log, _ *faultFS, _ context.CancelFunc) {
				if err := l.DeleteBefore(kvPer); err != nil {
					t.Error(err)
				}
			}},
		{name: "context cancelled", want: context.Canceled,
			during: func(_ *testing.T, _ *Log, _ *faultFS, cancel context.CancelFunc) { cancel() }},
		{name: "no space for the cleaned segments", want: errNoSpaceCreate,
			during: func(_ *testing.T, _ *Log, fs *faultFS, _ context.CancelFunc) { fs.noSpaceCreate.Store(true) }},
		{name: "log closed", want: ErrClosed, closed: true,
			during: func(t *testing.T, l *Log, _ *faultFS, _ context.CancelFunc) {
				if err := l.Close(); err != nil {
					t.Error(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			fs := &faultFS{}
			clk := newClock()
			opts := kvOptions(clk.Now)
			opts.FS = fs
			l := openLog(t, dir, opts)
			kvAppend(t, l, 0, clk.Now(), recs)
			before, err := readView(l)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			keyOf := func(p []byte) ([]byte, bool, error) {
				if calls++; calls == 2 {
					tc.during(t, l, fs, cancel)
				}
				return kvKeyOf(p)
			}
			st, err := l.Compact(ctx, CompactOptions{KeyOf: keyOf, UpTo: l.LogEndOffset()})
			fs.noSpaceCreate.Store(false)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Compact: %+v, %v; want %v", st, err, tc.want)
			}
			if left := cleanLeftovers(t, dir); len(left) > 0 {
				t.Fatalf("files left behind: %v", left)
			}
			if tc.closed {
				return
			}
			defer closeLog(t, l)
			if h := l.Healthy(); h != nil {
				t.Fatalf("Healthy() = %v", h)
			}
			after, err := readView(l)
			if err != nil {
				t.Fatal(err)
			}
			for off, p := range after {
				if before[off] != p {
					t.Fatalf("record %d reads %q, was %q", off, p, before[off])
				}
			}
			kvAppend(t, l, 0, clk.Now(), puts("z=1"))
			if st, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: l.LogEndOffset()}); err != nil || st.SegmentsWritten == 0 {
				t.Fatalf("the next Compact: %+v, %v", st, err)
			}
		})
	}
}

// errNoSpaceCreate is what the faultFS wraps in a creation it refuses.
var errNoSpaceCreate = syscall.ENOSPC

// cleanLeftovers lists the .cleaned and .swap files in dir.
func cleanLeftovers(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), cleanedSuffix) || strings.HasSuffix(e.Name(), swapSuffix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestSparseIndexSeek checks seek on compacted segments of many shapes
// against a linear scan: for every offset of the segment, the first record
// at or after it, or the segment's end.
func TestSparseIndexSeek(t *testing.T) {
	shapes := map[string][]int64{
		"empty":               {},
		"dense":               {0, 1, 2, 3, 4, 5},
		"gap at the start":    {3, 4, 5},
		"gap at the end":      {0, 1, 2},
		"gaps in the middle":  {0, 2, 3, 7, 8, 20},
		"one record":          {9},
		"every other":         {1, 3, 5, 7, 9, 11, 13},
		"wide gap":            {0, 1_000_000, 1_000_001, 4_000_000_000},
		"dense after the gap": {5, 6, 7, 8, 9},
	}
	cases := 0
	for name, offs := range shapes {
		t.Run(name, func(t *testing.T) {
			const base = 1000
			end := int64(30)
			if len(offs) > 0 {
				end = max(end, offs[len(offs)-1]+2)
			}
			var store, index []byte
			for _, rel := range offs {
				index = appendIndexEntry(index, uint32(rel), int64(len(store)))
				store = AppendFrame(store, base+rel, 0, []byte("x"))
			}
			s := &segment{base: base, name: storeName(base), store: bytes.NewReader(store), index: bytes.NewReader(index),
				sealed: true, compacted: true, entries: int64(len(offs))}
			s.publish(base+end, int64(len(store)))
			probe := func(rel int64) {
				cases++
				want, wantPos := base+end, int64(len(store))
				for i, r := range offs {
					if r >= rel {
						want, wantPos = base+r, int64(i*FrameSize(1))
						break
					}
				}
				pos, at, err := s.seek(base + rel)
				if err != nil || at != want || pos != wantPos {
					t.Fatalf("seek(%d) = %d, %d, %v; want %d, %d", base+rel, pos, at, err, want, wantPos)
				}
			}
			for rel := int64(0); rel < min(end, 64); rel++ {
				probe(rel)
			}
			for _, rel := range offs {
				probe(rel)
				probe(rel + 1)
				if rel > 0 {
					probe(rel - 1)
				}
			}
		})
	}
	t.Logf("%d seeks over %d index shapes", cases, len(shapes))
}

// replicate copies leader into follower as the broker's fetch does: from
// the follower's log end, one leader epoch per batch of at most maxBytes
// (ReadFramesBefore the next epoch's start), through
// AppendCompactedFrames. Batches of a compacted range have gaps.
func replicate(tb testing.TB, leader, follower *Log, maxBytes int) (batches int) {
	tb.Helper()
	r, err := leader.NewReader(follower.LogEndOffset())
	if err != nil {
		tb.Fatal(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			tb.Fatal(err)
		}
	}()
	pos := r.Offset()
	for pos < leader.LogEndOffset() {
		epoch, before := int32(0), leader.LogEndOffset()
		for _, e := range leader.Epochs() {
			if e.StartOffset > pos {
				before = min(before, e.StartOffset)
				break
			}
			epoch = e.Epoch
		}
		out, next, err := r.ReadFramesBefore(nil, maxBytes, before)
		if err != nil && !errors.Is(err, io.EOF) {
			tb.Fatalf("ReadFramesBefore at %d: %v", pos, err)
		}
		pos = next
		if len(out) == 0 {
			continue
		}
		if _, err := follower.AppendCompactedFrames(epoch, out); err != nil {
			tb.Fatalf("AppendCompactedFrames at %d: %v", follower.LogEndOffset(), err)
		}
		batches++
	}
	return batches
}

// TestAppendCompactedFrames replicates a compacted leader into an empty
// follower with batches of several sizes: the follower holds exactly the
// leader's records at the leader's offsets, every read path agrees, its
// leader epochs have the leader's epochs starting no later than their
// first record, its log end is the leader's, it survives a reopen, and
// its own clean merges the small compacted segments the batches made.
// Refusals: a batch before the log end, offsets that do not increase.
func TestAppendCompactedFrames(t *testing.T) {
	clk := newClock()
	leader := openLog(t, t.TempDir(), kvOptions(clk.Now))
	defer closeLog(t, leader)
	recs := puts("a=1", "b=1", "a=2", "c=1", "a=3", "b=2", "d=1", "a=4", "e=1", "b=3", "f=1", "a=5",
		"g=1", "h=1", "b=4", "a=6", "i=1", "j=1")
	kvAppend(t, leader, 1, clk.Now(), recs[:7])
	kvAppend(t, leader, 3, clk.Now(), recs[7:])
	if _, err := leader.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: leader.LogEndOffset()}); err != nil {
		t.Fatal(err)
	}
	want, err := readView(leader)
	if err != nil {
		t.Fatal(err)
	}
	for _, maxBytes := range []int{1, 3 * FrameSize(4), 1 << 20} {
		t.Run(fmt.Sprintf("maxBytes=%d", maxBytes), func(t *testing.T) {
			dir := t.TempDir()
			opts := kvOptions(clk.Now)
			f := openLog(t, dir, opts)
			batches := replicate(t, leader, f, maxBytes)
			check := func(f *Log) {
				t.Helper()
				checkView(t, f, want)
				if f.LogEndOffset() != leader.LogEndOffset() || f.LogStartOffset() != leader.LogStartOffset() {
					t.Fatalf("follower [%d, %d), leader [%d, %d)", f.LogStartOffset(), f.LogEndOffset(), leader.LogStartOffset(), leader.LogEndOffset())
				}
				le, fe := leader.Epochs(), f.Epochs()
				if len(le) != len(fe) {
					t.Fatalf("follower epochs %v, leader %v", fe, le)
				}
				for i := range le {
					first := slices.Min(slices.DeleteFunc(slices.Collect(maps.Keys(want)), func(o int64) bool { return o < le[i].StartOffset }))
					if fe[i].Epoch != le[i].Epoch || fe[i].StartOffset < le[i].StartOffset || fe[i].StartOffset > first {
						t.Fatalf("follower epochs %v, leader %v (first record of epoch %d: %d)", fe, le, le[i].Epoch, first)
					}
				}
			}
			check(f)
			closeLog(t, f)
			f = openLog(t, dir, opts)
			defer func() { closeLog(t, f) }()
			check(f)
			segs := f.Stats().Segments
			if _, err := f.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: f.LogEndOffset()}); err != nil {
				t.Fatal(err)
			}
			check(f)
			t.Logf("%d batches, %d segments, %d after the follower's clean", batches, segs, f.Stats().Segments)
			if maxBytes == 1 && f.Stats().Segments >= segs {
				t.Fatalf("the follower's clean merged nothing: %d segments, then %d", segs, f.Stats().Segments)
			}
			// Appends as a follower go on after it.
			next := f.LogEndOffset()
			if _, err := f.AppendCompactedFrames(3, AppendFrame(nil, next-1, 0, []byte("x=1"))); !errors.Is(err, ErrNotAtEnd) {
				t.Fatalf("a frame before the log end: %v, want ErrNotAtEnd", err)
			}
			bad := AppendFrame(AppendFrame(nil, next+3, 0, []byte("x=1")), next+3, 0, []byte("y=1"))
			if _, err := f.AppendCompactedFrames(3, bad); !errors.Is(err, ErrBadBatch) {
				t.Fatalf("offsets that do not increase: %v, want ErrBadBatch", err)
			}
			if last, err := f.AppendCompactedFrames(3, AppendFrame(nil, next+2, 0, []byte("x=1"))); err != nil || last != next+2 {
				t.Fatalf("a frame past a gap: %d, %v", last, err)
			}
			if last, err := f.AppendFrames(3, AppendFrame(nil, next+3, 0, []byte("y=1"))); err != nil || last != next+3 {
				t.Fatalf("AppendFrames after it: %d, %v", last, err)
			}
			w := maps.Clone(want)
			w[next+2], w[next+3] = "x=1", "y=1"
			checkView(t, f, w)
		})
	}
}

// TestCompactedSegmentLifecycle: compacted segments go with their
// descriptor when retention, DeleteBefore or Reset removes them, age
// retention reads their newest timestamp, a truncation into the dense
// segment after them leaves them alone, and each state reopens to the
// same content.
func TestCompactedSegmentLifecycle(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	opts := kvOptions(clk.Now)
	l := openLog(t, dir, opts)
	defer func() { closeLog(t, l) }()
	now := clk.Now()
	recs := []kvRec{{p: "a=1", age: 50 * time.Hour}, {p: "a=2", age: 49 * time.Hour}, {p: "b=1", age: 48 * time.Hour}, {p: "a=3", age: 47 * time.Hour},
		{p: "c=1", age: 30 * time.Hour}, {p: "c=2", age: 29 * time.Hour}, {p: "d=1", age: 28 * time.Hour}, {p: "e=1", age: 27 * time.Hour},
		{p: "f=1", age: 2 * time.Hour}, {p: "g=1", age: time.Hour}, {p: "h=1"}, {p: "i=1"}, {p: "j=1"}, {p: "k=1"}}
	kvAppend(t, l, 0, now, recs)
	if st, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: l.LogEndOffset()}); err != nil || st.SegmentsWritten != 2 {
		t.Fatalf("Compact: %+v, %v", st, err)
	}
	descs := func() []string {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(dir, "*"+descSuffix))
		if err != nil {
			t.Fatal(err)
		}
		for i := range m {
			m[i] = filepath.Base(m[i])
		}
		return m
	}
	reopen := func(want kvView) {
		t.Helper()
		checkView(t, l, want)
		closeLog(t, l)
		l = openLog(t, dir, opts)
		checkView(t, l, want)
	}
	want := kvWant(recs, now, 14, 8, 0)
	reopen(want)
	if got := descs(); !slices.Equal(got, []string{descName(0), descName(4)}) {
		t.Fatalf("descriptors %v", got)
	}
	// Age retention: the first compacted segment's newest record is 47 h
	// old, the second's 27 h.
	closeLog(t, l)
	o := opts
	o.RetentionAge = 40 * time.Hour
	l = openLog(t, dir, o)
	if err := l.ApplyRetention(); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 4 || !slices.Equal(descs(), []string{descName(4)}) {
		t.Fatalf("after age retention: start %d, descriptors %v", l.LogStartOffset(), descs())
	}
	for off := range want {
		if off < 4 {
			delete(want, off)
		}
	}
	reopen(want)
	// A truncation into the dense segment after the compacted one.
	if err := l.Truncate(10); err != nil {
		t.Fatal(err)
	}
	for off := range want {
		if off >= 10 {
			delete(want, off)
		}
	}
	reopen(want)
	if !slices.Equal(descs(), []string{descName(4)}) {
		t.Fatalf("after a truncation past it: descriptors %v", descs())
	}
	// DeleteBefore takes the compacted segment whole.
	if err := l.DeleteBefore(8); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 8 || len(descs()) != 0 {
		t.Fatalf("after DeleteBefore(8): start %d, descriptors %v", l.LogStartOffset(), descs())
	}
	for off := range want {
		if off < 8 {
			delete(want, off)
		}
	}
	reopen(want)
	// Reset after another clean.
	kvAppend(t, l, 0, now, puts("f=2", "f=3", "g=2", "z=1", "z=2"))
	if st, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: l.LogEndOffset()}); err != nil || st.SegmentsWritten == 0 {
		t.Fatalf("Compact: %+v, %v", st, err)
	}
	if err := l.Reset(100); err != nil {
		t.Fatal(err)
	}
	if len(descs()) != 0 || l.LogStartOffset() != 100 || l.LogEndOffset() != 100 {
		t.Fatalf("after Reset(100): [%d, %d), descriptors %v", l.LogStartOffset(), l.LogEndOffset(), descs())
	}
	reopen(kvView{})
}
