package logstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// cpVersion is one record the crash-point workload wrote at an offset.
// The op counts say in which crash states (the state after the first k
// recorded file operations) it may or must be there.
type cpVersion struct {
	off     int64
	epoch   int32
	ts      int64
	payload []byte
	written int // ops before its Append began: it may exist in states k > written
	durable int // ops when the Append (SyncAlways), Sync or Close making it durable returned
	removed int // ops before the Truncate or DeleteBefore removing it began
	gone    int // ops when the Truncate removing it returned: never again from there
}

// cpStep is one call of the workload and the file operations it made.
type cpStep struct {
	name     string
	from, to int
}

// cpWorkload runs a log on a recording memFS and keeps, for every offset,
// what was written there and what was promised about it.
type cpWorkload struct {
	tb       testing.TB
	mfs      *memFS
	opts     Options
	l        *Log
	versions map[int64][]*cpVersion
	steps    []cpStep
}

const cpDir = "/strata/cp"

func newCPWorkload(tb testing.TB, policy SyncPolicy) *cpWorkload {
	frame := int64(FrameSize(len(cpPayload(0, 0))))
	return &cpWorkload{
		tb:       tb,
		mfs:      newMemFS(memImage{dirs: []string{cpDir}}),
		opts:     Options{MaxSegmentBytes: 5 * frame, MaxIndexBytes: 8 * indexEntrySize, Sync: policy, Now: fixedNow},
		versions: map[int64][]*cpVersion{},
	}
}

func cpPayload(off int64, ver int) []byte { return []byte(fmt.Sprintf("cp-%06d-v%d", off, ver)) }

// step runs fn as one named step, recording the file operations it made.
func (w *cpWorkload) step(name string, fn func(from int)) {
	w.tb.Helper()
	from := w.mfs.opCount()
	fn(from)
	w.steps = append(w.steps, cpStep{name: name, from: from, to: w.mfs.opCount()})
}

// live is the version at off not removed yet, or nil.
func (w *cpWorkload) live(off int64) *cpVersion {
	vs := w.versions[off]
	if len(vs) > 0 && vs[len(vs)-1].removed == math.MaxInt {
		return vs[len(vs)-1]
	}
	return nil
}

func (w *cpWorkload) open() {
	w.step("open", func(int) {
		o := w.opts
		o.FS, o.Logger = w.mfs, zap.NewNop()
		l, err := Open(cpDir, o)
		if err != nil {
			w.tb.Fatalf("workload Open: %v", err)
		}
		w.l = l
	})
}

// makeDurable marks every live record not yet durable as durable at to.
func (w *cpWorkload) makeDurable(to int) {
	for off := range w.versions {
		if v := w.live(off); v != nil && v.durable == math.MaxInt {
			v.durable = to
		}
	}
}

func (w *cpWorkload) close() {
	w.step("close", func(int) {
		if err := w.l.Close(); err != nil {
			w.tb.Fatalf("workload Close: %v", err)
		}
		w.l = nil
	})
	w.makeDurable(w.steps[len(w.steps)-1].to)
}

func (w *cpWorkload) append(epoch int32, n int) {
	base := w.l.LogEndOffset()
	var vs []*cpVersion
	w.step(fmt.Sprintf("append %d records at %d, epoch %d", n, base, epoch), func(from int) {
		recs := make([]Record, n)
		for i := range recs {
			off := base + int64(i)
			ver := len(w.versions[off])
			v := &cpVersion{off: off, epoch: epoch, ts: recTS(off) + int64(ver)*1_000_000, payload: cpPayload(off, ver),
				written: from, durable: math.MaxInt, removed: math.MaxInt, gone: math.MaxInt}
			vs = append(vs, v)
			recs[i] = Record{Timestamp: v.ts, Payload: v.payload}
		}
		got, err := w.l.Append(epoch, recs)
		if err != nil || got != base {
			w.tb.Fatalf("workload Append at %d: %d, %v", base, got, err)
		}
	})
	for _, v := range vs {
		w.versions[v.off] = append(w.versions[v.off], v)
	}
	if w.opts.Sync.Mode == SyncAlways {
		for _, v := range vs {
			v.durable = w.steps[len(w.steps)-1].to
		}
	}
}

// appendFrames appends n records through the follower path, AppendFrames.
func (w *cpWorkload) appendFrames(epoch int32, n int) {
	base := w.l.LogEndOffset()
	var vs []*cpVersion
	w.step(fmt.Sprintf("append %d frames at %d, epoch %d", n, base, epoch), func(from int) {
		var frames []byte
		for i := range n {
			off := base + int64(i)
			ver := len(w.versions[off])
			v := &cpVersion{off: off, epoch: epoch, ts: recTS(off) + int64(ver)*1_000_000, payload: cpPayload(off, ver),
				written: from, durable: math.MaxInt, removed: math.MaxInt, gone: math.MaxInt}
			vs = append(vs, v)
			frames = AppendFrame(frames, off, v.ts, v.payload)
		}
		last, err := w.l.AppendFrames(epoch, frames)
		if err != nil || last != base+int64(n)-1 {
			w.tb.Fatalf("workload AppendFrames at %d: last %d, %v", base, last, err)
		}
	})
	for _, v := range vs {
		w.versions[v.off] = append(w.versions[v.off], v)
	}
	if w.opts.Sync.Mode == SyncAlways {
		for _, v := range vs {
			v.durable = w.steps[len(w.steps)-1].to
		}
	}
}

func (w *cpWorkload) sync() {
	w.step("sync", func(int) {
		if err := w.l.Sync(); err != nil {
			w.tb.Fatalf("workload Sync: %v", err)
		}
	})
	w.makeDurable(w.steps[len(w.steps)-1].to)
}

func (w *cpWorkload) truncate(off int64) {
	end := w.l.LogEndOffset()
	w.step(fmt.Sprintf("truncate at %d (log end %d)", off, end), func(int) {
		if err := w.l.Truncate(off); err != nil {
			w.tb.Fatalf("workload Truncate(%d): %v", off, err)
		}
	})
	s := w.steps[len(w.steps)-1]
	for o := off; o < end; o++ {
		if v := w.live(o); v != nil {
			v.removed, v.gone = s.from, s.to
		}
	}
}

func (w *cpWorkload) deleteBefore(off int64) {
	start := w.l.LogStartOffset()
	w.step(fmt.Sprintf("delete before %d", off), func(int) {
		if err := w.l.DeleteBefore(off); err != nil {
			w.tb.Fatalf("workload DeleteBefore(%d): %v", off, err)
		}
	})
	s := w.steps[len(w.steps)-1]
	for o := start; o < w.l.LogStartOffset(); o++ {
		if v := w.live(o); v != nil {
			v.removed = s.from // retention may be undone by a crash: not gone
		}
	}
	if w.l.LogStartOffset() == start {
		w.tb.Fatalf("workload DeleteBefore(%d) deleted nothing", off)
	}
}

// run is the workload: appends of 1 to 7 records (7 is more than a
// segment holds), rolls, new leader epochs, Sync, a Close and reopen, a
// Truncate into a sealed segment and one in the active segment,
// DeleteBefore, and frames appended as a follower.
func (w *cpWorkload) run() {
	w.open()
	w.append(0, 1)
	w.append(0, 2)
	w.append(0, 3)
	w.append(1, 1)
	w.sync()
	big := w.l.LogEndOffset()
	w.append(1, 7)
	w.append(1, 2)
	w.append(2, 1)
	w.close()
	w.open()
	w.append(2, 3)
	w.truncate(big + 4) // into the sealed segment of the 7-record batch
	w.append(3, 2)
	w.append(3, 4)
	w.sync()
	w.deleteBefore(big)
	w.append(3, 1)
	w.truncate(w.l.LogEndOffset() - 1) // in the active segment
	w.append(4, 2)
	w.appendFrames(5, 3) // as a follower of a new leader
	w.close()
}

// stepAt is the step during which the k-th operation ran.
func (w *cpWorkload) stepAt(k int) string {
	for _, s := range w.steps {
		if k > s.from && k <= s.to {
			return s.name
		}
	}
	return "between steps"
}

// cpState is one crash state to check: after k operations.
type cpState struct {
	k    int
	kind string
	img  memImage
}

// check opens st and checks the crash invariants: Open succeeds; no wrong
// record; no corruption reported (a crash alone is never corruption);
// every durable record not removed by the workload readable with its
// leader epoch; LogEndOffset past them; appends get the next offset and
// are readable; a second crash and reopen changes nothing.
func (w *cpWorkload) check(st cpState) []violation {
	var vs []violation
	fail := func(inv, format string, args ...any) {
		vs = append(vs, violation{inv: inv, msg: fmt.Sprintf(format, args...)})
	}
	k := st.k
	required := map[int64]*cpVersion{}
	for off, list := range w.versions {
		for _, v := range list {
			if v.durable <= k && k <= v.removed {
				required[off] = v
			}
		}
	}
	acceptable := func(f Frame) bool {
		for _, v := range w.versions[f.Offset] {
			if v.written < k && k < v.gone && v.ts == f.Timestamp && bytes.Equal(v.payload, f.Payload) {
				return true
			}
		}
		return false
	}
	o := w.opts
	mfs := newMemFS(st.img)
	o.FS, o.Logger = mfs, zap.NewNop()
	l, err := Open(cpDir, o)
	if err != nil {
		fail("open", "Open: %v", err)
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
	defer func() {
		if l != nil {
			closeLog(l, mfs)
		}
	}()
	start, end := l.LogStartOffset(), l.LogEndOffset()
	var gone []int64
	for off := range required {
		if off < start || off >= end {
			gone = append(gone, off)
		}
	}
	if len(gone) > 0 {
		slices.Sort(gone)
		fail("durable", "durable records %s outside the log [%d, %d)", offRanges(gone), start, end)
	}
	// Every record, by Read.
	content := map[int64]string{}
	for off := start; off < end; off++ {
		f, err := l.Read(off)
		if err != nil {
			fail("corrupt", "Read(%d) in [%d, %d): %v", off, start, end, err)
			continue
		}
		if f.Offset != off || !acceptable(f) {
			fail("wrong", "Read(%d) returned offset %d, timestamp %d, payload %q", off, f.Offset, f.Timestamp, f.Payload)
			continue
		}
		if v := required[off]; v != nil && (v.ts != f.Timestamp || !bytes.Equal(v.payload, f.Payload)) {
			fail("durable", "Read(%d) returned %q, not the durable %q", off, f.Payload, v.payload)
		}
		content[off] = string(f.Payload)
	}
	// And by a Reader.
	if r, err := l.NewReader(start); err != nil {
		fail("corrupt", "NewReader(%d): %v", start, err)
	} else {
		want := start
		for i := int64(0); i <= end-start+4; i++ {
			f, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				fail("corrupt", "Reader.Next at %d: %v", want, err)
				break
			}
			if f.Offset != want || !acceptable(f) {
				fail("wrong", "Reader.Next returned offset %d (want %d), payload %q", f.Offset, want, f.Payload)
				break
			}
			want++
		}
		if want != end && len(vs) == 0 {
			fail("corrupt", "the Reader stopped at %d, log end %d", want, end)
		}
		if err := r.Close(); err != nil {
			fail("close", "Reader.Close: %v", err)
		}
	}
	firstHealthy := l.Healthy()
	if h, n := firstHealthy, l.Stats().CorruptRecords; h != nil || n != 0 {
		fail("corrupt", "after reading everything: Healthy() = %v, CorruptRecords = %d", h, n)
	}
	// Leader epochs of durable records.
	ents := l.Epochs()
	for off, v := range required {
		if off < start || off >= end {
			continue
		}
		if got := epochAt(ents, off); got != v.epoch {
			fail("epochs", "durable record %d was appended in epoch %d; Epochs() %v say %d", off, v.epoch, ents, got)
			break
		}
	}
	// Appends after recovery.
	epoch := max(l.LatestEpoch(), 0)
	post := []Record{{Timestamp: 1, Payload: []byte(fmt.Sprintf("post-%d", end))}, {Timestamp: 2, Payload: []byte(fmt.Sprintf("post-%d", end+1))}}
	if base, err := l.Append(epoch, post); err != nil || base != end {
		fail("append", "Append after recovery: offset %d, %v; want LogEndOffset %d", base, err, end)
		return vs
	}
	for i, p := range post {
		if f, err := l.Read(end + int64(i)); err != nil || !bytes.Equal(f.Payload, p.Payload) {
			fail("append", "appended record %d: %q, %v", end+int64(i), f.Payload, err)
		}
		content[end+int64(i)] = string(p.Payload)
	}
	// Crash again, reopen: nothing changes.
	img2 := mfs.crashImage()
	closeLog(l, mfs)
	l = nil
	mfs2 := newMemFS(img2)
	o.FS = mfs2
	l2, err := Open(cpDir, o)
	if err != nil {
		fail("reopen", "second Open after a crash: %v", err)
		return vs
	}
	defer closeLog(l2, mfs2)
	if s2, e2 := l2.LogStartOffset(), l2.LogEndOffset(); s2 != start || e2 != end+2 {
		fail("reopen", "range [%d, %d) became [%d, %d) on the second reopen", start, end+2, s2, e2)
	}
	for off := start; off < end+2; off++ {
		want, ok := content[off]
		if !ok {
			continue // not readable the first time: reported above
		}
		f, err := l2.Read(off)
		if err != nil || string(f.Payload) != want {
			fail("reopen", "second reopen: Read(%d) = %q, %v; was %q", off, f.Payload, err, want)
			break
		}
	}
	if h := l2.Healthy(); h != nil && firstHealthy == nil {
		fail("reopen", "second reopen: Healthy() = %v", h)
	}
	return vs
}

// epochAt is the epoch of the entry covering off, -1 if none.
func epochAt(ents []EpochEntry, off int64) int32 {
	e := int32(-1)
	for _, en := range ents {
		if en.StartOffset <= off {
			e = en.Epoch
		}
	}
	return e
}

func imageKey(img memImage) [32]byte {
	h := sha256.New()
	for _, p := range slices.Sorted(maps.Keys(img.files)) {
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(img.files[p]))
		h.Write(img.files[p])
	}
	return [32]byte(h.Sum(nil))
}

// TestCrashEveryPrefix is the crash-point test (ALICE, CrashMonkey): a
// workload runs on the recording memFS, and for every prefix of its file
// operations the states a crash there can leave, process crash (kill -9:
// the page cache survives), power loss (only what was fsynced, under names
// whose directory was fsynced) and power loss with zero-filled tails, are
// each opened and checked (cpWorkload.check).
func TestCrashEveryPrefix(t *testing.T) {
	for _, policy := range []SyncPolicy{{Mode: SyncAlways}, {Mode: SyncNever}} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			w := newCPWorkload(t, policy)
			w.run()
			t0 := time.Now()
			type group struct {
				cases    int
				first    int
				examples []string
			}
			groups := map[string]*group{}
			var keys []string
			states, distinct := 0, map[[32]byte]bool{}
			w.mfs.replay(func(k int, s *memState) bool {
				for _, st := range []cpState{
					{k: k, kind: "process crash", img: s.processCrashImage()},
					{k: k, kind: "power loss", img: s.powerLossImage(false)},
					{k: k, kind: "power loss, zero-filled tails", img: s.powerLossImage(true)},
				} {
					states++
					distinct[imageKey(st.img)] = true
					seen := map[string]bool{}
					for _, v := range w.check(st) {
						if seen[v.inv] {
							continue
						}
						seen[v.inv] = true
						key := fmt.Sprintf("%s|%s|%s", v.inv, st.kind, w.stepAt(k))
						g := groups[key]
						if g == nil {
							g = &group{first: k}
							groups[key] = g
							keys = append(keys, key)
						}
						g.cases++
						if len(g.examples) < 2 {
							last := "nothing yet"
							if k > 0 {
								last = w.mfs.op(k - 1)
							}
							g.examples = append(g.examples, fmt.Sprintf("after op %d (%s): %s", k, last, v.msg))
						}
					}
				}
				return true
			})
			t.Logf("%d crash states checked (%d distinct directories) over %d file operations of %d steps, in %v",
				states, len(distinct), w.mfs.opCount(), len(w.steps), time.Since(t0).Round(time.Millisecond))
			for _, key := range keys {
				g := groups[key]
				p := strings.SplitN(key, "|", 3)
				t.Errorf("%s: invariant %s broken by a %s during %q: %d states from op %d\n\te.g. %s",
					policy, p[0], p[1], p[2], g.cases, g.first, strings.Join(g.examples, "\n\t     "))
			}
		})
	}
}
