package logstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
)

// CompactOptions configure one clean of a log (Log.Compact).
type CompactOptions struct {
	// KeyOf returns the key of a record from its payload, and whether the
	// record is a tombstone (a deletion of its key). The engine never
	// looks into payloads itself: the broker passes a function that decodes
	// its record encoding. A record with an empty key is keyless and always
	// kept; a record KeyOf fails on is kept and counted. Required.
	KeyOf func(payload []byte) (key []byte, tombstone bool, err error)
	// DeleteRetention is how long a tombstone outlives the records it
	// deleted, measured from its frame timestamp to Options.Now: a
	// tombstone that is the latest record of its key and at least this old
	// is removed, a younger one kept, so that a consumer reading from the
	// start has this long to see the deletion. 0 removes such tombstones
	// in the first clean that finds them; negative is an error.
	DeleteRetention time.Duration
	// UpTo bounds the clean: only records below it are read into the
	// offset map (so only they supersede older records of their key), and
	// only sealed segments wholly below it are rewritten. Pass the high
	// watermark: records past it may still be truncated, and a record must
	// never go because of one that is then lost. Values past the log end
	// count as the log end; the active segment is never rewritten.
	UpTo int64
}

// CompactStats describe one clean: what the wiring of cleanup.policy
// logs and exports.
type CompactStats struct {
	// CleanedUpTo is the end of the last segment the clean covered (Kafka's
	// first dirty offset): segments below it were read and rewritten where
	// records went.
	CleanedUpTo int64
	// Keys is the number of distinct keys below UpTo.
	Keys int
	// SegmentsRead is the sealed segments below CleanedUpTo;
	// SegmentsRewritten of them were replaced by SegmentsWritten compacted
	// segments (fewer when small ones were merged).
	SegmentsRead, SegmentsRewritten, SegmentsWritten int
	// BytesBefore and BytesAfter are the store bytes of the rewritten
	// segments and of the segments that replaced them.
	BytesBefore, BytesAfter int64
	// Records is the records in the segments read; RecordsRemoved of them
	// were superseded by a later record of their key, TombstonesRemoved
	// were tombstones older than DeleteRetention. Keyless and Undecodable
	// records (no key; KeyOf failed) were kept.
	Records, RecordsRemoved, TombstonesRemoved, Keyless, Undecodable int64
	// CorruptOffset is the first corrupt record met below UpTo, -1 if none:
	// the clean stops before the segment holding it (a record whose key is
	// unknown could be the latest of its key).
	CorruptOffset int64
	// Duration is the wall time of the clean.
	Duration time.Duration
}

// Compact cleans the log once, as Kafka's log cleaner does: it reads the
// records below opts.UpTo into a map from key to latest offset, then
// rewrites the sealed segments below UpTo without the records a later one
// of their key superseded and without tombstones older than
// opts.DeleteRetention, merging small neighbours while the result fits
// MaxSegmentBytes and MaxIndexBytes. Offsets, timestamps and leader epochs
// of the records kept do not change: readers see gaps (doc.go).
//
// Appends, reads, retention and truncation go on during the clean; only
// its last step, the swap, takes the writer's lock. The swap is atomic
// across a crash (swap.go, doc.go): recovery finds every rewritten segment
// old or every one new. If retention or a truncation changed the log under
// the clean, nothing is swapped and Compact returns ErrCompactConflict;
// the next clean starts over. Cleans of one log run one at a time.
func (l *Log) Compact(ctx context.Context, opts CompactOptions) (CompactStats, error) {
	t0 := time.Now()
	st := CompactStats{CorruptOffset: -1}
	if opts.KeyOf == nil {
		return st, errors.New("logstore: CompactOptions.KeyOf is required")
	}
	if opts.DeleteRetention < 0 {
		return st, fmt.Errorf("logstore: CompactOptions.DeleteRetention %v is negative", opts.DeleteRetention)
	}
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	defer func() { st.Duration = time.Since(t0) }()
	p, err := l.planClean(opts.UpTo)
	if err != nil {
		return st, err
	}
	defer p.release(l)
	st.CleanedUpTo = p.start
	c := &cleaner{l: l, ctx: ctx, opts: opts, st: &st, keys: map[string]int{}}
	if err := c.buildMap(p); err != nil {
		return st, err
	}
	st.Keys = len(c.offs)
	if err := ctx.Err(); err != nil {
		return st, err
	}
	plans, err := c.decide(p)
	if err != nil {
		return st, err
	}
	groups := c.group(plans)
	writers, err := c.write(groups)
	if err != nil {
		return st, err
	}
	if len(writers) == 0 {
		return st, nil
	}
	if err := ctx.Err(); err != nil {
		return st, errors.Join(err, l.abortCleaned(writers))
	}
	if err := l.commitClean(p, writers); err != nil {
		return st, err
	}
	for _, w := range writers {
		st.SegmentsRewritten += len(w.old)
		st.SegmentsWritten++
		st.BytesAfter += w.desc.bytes
		for _, o := range w.old {
			st.BytesBefore += o.endPos.Load()
		}
	}
	l.stats.compactions.Add(1)
	l.stats.compactedBytes.Add(st.BytesBefore - st.BytesAfter)
	l.lg.Info("compacted", zap.Int64("cleaned_up_to", st.CleanedUpTo), zap.Int("segments_rewritten", st.SegmentsRewritten),
		zap.Int("segments_written", st.SegmentsWritten), zap.Int64("bytes_before", st.BytesBefore),
		zap.Int64("bytes_after", st.BytesAfter), zap.Int64("records_removed", st.RecordsRemoved),
		zap.Int64("tombstones_removed", st.TombstonesRemoved), zap.Duration("took", time.Since(t0)))
	return st, nil
}

// cleanPlan is what a clean covers: the sealed segments wholly below upTo,
// pinned, as the writer's lock saw them.
type cleanPlan struct {
	segs     []*segment
	start    int64 // the log start offset then
	upTo     int64
	truncGen uint64
}

func (p *cleanPlan) release(l *Log) {
	for _, s := range p.segs {
		if err := s.release(); err != nil {
			l.lg.Warn("closing segment files", zap.String("segment", s.name), zap.Error(err))
		}
	}
}

// planClean pins the sealed segments below upTo and removes any file a
// failed clean left behind (a .cleaned file must never outlive its clean:
// recovery would take it for part of the next one).
func (l *Log) planClean(upTo int64) (*cleanPlan, error) {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return nil, err
	}
	if err := l.removeCleanLeftoversLocked(); err != nil {
		return nil, err
	}
	list := l.segs.Load().segs
	p := &cleanPlan{start: list[0].base, upTo: min(upTo, l.end.Load()), truncGen: l.truncGen}
	for _, s := range list[:len(list)-1] {
		if s.endOff.Load() > p.upTo || !s.tryAcquire() {
			break
		}
		p.segs = append(p.segs, s)
	}
	return p, nil
}

func (l *Log) removeCleanLeftoversLocked() error {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if name := e.Name(); strings.HasSuffix(name, cleanedSuffix) || strings.HasSuffix(name, swapSuffix) {
			l.lg.Warn("removing the file of a failed compaction", zap.String("file", name))
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
				return err
			}
		}
	}
	return nil
}

// cleaner is one clean's state.
type cleaner struct {
	l    *Log
	ctx  context.Context
	opts CompactOptions
	st   *CompactStats
	keys map[string]int // key -> its slot in offs
	offs []int64        // the latest offset of each key
	// bound is the number of planned segments the clean may rewrite: those
	// before the first corrupt record.
	bound int
	ops   int
}

// check is called every record: every few thousand it looks for a
// cancelled context or a closed log.
func (c *cleaner) check() error {
	c.ops++
	if c.ops%4096 != 0 {
		return nil
	}
	if c.l.isClosed.Load() {
		return ErrClosed
	}
	return c.ctx.Err()
}

// buildMap reads every record below upTo: the planned segments directly,
// the rest through a Reader. A corrupt record bounds the clean before the
// segment holding it.
func (c *cleaner) buildMap(p *cleanPlan) error {
	c.bound = len(p.segs)
	note := func(off int64) {
		if c.st.CorruptOffset < 0 {
			c.st.CorruptOffset = off
		}
	}
	add := func(f Frame) error {
		key, _, err := c.opts.KeyOf(f.Payload)
		if err != nil || len(key) == 0 {
			return c.check()
		}
		if i, ok := c.keys[string(key)]; ok {
			c.offs[i] = f.Offset
		} else {
			c.keys[string(key)] = len(c.offs)
			c.offs = append(c.offs, f.Offset)
		}
		return c.check()
	}
	from := p.start
	for i, s := range p.segs {
		err := c.l.walkSegment(s, add)
		if ce := (*CorruptError)(nil); errors.As(err, &ce) {
			note(ce.Offset)
			c.bound = min(c.bound, i)
		} else if err != nil {
			return err
		}
		from = s.endOff.Load()
	}
	if from >= p.upTo {
		return nil
	}
	r, err := c.l.NewReader(from)
	if err != nil {
		return conflictIfOutOfRange(err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			c.l.lg.Warn("closing a reader", zap.Error(err))
		}
	}()
	for r.Offset() < p.upTo {
		f, err := r.Next()
		switch {
		case errors.Is(err, io.EOF):
			return ErrCompactConflict // the log was truncated below upTo
		case errors.Is(err, ErrCorrupt):
			if ce := (*CorruptError)(nil); errors.As(err, &ce) {
				note(ce.Offset)
			}
			continue
		case err != nil:
			return conflictIfOutOfRange(err)
		}
		if f.Offset >= p.upTo {
			break
		}
		if err := add(f); err != nil {
			return err
		}
	}
	return nil
}

func conflictIfOutOfRange(err error) error {
	if errors.Is(err, ErrOffsetOutOfRange) {
		return fmt.Errorf("%w: %w", ErrCompactConflict, err)
	}
	return err
}

// segClean is what a clean does to one segment: which of its records stay.
type segClean struct {
	s           *segment
	keep        []uint64 // bit i: the i-th record of the segment stays
	keptBytes   int64
	keptRecords int64
	removed     bool
}

// decide goes through the records of the segments below the bound and
// marks which stay.
func (c *cleaner) decide(p *cleanPlan) ([]*segClean, error) {
	horizon := c.l.opts.Now().Add(-c.opts.DeleteRetention).UnixMilli()
	var out []*segClean
	for _, s := range p.segs[:c.bound] {
		sc := &segClean{s: s}
		i := 0
		err := c.l.walkSegment(s, func(f Frame) error {
			c.st.Records++
			keep := true
			key, tomb, err := c.opts.KeyOf(f.Payload)
			switch {
			case err != nil:
				c.st.Undecodable++
			case len(key) == 0:
				c.st.Keyless++
			default:
				if k, ok := c.keys[string(key)]; ok && c.offs[k] != f.Offset {
					keep = false
					c.st.RecordsRemoved++
				} else if tomb && f.Timestamp <= horizon {
					keep = false
					c.st.TombstonesRemoved++
				}
			}
			if i/64 >= len(sc.keep) {
				sc.keep = append(sc.keep, 0)
			}
			if keep {
				sc.keep[i/64] |= 1 << (i % 64)
				sc.keptBytes += int64(len(f.Raw))
				sc.keptRecords++
			} else {
				sc.removed = true
			}
			i++
			return c.check()
		})
		if err != nil {
			return nil, err
		}
		out = append(out, sc)
		c.st.CleanedUpTo = s.endOff.Load()
		c.st.SegmentsRead++
	}
	return out, nil
}

// group merges neighbouring segments into the compacted segments that will
// replace them, while the result fits a segment (MaxSegmentBytes,
// MaxIndexBytes, relative offsets in 32 bits). A segment alone that loses
// no record is left as it is.
func (c *cleaner) group(plans []*segClean) [][]*segClean {
	maxEntries := c.l.opts.MaxIndexBytes / indexEntrySize
	var out [][]*segClean
	var cur []*segClean
	var bytes, records int64
	flush := func() {
		if len(cur) > 1 || len(cur) == 1 && cur[0].removed {
			out = append(out, cur)
		}
		cur, bytes, records = nil, 0, 0
	}
	for _, sc := range plans {
		if len(cur) > 0 {
			last := cur[len(cur)-1].s
			if last.endOff.Load() != sc.s.base || bytes+sc.keptBytes > c.l.opts.MaxSegmentBytes ||
				records+sc.keptRecords > maxEntries || sc.s.endOff.Load()-cur[0].s.base > math.MaxUint32 {
				flush()
			}
		}
		cur = append(cur, sc)
		bytes += sc.keptBytes
		records += sc.keptRecords
	}
	flush()
	return out
}

// write writes every group as a compacted segment under its .cleaned
// names, then syncs the directory. On failure it removes what it wrote.
func (c *cleaner) write(groups [][]*segClean) (ws []*cleanedWriter, err error) {
	l := c.l
	defer func() {
		if err != nil {
			err = errors.Join(err, l.abortCleaned(ws))
			ws = nil
		}
	}()
	for _, g := range groups {
		old := make([]*segment, len(g))
		for i, sc := range g {
			old[i] = sc.s
		}
		w, err := newCleanedWriter(l.fs, l.dir, g[0].s.base, g[len(g)-1].s.endOff.Load(), old)
		if err != nil {
			return ws, err
		}
		ws = append(ws, w)
		for _, sc := range g {
			i := 0
			err := l.walkSegment(sc.s, func(f Frame) error {
				keep := sc.keep[i/64]&(1<<(i%64)) != 0
				i++
				if keep {
					if err := w.add(f.Raw, f.Offset, f.Timestamp); err != nil {
						return err
					}
				}
				return c.check()
			})
			if err != nil {
				return ws, err
			}
		}
		if err := w.finish(); err != nil {
			return ws, err
		}
	}
	if len(ws) > 0 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return ws, err
		}
	}
	return ws, nil
}

// abortCleaned removes the files of cleaned segments that will not be
// swapped in. If that fails the log fails: a .cleaned file left behind
// could be taken for part of a later swap by recovery.
func (l *Log) abortCleaned(ws []*cleanedWriter) error {
	var errs []error
	for _, w := range ws {
		errs = append(errs, w.abort())
	}
	if err := errors.Join(errs...); err != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.failLocked(fmt.Errorf("removing the files of an aborted compaction: %w", err))
	}
	return nil
}

// commitClean swaps the cleaned segments in, under the writer's lock: it
// checks the log still holds what was cleaned, makes every record below
// the log end durable (the records that superseded the ones removed must
// survive any crash the swap survives), swaps (swapIn), and publishes the
// new segment list. Readers holding a replaced segment keep reading its
// mapping and move to the new list at their next segment change.
func (l *Log) commitClean(p *cleanPlan, ws []*cleanedWriter) error {
	w := l.lockWriter()
	defer w.unlock()
	abort := func(err error) error {
		return errors.Join(err, l.abortCleanedLocked(ws))
	}
	if err := l.writableLocked(); err != nil {
		return abort(err)
	}
	if l.truncGen != p.truncGen {
		return abort(ErrCompactConflict)
	}
	for _, cw := range ws {
		for _, o := range cw.old {
			if o.dead.Load() {
				return abort(ErrCompactConflict)
			}
		}
	}
	if err := l.syncAllLocked(false); err != nil {
		return abort(err)
	}
	if err := swapIn(l.fs, l.dir, ws); err != nil {
		return l.failLocked(fmt.Errorf("swapping compacted segments in: %w", err))
	}
	repl := map[*segment]*segment{} // first replaced segment -> its replacement
	gone := map[*segment]bool{}
	var opened []*segment
	for _, cw := range ws {
		s, err := openCompacted(l.fs, l.dir, cw.desc.base, cw.desc.end, cw.desc.bytes, cw.desc.records)
		if err != nil {
			for _, o := range opened {
				err = errors.Join(err, o.release())
			}
			return l.failLocked(fmt.Errorf("mapping compacted segment %s: %w", storeName(cw.desc.base), err))
		}
		s.maxTs.Store(cw.maxTs)
		s.maxTsKnown.Store(true)
		opened = append(opened, s)
		repl[cw.old[0]] = s
		for _, o := range cw.old {
			gone[o] = true
		}
	}
	cur := l.segs.Load().segs
	segs := make([]*segment, 0, len(cur))
	for _, s := range cur {
		if n := repl[s]; n != nil {
			segs = append(segs, n)
			l.size.Add(n.endPos.Load())
		}
		if !gone[s] {
			segs = append(segs, s)
		}
	}
	l.segs.Store(&segList{segs: segs})
	for o := range gone {
		o.dead.Store(true)
		l.size.Add(-o.endPos.Load())
		l.dropUnsynced(o.base)
		if err := o.release(); err != nil {
			l.lg.Warn("closing replaced segment", zap.String("segment", o.name), zap.Error(err))
		}
	}
	return nil
}

// abortCleanedLocked is abortCleaned with mu held.
func (l *Log) abortCleanedLocked(ws []*cleanedWriter) error {
	var errs []error
	for _, w := range ws {
		errs = append(errs, w.abort())
	}
	if err := errors.Join(errs...); err != nil {
		return l.failLocked(fmt.Errorf("removing the files of an aborted compaction: %w", err))
	}
	return nil
}

// walkSegment calls fn with every record of sealed segment s, in order,
// straight from its mapping. A segment with anything but good frames in
// offset order (dense: every offset; compacted: as many as its index has
// entries) gives a *CorruptError for the first offset it cannot account
// for: the cleaner never rewrites damage.
func (l *Log) walkSegment(s *segment, fn func(Frame) error) error {
	endOff, endPos := s.endOff.Load(), s.endPos.Load()
	w := &window{r: s.store, size: endPos}
	prev, count := s.base-1, int64(0)
	for pos := int64(0); pos < endPos; {
		h, err := w.get(pos, frameHeaderSize)
		if err != nil {
			return s.corrupt(pos, prev+1, "torn frame header")
		}
		n, err := frameLen(binary.BigEndian.Uint32(h), l.opts.MaxRecordBytes)
		if err != nil {
			return s.corrupt(pos, prev+1, err.Error())
		}
		raw, err := w.get(pos, n)
		if err != nil {
			return s.corrupt(pos, prev+1, "torn frame")
		}
		f, _, err := DecodeFrame(raw, l.opts.MaxRecordBytes)
		if err != nil {
			return s.corrupt(pos, prev+1, err.Error())
		}
		if f.Offset <= prev || f.Offset >= endOff || !s.compacted && f.Offset != prev+1 {
			return s.corrupt(pos, prev+1, fmt.Sprintf("frame carries offset %d", f.Offset))
		}
		if err := fn(f); err != nil {
			return err
		}
		prev, count = f.Offset, count+1
		pos += int64(n)
	}
	if s.compacted && count != s.entries || !s.compacted && prev+1 != endOff {
		return s.corrupt(endPos, prev+1, "records missing from the store")
	}
	return nil
}
