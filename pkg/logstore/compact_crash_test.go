package logstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

const kvDir = "/strata/kv"

// kvStep is one recorded step of the compaction crash workload: a clean
// (truncAt < 0) or a truncation at truncAt, the file operations it made,
// and the log's content before and after it.
type kvStep struct {
	name      string
	from, to  int
	pre, post kvView
	epochs    []EpochEntry // before the step
	upTo      int64
	truncAt   int64
	// follower: a gapped batch appended by AppendCompactedFrames (truncAt
	// is -1); postEpochs are the epochs after it.
	follower   bool
	postEpochs []EpochEntry
}

// kvWorkload runs a log of key-value records on a recording memFS: it
// appends, cleans, cleans again after more writes, and truncates into a
// compacted segment.
type kvWorkload struct {
	tb    testing.TB
	mfs   *memFS
	opts  Options
	now   time.Time
	l     *Log
	keyN  int
	steps []kvStep
}

func newKVWorkload(tb testing.TB, policy SyncPolicy) *kvWorkload {
	now := time.UnixMilli(1_700_000_000_000)
	o := kvOptions(func() time.Time { return now })
	o.Sync = policy
	return &kvWorkload{tb: tb, mfs: newMemFS(memImage{dirs: []string{kvDir}}), opts: o, now: now}
}

func (w *kvWorkload) open() {
	o := w.opts
	o.FS, o.Logger = w.mfs, zap.NewNop()
	l, err := Open(kvDir, o)
	if err != nil {
		w.tb.Fatalf("workload Open: %v", err)
	}
	w.l = l
}

// append writes n records: keys cycle over five, every fourth record
// overwrites the key before it with a tombstone (an old one: two hours),
// and every seventh has no key.
func (w *kvWorkload) append(epoch int32, n int) {
	recs := make([]kvRec, n)
	for i := range recs {
		w.keyN++
		k := w.keyN
		switch {
		case k%7 == 0:
			recs[i] = kvRec{p: fmt.Sprintf("=%d", k)}
		case k%4 == 0:
			recs[i] = kvRec{p: fmt.Sprintf("k%d!", (k-1)%5), age: 2 * time.Hour}
		default:
			recs[i] = kvRec{p: fmt.Sprintf("k%d=%d", k%5, k)}
		}
	}
	kvAppend(w.tb, w.l, epoch, w.now, recs)
}

func (w *kvWorkload) view() kvView {
	v, err := readView(w.l)
	if err != nil {
		w.tb.Fatalf("workload: %v", err)
	}
	return v
}

func (w *kvWorkload) sync() {
	if err := w.l.Sync(); err != nil {
		w.tb.Fatal(err)
	}
}

// compact cleans below upTo (-1: the log end) as a recorded step.
func (w *kvWorkload) compact(upTo int64) {
	if upTo < 0 {
		upTo = w.l.LogEndOffset()
	}
	st := kvStep{name: fmt.Sprintf("clean below %d", upTo), pre: w.view(), epochs: w.l.Epochs(), upTo: upTo, truncAt: -1, from: w.mfs.opCount()}
	cs, err := w.l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: upTo, DeleteRetention: time.Hour})
	if err != nil {
		w.tb.Fatalf("workload Compact: %v", err)
	}
	st.to, st.post = w.mfs.opCount(), w.view()
	if cs.SegmentsWritten == 0 || maps.Equal(st.pre, st.post) {
		w.tb.Fatalf("workload: the clean below %d did nothing (%+v); the test would not test it", upTo, cs)
	}
	w.steps = append(w.steps, st)
}

// truncate truncates at off as a recorded step.
func (w *kvWorkload) truncate(off int64) {
	st := kvStep{name: fmt.Sprintf("truncate at %d", off), pre: w.view(), epochs: w.l.Epochs(), truncAt: off, from: w.mfs.opCount()}
	if err := w.l.Truncate(off); err != nil {
		w.tb.Fatalf("workload Truncate(%d): %v", off, err)
	}
	st.to, st.post = w.mfs.opCount(), w.view()
	w.steps = append(w.steps, st)
}

// appendGapped appends, as a follower of a compacted leader, a batch of
// three frames with gaps before and between them, in a new epoch, as a
// recorded step.
func (w *kvWorkload) appendGapped(epoch int32) {
	next := w.l.LogEndOffset()
	var frames []byte
	for i, off := range []int64{next + 2, next + 3, next + 6} {
		frames = AppendFrame(frames, off, w.now.UnixMilli(), []byte(fmt.Sprintf("f%d=%d", i, off)))
	}
	st := kvStep{name: fmt.Sprintf("gapped follower batch at %d", next), pre: w.view(), epochs: w.l.Epochs(),
		truncAt: -1, follower: true, from: w.mfs.opCount()}
	if _, err := w.l.AppendCompactedFrames(epoch, frames); err != nil {
		w.tb.Fatalf("workload AppendCompactedFrames: %v", err)
	}
	st.to, st.post, st.postEpochs = w.mfs.opCount(), w.view(), w.l.Epochs()
	w.steps = append(w.steps, st)
}

// run: 14 records over three sealed segments and the active one, a clean
// (segments rewritten and merged), 9 more records overwriting keys of the
// compacted segments, a clean below the log end but 2 (compacted segments
// rewritten again), a truncation inside a compacted segment, more appends,
// a gapped batch appended as a follower, more appends.
func (w *kvWorkload) run() {
	w.open()
	w.append(1, 14)
	w.sync()
	w.compact(-1)
	w.append(2, 9)
	w.sync()
	w.compact(w.l.LogEndOffset() - 2)
	// Inside the first compacted segment, right after its first record:
	// it keeps records on both sides.
	first := w.l.segs.Load().segs[0]
	var in []int64
	for off := range w.view() {
		if off < first.endOff.Load() {
			in = append(in, off)
		}
	}
	slices.Sort(in)
	if !first.compacted || len(in) < 2 {
		w.tb.Fatalf("workload: the first segment is not compacted with two records or more: %v", in)
	}
	w.truncate(in[0] + 1)
	w.append(3, 3)
	w.sync() // under fsync=never a power loss may take what came before
	w.appendGapped(4)
	w.append(4, 2)
	if err := w.l.Close(); err != nil {
		w.tb.Fatal(err)
	}
}

// check opens a crash state of step st and checks it: Open succeeds and
// leaves no .cleaned or .swap file; the log holds exactly the content
// before or after a clean or a gapped batch (for a truncation: the records
// below it as before, and of those at or after it only ones that were
// there), read every way with no corruption; the leader epochs are as
// before a clean (or after a batch); an append works; a clean of the
// recovered log gives the content after a clean; a second crash and
// reopen change nothing.
func (w *kvWorkload) check(st kvStep, img memImage) []violation {
	var vs []violation
	fail := func(inv, format string, args ...any) {
		vs = append(vs, violation{inv: inv, msg: fmt.Sprintf(format, args...)})
	}
	o := w.opts
	mfs := newMemFS(img)
	o.FS, o.Logger = mfs, zap.NewNop()
	l, err := Open(kvDir, o)
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
	if left := swapLeftovers(mfs.crashImage()); len(left) > 0 {
		fail("leftovers", "files of the swap left after Open: %v", left)
	}
	got, err := readView(l)
	if err != nil {
		fail("read", "%v", err)
		return vs
	}
	want := got
	if st.truncAt < 0 {
		switch {
		case maps.Equal(got, st.pre):
		case maps.Equal(got, st.post):
		default:
			fail("mix", "the log holds\n\t%v\nneither the content before the clean\n\t%v\nnor after it\n\t%v",
				fmtView(got), fmtView(st.pre), fmtView(st.post))
			return vs
		}
		if e := l.Epochs(); !slices.Equal(e, st.epochs) && !(st.follower && slices.Equal(e, st.postEpochs)) {
			fail("epochs", "Epochs() = %v, were %v", e, st.epochs)
		}
	} else {
		for off, p := range st.pre {
			if off < st.truncAt && got[off] != p {
				fail("truncate", "record %d below the truncation point: %q, was %q", off, got[off], p)
			}
		}
		for off, p := range got {
			if st.pre[off] != p {
				fail("truncate", "record %d reads %q, was %q", off, p, st.pre[off])
			}
		}
		if end := l.LogEndOffset(); end < st.truncAt {
			fail("truncate", "LogEndOffset %d below the truncation point %d", end, st.truncAt)
		}
	}
	if err := viewError(l, want); err != nil {
		fail("read", "%v", err)
	}
	end := l.LogEndOffset()
	if _, err := l.Append(max(l.LatestEpoch(), 0), []Record{{Timestamp: w.now.UnixMilli(), Payload: []byte("post=1")}}); err != nil {
		fail("append", "Append after recovery: %v", err)
		return vs
	}
	want = maps.Clone(want)
	want[end] = "post=1"
	if err := viewError(l, want); err != nil {
		fail("append", "%v", err)
	}
	if st.truncAt < 0 && !st.follower {
		if _, err := l.Compact(context.Background(), CompactOptions{KeyOf: kvKeyOf, UpTo: st.upTo, DeleteRetention: time.Hour}); err != nil {
			fail("clean", "Compact after recovery: %v", err)
		}
		want = maps.Clone(st.post)
		want[end] = "post=1"
		if err := viewError(l, want); err != nil {
			fail("clean", "after a clean of the recovered log: %v", err)
		}
	}
	img2 := mfs.crashImage()
	closeLog(l, mfs)
	l = nil
	mfs2 := newMemFS(img2)
	o.FS = mfs2
	l2, err := Open(kvDir, o)
	if err != nil {
		fail("reopen", "second Open: %v", err)
		return vs
	}
	defer closeLog(l2, mfs2)
	if err := viewError(l2, want); err != nil {
		fail("reopen", "%v", err)
	}
	return vs
}

// swapLeftovers lists the .cleaned and .swap files of an image.
func swapLeftovers(img memImage) []string {
	var out []string
	for _, name := range img.names(kvDir) {
		if strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, swapSuffix) {
			out = append(out, name)
		}
	}
	return out
}

// checkRecoveryCrash crashes the recovery of img (a state in the middle of
// a swap) after each of its file operations, and checks each of those
// states as a state of st: recovery must be restartable at any point.
func (w *kvWorkload) checkRecoveryCrash(st kvStep, img memImage) (states int, vs []violation) {
	o := w.opts
	mfs := newMemFS(img)
	o.FS, o.Logger = mfs, zap.NewNop()
	l, err := Open(kvDir, o)
	if err != nil {
		return 0, []violation{{inv: "open", msg: fmt.Sprintf("Open: %v", err)}}
	}
	if err := l.Close(); err != nil {
		return 0, []violation{{inv: "close", msg: fmt.Sprintf("Close: %v", err)}}
	}
	mfs.replay(func(k int, s *memState) bool {
		for _, img := range []memImage{s.processCrashImage(), s.powerLossImage(false), s.powerLossImage(true)} {
			states++
			for _, v := range w.check(st, img) {
				v.msg = fmt.Sprintf("recovery crashed after its op %d: %s", k, v.msg)
				vs = append(vs, v)
			}
		}
		return true
	})
	return states, vs
}

// TestCompactCrashEveryStep is the crash-point test of compaction: the
// workload (kvWorkload.run) runs on the recording memFS, and for every
// prefix of the file operations of each clean and of the truncation into a
// compacted segment, the states a process crash, a power loss and a power
// loss with zero-filled tails leave are each opened and checked
// (kvWorkload.check). States in the middle of a swap also have their
// recovery crashed after each of its operations, and those states checked.
func TestCompactCrashEveryStep(t *testing.T) {
	for _, policy := range []SyncPolicy{{Mode: SyncAlways}, {Mode: SyncNever}} {
		t.Run(policy.String(), func(t *testing.T) {
			t.Parallel()
			w := newKVWorkload(t, policy)
			w.run()
			t0 := time.Now()
			type group struct {
				cases    int
				examples []string
			}
			groups := map[string]*group{}
			var keys []string
			states, nested := 0, 0
			seenSwap := map[[32]byte]bool{}
			w.mfs.replay(func(k int, s *memState) bool {
				for _, st := range w.steps {
					if k < st.from || k > st.to {
						continue
					}
					for _, c := range []struct {
						kind string
						img  memImage
					}{
						{"process crash", s.processCrashImage()},
						{"power loss", s.powerLossImage(false)},
						{"power loss, zero-filled tails", s.powerLossImage(true)},
					} {
						states++
						vs := w.check(st, c.img)
						if key := imageKey(c.img); len(swapLeftovers(c.img)) > 0 && !seenSwap[key] {
							seenSwap[key] = true
							n, nvs := w.checkRecoveryCrash(st, c.img)
							nested += n
							vs = append(vs, nvs...)
						}
						for _, v := range vs {
							key := fmt.Sprintf("%s|%s|%s", v.inv, c.kind, st.name)
							g := groups[key]
							if g == nil {
								g = &group{}
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
				}
				return true
			})
			ops := 0
			for _, st := range w.steps {
				ops += st.to - st.from
			}
			t.Logf("%d crash states checked over the %d file operations of %d steps (%v), %d more crashing their recovery, in %v",
				states, ops, len(w.steps), stepNames(w.steps), nested, time.Since(t0).Round(time.Millisecond))
			for _, key := range keys {
				g := groups[key]
				p := strings.SplitN(key, "|", 3)
				t.Errorf("invariant %s broken by a %s during %q: %d states\n\te.g. %s",
					p[0], p[1], p[2], g.cases, strings.Join(g.examples, "\n\t     "))
			}
		})
	}
}

func stepNames(steps []kvStep) string {
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = fmt.Sprintf("%s: %d ops", s.name, s.to-s.from)
	}
	return strings.Join(names, ", ")
}
