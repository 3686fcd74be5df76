package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// The recovery invariants of DESIGN.md sections 7 and 8, checked on a log
// directory after damage (damage_test.go, fuzz_recover_test.go). Each is
// named by its letter in the checks below and in failure reports:
//
//	a  Open succeeds: damage is never a reason to refuse to open.
//	b  No record is ever returned with a wrong payload, offset or timestamp
//	   (Read, Reader.Next, Reader.ReadFrames), and every error of a read in
//	   [LogStartOffset, LogEndOffset) is a *CorruptError inside the range.
//	c  Every record the damage did not touch is readable (Read and Reader).
//	d  Every durable record is readable or reported corrupt (a
//	   *CorruptError naming its segment): never silently gone, its offset
//	   never reused (LogEndOffset >= the durable count).
//	e  A durable record reported corrupt shows in Healthy (ErrCorrupt) and
//	   Stats().CorruptRecords.
//	f  Appends after recovery get offset LogEndOffset and are readable, and
//	   everything readable before still is.
//	g  A second crash and reopen changes nothing: same readable and corrupt
//	   offsets, same LogEndOffset, the new appends kept.
//	h  After recovery the active store has no bytes past its last record,
//	   when that record is readable (a torn tail is cut before appending).
//
// And checks beyond the brief's list, reported under their own names:
//
//	epochs   every leader-epoch entry the log reports is one it wrote (the
//	         checkpoint answers follower truncation: a wrong entry there
//	         is a wrong answer, as a wrong record is);
//	handles  Close leaves no file or mapping of the FS open;
//	mmap     no read through a mapping past its file's end (SIGBUS);
//	panic    the engine panicked.

// recTS is the timestamp of the record at off.
func recTS(off int64) int64 { return 1_700_000_000_000 + off }

// recFrame is the frame of the record at off as the engine writes it.
func recFrame(off int64) []byte { return AppendFrame(nil, off, recTS(off), payload(off)) }

// recRecords are the records [from, from+n) as Append takes them.
func recRecords(from int64, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		off := from + int64(i)
		recs[i] = Record{Timestamp: recTS(off), Payload: payload(off)}
	}
	return recs
}

// frameLoc is where a record's frame lies in its store.
type frameLoc struct{ off, start, end int64 }

// recModel is what a test knows of a log directory before it was damaged:
// records [0, n) of payload(off) and recTS(off), [0, durable) of them
// fsynced, and where each frame lies.
type recModel struct {
	dir      string
	opts     Options // FS and Logger are set per case
	n        int64
	durable  int64
	epoch    int32 // the latest leader epoch appended with
	epochs   []EpochEntry
	pristine memImage
	frames   map[string][]frameLoc // store path -> its frames in order
}

// newRecModel finds every record's frame in img's stores; each of [0, n)
// must be there exactly once.
func newRecModel(tb testing.TB, img memImage, dir string, opts Options, n, durable int64, epochs []EpochEntry) *recModel {
	tb.Helper()
	m := &recModel{dir: dir, opts: opts, n: n, durable: durable, epochs: epochs, pristine: img,
		frames: map[string][]frameLoc{}}
	if len(epochs) > 0 {
		m.epoch = epochs[len(epochs)-1].Epoch
	}
	seen := map[int64]bool{}
	for _, name := range img.names(dir) {
		if !strings.HasSuffix(name, storeSuffix) {
			continue
		}
		p := filepath.Join(dir, name)
		b := img.files[p]
		for pos := 0; pos < len(b); {
			f, size, err := DecodeFrame(b[pos:], DefaultMaxRecordBytes)
			if err != nil {
				tb.Fatalf("model: %s at %d: %v", name, pos, err)
			}
			if seen[f.Offset] || !bytes.Equal(f.Raw, recFrame(f.Offset)) {
				tb.Fatalf("model: %s at %d: unexpected frame for offset %d", name, pos, f.Offset)
			}
			seen[f.Offset] = true
			m.frames[p] = append(m.frames[p], frameLoc{off: f.Offset, start: int64(pos), end: int64(pos + size)})
			pos += size
		}
	}
	if int64(len(seen)) != n {
		tb.Fatalf("model: %d records in the stores, want %d", len(seen), n)
	}
	return m
}

// lastStore is the path of the store with the highest base: the active
// segment's.
func (m *recModel) lastStore() string {
	last := ""
	for p := range m.frames {
		last = max(last, p) // zero-padded names sort by base
	}
	return last
}

// touched returns the records whose frame img changed: a byte of it differs
// from the pristine store, or the store now ends before the frame does.
// Damage to anything but a store touches no record.
func (m *recModel) touched(img memImage) map[int64]bool {
	t := map[int64]bool{}
	for p, locs := range m.frames {
		old, now := m.pristine.files[p], img.files[p]
		for _, f := range locs {
			if int64(len(now)) < f.end || !bytes.Equal(now[f.start:f.end], old[f.start:f.end]) {
				t[f.off] = true
			}
		}
	}
	return t
}

// violation is one broken invariant in one case.
type violation struct {
	inv string // a..h, or an extra check's name
	msg string
}

// recoveryHost is where a case runs: the memFS, or the real file system.
type recoveryHost interface {
	// load makes img a log directory and returns its FS and path, and how
	// to remove it.
	load(tb testing.TB, img memImage) (FS, string, func())
	// image is what a process crash would leave of the directory now.
	image(tb testing.TB, fsys FS, dir string) memImage
}

// memHost runs cases on a fresh memFS each.
type memHost struct{ dir string }

func (h memHost) load(_ testing.TB, img memImage) (FS, string, func()) {
	return newMemFS(img), h.dir, func() {}
}

func (h memHost) image(_ testing.TB, fsys FS, _ string) memImage { return fsys.(*memFS).crashImage() }

// osHost runs cases in directories under root with OSFS and real mmap.
type osHost struct {
	root, memDir string
	n            *int
}

func (h osHost) load(tb testing.TB, img memImage) (FS, string, func()) {
	tb.Helper()
	*h.n++
	d := filepath.Join(h.root, fmt.Sprint(*h.n))
	if err := os.Mkdir(d, 0o755); err != nil {
		tb.Fatal(err)
	}
	materialize(tb, img, h.memDir, d)
	return OSFS{}, d, func() {
		if err := os.RemoveAll(d); err != nil {
			tb.Error(err)
		}
	}
}

func (h osHost) image(tb testing.TB, _ FS, dir string) memImage {
	tb.Helper()
	return imageFromDir(tb, dir, h.memDir)
}

// recChecker checks one damaged directory against its model.
type recChecker struct {
	m           *recModel
	touched     map[int64]bool
	firstTouch  int64
	tailExempt  int64 // records from here may go as a torn tail (see checkRecovery)
	vs          []violation
	appendedEnd int64 // records up to here may exist once (f) appended
}

func (c *recChecker) fail(inv, format string, args ...any) {
	c.vs = append(c.vs, violation{inv: inv, msg: fmt.Sprintf(format, args...)})
}

// checkRecovery opens img as the model's directory on h and checks every
// invariant, returning what broke.
func checkRecovery(tb testing.TB, h recoveryHost, m *recModel, img memImage) []violation {
	c := &recChecker{m: m, touched: m.touched(img), firstTouch: m.n, tailExempt: m.n, appendedEnd: m.n}
	for off := range c.touched {
		c.firstTouch = min(c.firstTouch, off)
	}
	// With the recovery point damaged too (only multi-file damage, as the
	// fuzzer makes, does that), a damaged end of the active store is
	// indistinguishable from a torn tail: the records from the first
	// touched one in the last store may go. Nowhere else.
	rp := filepath.Join(m.dir, recoveryPointFileName)
	if !bytes.Equal(img.files[rp], m.pristine.files[rp]) {
		if last := m.lastStore(); last != "" {
			for _, f := range m.frames[last] {
				if c.touched[f.off] {
					c.tailExempt = min(c.tailExempt, f.off)
				}
			}
		}
	}
	func() {
		defer func() {
			if r := recover(); r != nil {
				st := strings.Split(string(debug.Stack()), "\n")
				c.fail("panic", "%v (%s)", r, strings.Join(st[min(len(st), 7):min(len(st), 11)], " "))
			}
		}()
		c.run(tb, h, img)
	}()
	return c.vs
}

func (c *recChecker) open(fsys FS, dir string) (*Log, error) {
	o := c.m.opts
	o.FS, o.Logger = fsys, zap.NewNop()
	return Open(dir, o)
}

// closeLog closes l and checks the FS let go of everything.
func (c *recChecker) closeLog(l *Log, fsys FS) {
	if err := l.Close(); err != nil {
		c.fail("close", "Close: %v", err)
	}
	if mfs, ok := fsys.(*memFS); ok {
		if n := mfs.openHandles(); n != 0 {
			c.fail("handles", "%d files or mappings left open after Close", n)
		}
		if n := mfs.sigbusCount(); n != 0 {
			c.fail("mmap", "%d reads through a mapping past its file's end", n)
		}
	}
}

func (c *recChecker) run(tb testing.TB, h recoveryHost, img memImage) {
	fsys, dir, cleanup := h.load(tb, img)
	defer cleanup()
	l, err := c.open(fsys, dir)
	if err != nil {
		c.fail("a", "Open: %v", err)
		return
	}
	open := true
	defer func() {
		if open {
			c.closeLog(l, fsys)
		}
	}()
	m := c.m
	start, end := l.LogStartOffset(), l.LogEndOffset()
	if start != 0 {
		c.fail("d", "LogStartOffset %d: records below it silently gone", start)
	}
	if end < min(m.durable, c.tailExempt) {
		c.fail("d", "LogEndOffset %d below the %d durable records: offsets %d.. gone and to be reused", end, m.durable, end)
	}
	c.checkEpochs(l)

	s := c.scanRead(l)
	c.checkUntouched(s.ok, s.why, "Read")
	c.checkDurable(l, s)
	rd := c.scanReader(l, start)
	c.checkUntouched(rd, nil, "the Reader")
	c.scanReadFrames(l, start)
	c.checkTail(fsys, dir, s)

	// f: appends after recovery.
	base0 := l.LogEndOffset()
	epoch := max(m.epoch, l.LatestEpoch())
	c.appendedEnd = max(m.n, base0+3)
	if base, err := l.Append(epoch, recRecords(base0, 2)); err != nil {
		c.fail("f", "Append after recovery at %d: %v", base0, err)
		return
	} else if base != base0 {
		c.fail("f", "Append after recovery got offset %d, LogEndOffset was %d", base, base0)
		return
	}
	if base, err := l.Append(epoch, recRecords(base0+2, 1)); err != nil || base != base0+2 {
		c.fail("f", "second Append after recovery: offset %d, %v (want %d)", base, err, base0+2)
		return
	}
	s2 := c.scanRead(l)
	for off := base0; off < base0+3; off++ {
		if !s2.ok[off] {
			c.fail("f", "appended record %d not readable: %s", off, s2.why[off])
		}
	}
	if lost := setMinus(s.ok, s2.ok); len(lost) > 0 {
		c.fail("f", "records %v readable before the appends are not after", lost)
	}
	if got := c.scanReader(l, base0); !got[base0] || !got[base0+1] || !got[base0+2] {
		c.fail("f", "a Reader from %d does not return the appended records (got %v)", base0, slices.Sorted(maps.Keys(got)))
	}

	// g: crash now, reopen, nothing changes.
	img2 := h.image(tb, fsys, dir)
	open = false
	c.closeLog(l, fsys)
	fsys3, dir3, cleanup3 := h.load(tb, img2)
	defer cleanup3()
	l3, err := c.open(fsys3, dir3)
	if err != nil {
		c.fail("g", "reopen after a crash following the appends: %v", err)
		return
	}
	defer c.closeLog(l3, fsys3)
	s3 := c.scanRead(l3)
	if s3.end != s2.end || s3.start != s2.start {
		c.fail("g", "range [%d, %d) became [%d, %d) on the second reopen", s2.start, s2.end, s3.start, s3.end)
	}
	if lost, gained := setMinus(s2.ok, s3.ok), setMinus(s3.ok, s2.ok); len(lost)+len(gained) > 0 {
		c.fail("g", "second reopen: readable records lost %v (first: %s), gained %v", lost, firstWhy(s3, lost), gained)
	}
	if lost, gained := setMinus(s2.corrupt, s3.corrupt), setMinus(s3.corrupt, s2.corrupt); len(lost)+len(gained) > 0 {
		c.fail("g", "second reopen: corrupt offsets were %v, now %v", slices.Sorted(maps.Keys(s2.corrupt)), slices.Sorted(maps.Keys(s3.corrupt)))
	}
}

// readScan is what Read said of every offset in [start, end).
type readScan struct {
	start, end int64
	ok         map[int64]bool   // the right record
	corrupt    map[int64]bool   // a *CorruptError
	why        map[int64]string // why an offset is not ok
}

func firstWhy(s readScan, offs []int64) string {
	if len(offs) == 0 {
		return ""
	}
	if w, ok := s.why[offs[0]]; ok {
		return w
	}
	return fmt.Sprintf("outside [%d, %d)", s.start, s.end)
}

// good reports whether f is the record appended at its offset.
func (c *recChecker) good(f Frame) bool {
	return f.Offset >= 0 && f.Offset < c.appendedEnd && f.Timestamp == recTS(f.Offset) &&
		bytes.Equal(f.Payload, payload(f.Offset))
}

// scanRead reads every offset of the log with Read, checking (b).
func (c *recChecker) scanRead(l *Log) readScan {
	s := readScan{start: l.LogStartOffset(), end: l.LogEndOffset(),
		ok: map[int64]bool{}, corrupt: map[int64]bool{}, why: map[int64]string{}}
	for off := s.start; off < s.end; off++ {
		f, err := l.Read(off)
		if err == nil {
			if f.Offset != off || !c.good(f) {
				c.fail("b", "Read(%d) returned offset %d, timestamp %d, payload %q", off, f.Offset, f.Timestamp, f.Payload)
				s.why[off] = "wrong record"
				continue
			}
			s.ok[off] = true
			continue
		}
		s.why[off] = err.Error()
		var ce *CorruptError
		if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) {
			inv := "b"
			if off < c.m.durable {
				inv = "d"
			}
			c.fail(inv, "Read(%d) in [%d, %d): neither a record nor a *CorruptError: %v", off, s.start, s.end, err)
			continue
		}
		s.corrupt[off] = true
		seg := filepath.Base(ce.Segment)
		if _, ok := parseBase(seg, storeSuffix); !ok || !strings.HasSuffix(seg, storeSuffix) {
			inv := "b"
			if off < c.m.durable {
				inv = "d"
			}
			c.fail(inv, "Read(%d): the corruption names no store file (Segment %q): %v", off, ce.Segment, err)
		}
	}
	return s
}

// checkUntouched is (c): every untouched record is in got. Past the
// durable records and the first touched one, a suffix may go as a torn
// tail: it was never promised.
func (c *recChecker) checkUntouched(got map[int64]bool, why map[int64]string, by string) {
	var missing []int64
	for off := int64(0); off < c.m.n; off++ {
		if c.touched[off] || got[off] || off >= c.m.durable && off >= c.firstTouch || off >= c.tailExempt {
			continue
		}
		missing = append(missing, off)
	}
	if len(missing) > 0 {
		reason := "not returned"
		if w, ok := why[missing[0]]; ok {
			reason = w
		} else if why != nil {
			reason = "out of range"
		}
		c.fail("c", "untouched records %s not readable by %s (first: %s)", offRanges(missing), by, reason)
	}
}

// checkDurable is (d) and (e).
func (c *recChecker) checkDurable(l *Log, s readScan) {
	var gone, corrupt []int64
	for off := int64(0); off < c.m.durable; off++ {
		switch {
		case s.ok[off]:
		case s.corrupt[off]:
			corrupt = append(corrupt, off)
		case off >= c.tailExempt:
		default:
			gone = append(gone, off)
		}
	}
	if len(gone) > 0 {
		c.fail("d", "durable records %s neither readable nor reported corrupt (log [%d, %d), first: %s)",
			offRanges(gone), s.start, s.end, firstWhy(s, gone))
	}
	if len(corrupt) > 0 {
		if h := l.Healthy(); !errors.Is(h, ErrCorrupt) {
			c.fail("e", "durable records %s reported corrupt, Healthy() = %v", offRanges(corrupt), h)
		}
		if st := l.Stats(); st.CorruptRecords == 0 {
			c.fail("e", "durable records %s reported corrupt, Stats().CorruptRecords = 0", offRanges(corrupt))
		}
	}
}

// scanReader reads from start to io.EOF with a Reader, checking (b), and
// returns the offsets it returned.
func (c *recChecker) scanReader(l *Log, start int64) map[int64]bool {
	got := map[int64]bool{}
	end := l.LogEndOffset()
	r, err := l.NewReader(start)
	if err != nil {
		c.fail("b", "NewReader(%d): %v", start, err)
		return got
	}
	defer func() {
		if err := r.Close(); err != nil {
			c.fail("close", "Reader.Close: %v", err)
		}
	}()
	prev := start - 1
	for i := int64(0); i <= end-start+16; i++ {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				c.fail("b", "Reader.Next after %d: %v", prev, err)
				return got
			}
			if ce.Offset < start || ce.Offset >= end {
				c.fail("b", "Reader.Next: corruption at offset %d outside [%d, %d): %v", ce.Offset, start, end, err)
			}
			continue
		}
		switch {
		case !c.good(f):
			c.fail("b", "Reader.Next returned offset %d, timestamp %d, payload %q", f.Offset, f.Timestamp, f.Payload)
		case f.Offset <= prev:
			c.fail("b", "Reader.Next went from offset %d back to %d", prev, f.Offset)
		case f.Offset >= end:
			c.fail("b", "Reader.Next returned offset %d past LogEndOffset %d", f.Offset, end)
		default:
			got[f.Offset] = true
		}
		prev = f.Offset
	}
	c.fail("b", "Reader.Next never reached io.EOF in [%d, %d)", start, end)
	return got
}

// scanReadFrames reads from start to io.EOF with Reader.ReadFrames,
// checking (b) on every frame of every batch.
func (c *recChecker) scanReadFrames(l *Log, start int64) {
	end := l.LogEndOffset()
	r, err := l.NewReader(start)
	if err != nil {
		c.fail("b", "NewReader(%d): %v", start, err)
		return
	}
	defer func() {
		if err := r.Close(); err != nil {
			c.fail("close", "Reader.Close: %v", err)
		}
	}()
	for i := int64(0); i <= end-start+16; i++ {
		at := r.Offset()
		out, next, err := r.ReadFrames(nil, 2*len(recFrame(0)))
		want := at
		for p := 0; p < len(out); {
			f, n, derr := DecodeFrame(out[p:], DefaultMaxRecordBytes)
			if derr != nil {
				c.fail("b", "ReadFrames from %d: batch byte %d does not decode: %v", at, p, derr)
				return
			}
			if f.Offset != want || !c.good(f) {
				c.fail("b", "ReadFrames from %d returned offset %d (want %d), timestamp %d, payload %q", at, f.Offset, want, f.Timestamp, f.Payload)
				return
			}
			want++
			p += n
		}
		if len(out) > 0 && next != want {
			c.fail("b", "ReadFrames from %d returned frames up to %d but next %d", at, want-1, next)
		}
		switch {
		case errors.Is(err, io.EOF):
			return
		case err != nil:
			var ce *CorruptError
			if !errors.As(err, &ce) {
				c.fail("b", "ReadFrames from %d: %v", at, err)
				return
			}
			if ce.Offset < start || ce.Offset >= end {
				c.fail("b", "ReadFrames: corruption at offset %d outside [%d, %d): %v", ce.Offset, start, end, err)
			}
		}
	}
	c.fail("b", "ReadFrames never reached io.EOF in [%d, %d)", start, end)
}

// checkTail is (h): the active store ends where its last record does. A
// torn tail is cut; damaged durable records are kept in place, so when the
// active segment reports any, bytes may legitimately follow its last
// readable record (a copy of it can even sit inside the damage) and the
// check does not apply.
func (c *recChecker) checkTail(fsys FS, dir string, s readScan) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		c.fail("h", "ReadDir: %v", err)
		return
	}
	active := int64(-1)
	for _, e := range ents {
		if b, ok := parseBase(e.Name(), storeSuffix); ok && strings.HasSuffix(e.Name(), storeSuffix) {
			active = max(active, b)
		}
	}
	if active < 0 {
		c.fail("h", "no store file after Open")
		return
	}
	for off := range s.corrupt {
		if off >= active {
			return
		}
	}
	name := storeName(active)
	b, err := readAllFS(fsys, filepath.Join(dir, name))
	if err != nil {
		c.fail("h", "reading %s: %v", name, err)
		return
	}
	last := s.end - 1
	switch {
	case s.end <= active:
		if len(b) != 0 {
			c.fail("h", "active store %s holds no record (log end %d) but %d bytes", name, s.end, len(b))
		}
	case s.ok[last]:
		fr := recFrame(last)
		i := bytes.LastIndex(b, fr)
		if i < 0 {
			c.fail("h", "last record %d reads but its frame is not in the active store %s", last, name)
		} else if tail := len(b) - (i + len(fr)); tail != 0 {
			c.fail("h", "active store %s: %d bytes past the end of its last record %d", name, tail, last)
		}
	}
}

// checkEpochs is the extra check "epochs": no leader-epoch entry the log
// never wrote.
func (c *recChecker) checkEpochs(l *Log) {
	for _, e := range l.Epochs() {
		if !slices.Contains(c.m.epochs, e) {
			c.fail("epochs", "Epochs() holds %+v, never written (written: %v)", e, c.m.epochs)
			return
		}
	}
}

func readAllFS(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.Join(err, f.Close())
	}
	return b[:n], f.Close()
}

// setMinus is the sorted offsets in a but not in b.
func setMinus(a, b map[int64]bool) []int64 {
	var out []int64
	for off := range a {
		if !b[off] {
			out = append(out, off)
		}
	}
	slices.Sort(out)
	return out
}

// offRanges renders sorted offsets compactly: "3-7,9".
func offRanges(offs []int64) string {
	var b strings.Builder
	for i := 0; i < len(offs); {
		j := i
		for j+1 < len(offs) && offs[j+1] == offs[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		if j > i {
			fmt.Fprintf(&b, "%d-%d", offs[i], offs[j])
		} else {
			fmt.Fprintf(&b, "%d", offs[i])
		}
		i = j + 1
	}
	return b.String()
}

// fixedNow is a clock for the suites: records' timestamps (recTS) are a
// little before it, so no segment rolls by age.
func fixedNow() time.Time { return time.UnixMilli(recTS(0) + 3_600_000) }
