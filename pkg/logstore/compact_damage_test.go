package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

const cdDir = "/strata/cd"

// compactedDamageLog builds, on a memFS, a closed log whose first segments
// are compacted (gaps inside and at their ends, one merged from several),
// followed by a dense sealed segment and the active one, and returns its
// image, its content and where each record's frame lies.
func compactedDamageLog(tb testing.TB) (memImage, kvView, map[string][]frameLoc, Options) {
	tb.Helper()
	now := time.UnixMilli(1_700_000_000_000)
	mfs := newMemFS(memImage{dirs: []string{cdDir}})
	opts := kvOptions(func() time.Time { return now })
	o := opts
	o.FS, o.Logger = mfs, zap.NewNop()
	l, err := Open(cdDir, o)
	if err != nil {
		tb.Fatal(err)
	}
	// Segments of kvPer records; the clean merges the first two (records
	// 2, 3, 4 stay), leaves 8, 10, 11 of the third and 13, 14, 15 of the
	// fourth, and the fifth as it is.
	kvAppend(tb, l, 1, now, puts("a=1", "b=1", "x=1", "c=1", "a=2", "b=2", "d=1", "e=1",
		"f=1", "g=1", "g=2", "h=1", "i=1", "j=1", "k=1", "i=2", "b=3", "d=2", "e=2", "y=1", "v=1"))
	if st, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: 20}); err != nil || st.SegmentsWritten != 3 {
		tb.Fatalf("Compact: %+v, %v", st, err)
	}
	kvAppend(tb, l, 2, now, puts("o=1", "p=1"))
	view, err := readView(l)
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	img := mfs.crashImage()
	frames := map[string][]frameLoc{}
	compacted := 0
	for _, name := range img.names(cdDir) {
		if !strings.HasSuffix(name, descSuffix) {
			continue
		}
		compacted++
		base, _ := parseBase(name, descSuffix)
		p := filepath.Join(cdDir, storeName(base))
		b := img.files[p]
		for pos := 0; pos < len(b); {
			f, n, err := DecodeFrame(b[pos:], DefaultMaxRecordBytes)
			if err != nil {
				tb.Fatalf("%s at %d: %v", p, pos, err)
			}
			frames[p] = append(frames[p], frameLoc{off: f.Offset, start: int64(pos), end: int64(pos + n)})
			pos += n
		}
	}
	if compacted < 2 {
		tb.Fatalf("%d compacted segments; the test needs two", compacted)
	}
	return img, view, frames, opts
}

// TestCompactedDamageEveryByte damages the files of compacted segments
// exhaustively, as TestDamageEveryByte does dense ones: every byte of each
// compacted store, index and descriptor × {truncate, flip a bit, zero to
// the end} and appended garbage. A compacted segment was fsynced before it
// was swapped in, so all damage to it is corruption, and the invariants
// are those of invariants_test.go: Open succeeds; no read returns a wrong
// record, and every read error is a *CorruptError in the log's range;
// every record whose frame bytes are intact is readable; every record is
// readable or inside a range reported corrupt (never silently gone, the
// log end never lower); appends work; a reopen changes nothing; no file or
// mapping is left open.
func TestCompactedDamageEveryByte(t *testing.T) {
	img, view, frames, opts := compactedDamageLog(t)
	var ds []damage
	for _, d := range damages(img, cdDir, true) {
		name := filepath.Base(d.path)
		if base, ok := segmentFileBase(name); ok && img.files[filepath.Join(cdDir, descName(base))] != nil {
			ds = append(ds, d)
		}
	}
	type group struct {
		cases    int
		examples []string
	}
	groups := map[string]*group{}
	cases := 0
	report := func(d damage, vs []violation) {
		seen := map[string]bool{}
		for _, v := range vs {
			if seen[v.inv] {
				continue
			}
			seen[v.inv] = true
			key := v.inv + "|" + d.kind.String() + "|" + filepath.Ext(d.path)
			g := groups[key]
			if g == nil {
				g = &group{}
				groups[key] = g
			}
			g.cases++
			if len(g.examples) < 2 {
				g.examples = append(g.examples, d.String()+": "+v.msg)
			}
		}
	}
	report(damage{kind: damageGarbage, path: "(none)"}, checkCompactedDamage(img, img, view, frames, opts))
	for _, d := range ds {
		dimg, changed := d.apply(img)
		if !changed {
			continue
		}
		cases++
		report(d, checkCompactedDamage(img, dimg, view, frames, opts))
	}
	t.Logf("%d damage cases over the %d files of the compacted segments", cases, len(frames)*3)
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		g := groups[key]
		p := strings.SplitN(key, "|", 3)
		t.Errorf("invariant %s broken by %s of a %s file: %d cases\n\te.g. %s", p[0], p[1], p[2], g.cases, strings.Join(g.examples, "\n\t     "))
	}
}

// checkCompactedDamage opens a damaged image of the compacted log and
// checks the invariants of TestCompactedDamageEveryByte.
func checkCompactedDamage(pristine, img memImage, view kvView, frames map[string][]frameLoc, opts Options) (vs []violation) {
	fail := func(inv, format string, args ...any) {
		vs = append(vs, violation{inv: inv, msg: fmt.Sprintf(format, args...)})
	}
	intact := map[int64]bool{}
	for p, locs := range frames {
		old, now := pristine.files[p], img.files[p]
		for _, f := range locs {
			if int64(len(now)) >= f.end && bytes.Equal(now[f.start:f.end], old[f.start:f.end]) {
				intact[f.off] = true
			}
		}
	}
	inCompacted := map[int64]bool{}
	for _, locs := range frames {
		for _, f := range locs {
			inCompacted[f.off] = true
		}
	}
	for off := range view {
		if !inCompacted[off] {
			intact[off] = true // the dense segments are not damaged
		}
	}
	o := opts
	mfs := newMemFS(img)
	o.FS, o.Logger = mfs, zap.NewNop()
	l, err := Open(cdDir, o)
	if err != nil {
		fail("a", "Open: %v", err)
		return vs
	}
	closeLog := func(l *Log, mfs *memFS) {
		if err := l.Close(); err != nil {
			fail("close", "Close: %v", err)
		}
		if n := mfs.openHandles(); n != 0 {
			fail("handles", "%d files or mappings left open after Close", n)
		}
		if n := mfs.sigbusCount(); n != 0 {
			fail("mmap", "%d reads through a mapping past its file's end", n)
		}
	}
	end := l.LogEndOffset()
	if start := l.LogStartOffset(); start != 0 {
		fail("d", "LogStartOffset %d", start)
	}
	if want := slices.Max(slices.Collect(maps.Keys(view))) + 1; end < want {
		fail("d", "LogEndOffset %d below %d", end, want)
	}
	scan := func(l *Log) (got map[int64]bool, corrupt [][2]int64) {
		got = map[int64]bool{}
		r, err := l.NewReader(0)
		if err != nil {
			fail("b", "NewReader(0): %v", err)
			return got, nil
		}
		defer func() {
			if err := r.Close(); err != nil {
				fail("close", "Reader.Close: %v", err)
			}
		}()
		prev := int64(-1)
		for i := int64(0); i <= end+8; i++ {
			f, err := r.Next()
			if errors.Is(err, io.EOF) {
				return got, corrupt
			}
			var ce *CorruptError
			switch {
			case errors.As(err, &ce):
				if ce.Offset < 0 || ce.Offset >= end {
					fail("b", "Reader: corruption at %d outside [0, %d): %v", ce.Offset, end, err)
				}
				corrupt = append(corrupt, [2]int64{ce.Offset, ce.next()})
			case err != nil:
				fail("b", "Reader.Next after %d: %v", prev, err)
				return got, corrupt
			case f.Offset <= prev || view[f.Offset] != string(f.Payload) && !strings.HasPrefix(string(f.Payload), "post"):
				fail("b", "Reader.Next returned offset %d (after %d), payload %q", f.Offset, prev, f.Payload)
			default:
				got[f.Offset], prev = true, f.Offset
			}
		}
		fail("b", "the Reader never reached io.EOF")
		return got, corrupt
	}
	got, corrupt := scan(l)
	covered := func(off int64) bool {
		for _, c := range corrupt {
			if off >= c[0] && off < c[1] {
				return true
			}
		}
		return false
	}
	for off := range view {
		switch {
		case got[off]:
		case intact[off]:
			fail("c", "intact record %d not returned by the Reader", off)
		case !covered(off):
			fail("d", "record %d neither returned nor inside a corruption reported (%v)", off, corrupt)
		}
	}
	for off := int64(0); off < end; off++ {
		f, err := l.Read(off)
		var ce *CorruptError
		switch {
		case err == nil:
			if f.Offset < off || view[f.Offset] != string(f.Payload) {
				fail("b", "Read(%d) returned offset %d, payload %q", off, f.Offset, f.Payload)
			}
			if _, ok := view[off]; ok && f.Offset != off && intact[off] {
				fail("c", "Read(%d) of an intact record returned %d", off, f.Offset)
			}
		case errors.As(err, &ce):
			if _, ok := view[off]; ok && intact[off] {
				fail("c", "Read(%d) of an intact record: %v", off, err)
			}
		case errors.Is(err, io.EOF):
		default:
			fail("b", "Read(%d): %v", off, err)
		}
	}
	if len(corrupt) > 0 && !errors.Is(l.Healthy(), ErrCorrupt) {
		fail("e", "corruption read, Healthy() = %v", l.Healthy())
	}
	if _, err := l.Append(2, []Record{{Payload: []byte("post=1")}}); err != nil {
		fail("f", "Append: %v", err)
		closeLog(l, mfs)
		return vs
	}
	got2, _ := scan(l)
	if !got2[end] {
		fail("f", "the appended record %d is not read", end)
	}
	img2 := mfs.crashImage()
	closeLog(l, mfs)
	mfs2 := newMemFS(img2)
	o.FS = mfs2
	l2, err := Open(cdDir, o)
	if err != nil {
		fail("g", "reopen: %v", err)
		return vs
	}
	end++
	got3, _ := scan(l2)
	if lost, gained := setMinus(got2, got3), setMinus(got3, got2); len(lost)+len(gained) > 0 {
		fail("g", "reopen: records lost %v, gained %v", lost, gained)
	}
	closeLog(l2, mfs2)
	return vs
}
