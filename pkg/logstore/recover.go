package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// recovered describes one segment as recovery left it.
type recovered struct {
	base   int64
	count  int64 // offsets: records (index entries), unreadable placeholders included, or a compacted segment's span
	endPos int64 // store bytes; the append position of the active segment
	// compacted: a compacted segment (swap.go), whose sparse index holds
	// entries entries.
	compacted bool
	entries   int64
}

// recoverDir lists, checks and repairs the segments of l.dir and returns
// them oldest first. It tells a crash from corruption with the recovery
// point: a torn or zero-filled tail at or past it is truncated; a bad record
// below it is counted, logged and left in place, unreadable.
func (l *Log) recoverDir() ([]recovered, error) {
	fsys, lg := l.fs, l.lg
	if err := fsys.MkdirAll(l.dir, 0o755); err != nil {
		return nil, err
	}
	if err := l.recoverSwap(); err != nil {
		return nil, fmt.Errorf("logstore: finishing the swap of compacted segments: %w", err)
	}
	ents, err := fsys.ReadDir(l.dir)
	if err != nil {
		return nil, err
	}
	stores, indexes, descs := map[int64]bool{}, map[int64]bool{}, map[int64]bool{}
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, ".tmp"):
			lg.Info("removing leftover temp file", zap.String("file", name))
			if err := fsys.Remove(filepath.Join(l.dir, name)); err != nil {
				return nil, err
			}
		case strings.HasSuffix(name, storeSuffix):
			if base, ok := parseBase(name, storeSuffix); ok {
				stores[base] = true
			}
		case strings.HasSuffix(name, indexSuffix):
			if base, ok := parseBase(name, indexSuffix); ok {
				indexes[base] = true
			}
		case strings.HasSuffix(name, descSuffix):
			if base, ok := parseBase(name, descSuffix); ok {
				descs[base] = true
			}
		}
	}
	for base := range indexes {
		if !stores[base] {
			lg.Info("removing index without store", zap.String("file", indexName(base)))
			if err := fsys.Remove(filepath.Join(l.dir, indexName(base))); err != nil {
				return nil, err
			}
		}
	}
	for base := range descs {
		if !stores[base] {
			lg.Info("removing compacted-segment descriptor without store", zap.String("file", descName(base)))
			if err := fsys.Remove(filepath.Join(l.dir, descName(base))); err != nil {
				return nil, err
			}
		}
	}
	bases := make([]int64, 0, len(stores))
	for base := range stores {
		bases = append(bases, base)
	}
	slices.Sort(bases)

	rpf, err := openRecoveryPoint(fsys, l.dir)
	if err != nil {
		return nil, fmt.Errorf("logstore: opening the recovery point: %w", err)
	}
	l.rp = rpf
	rp := rpf.off

	var out []recovered
	for i, base := range bases {
		next := int64(-1)
		if i+1 < len(bases) {
			next = bases[i+1]
		}
		var r recovered
		var crashed bool
		var err error
		if descs[base] {
			r, err = l.recoverCompacted(base, next)
		} else {
			r, crashed, err = l.recoverSegment(base, next, rp, rpf.known)
		}
		if err != nil {
			return nil, fmt.Errorf("logstore: recovering %s: %w", storeName(base), err)
		}
		out = append(out, r)
		if crashed && next >= 0 {
			// Everything after a crash point was never known durable.
			for j := len(bases) - 1; j > i; j-- {
				lg.Warn("removing segment after crash point", zap.String("segment", storeName(bases[j])))
				if err := removeSegmentFiles(fsys, l.dir, bases[j]); err != nil {
					return nil, err
				}
			}
			if err := fsys.SyncDir(l.dir); err != nil {
				return nil, err
			}
			break
		}
	}
	if n := len(out); n > 0 && out[n-1].compacted {
		// A compacted segment is sealed; this one was left last by a crash
		// in Truncate (or damage took the segments after it). The active
		// segment starts at its end, or at the recovery point past it:
		// those offsets were durable and stay taken, reported missing.
		last := out[n-1]
		at := last.base + last.count
		if rpf.known && rp > at {
			l.noteCorrupt(&CorruptError{Segment: storeName(last.base), Position: last.endPos, Offset: at, End: rp,
				Reason: fmt.Sprintf("segments after a compacted segment missing below the recovery point %d", rp)})
			at = rp
		}
		for _, name := range []string{storeName(at), indexName(at)} {
			f, err := createFile(fsys, filepath.Join(l.dir, name))
			if err != nil {
				return nil, err
			}
			if err := f.Close(); err != nil {
				return nil, err
			}
		}
		out = append(out, recovered{base: at})
	}
	return out, nil
}

func parseBase(name, suffix string) (int64, bool) {
	s := strings.TrimSuffix(name, suffix)
	if len(s) != 20 {
		return 0, false
	}
	base, err := strconv.ParseInt(s, 10, 64)
	if err != nil || base < 0 {
		return 0, false
	}
	return base, true
}

func removeSegmentFiles(fsys FS, dir string, base int64) error {
	err := fsys.Remove(filepath.Join(dir, storeName(base)))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	ierr := fsys.Remove(filepath.Join(dir, indexName(base)))
	if errors.Is(ierr, fs.ErrNotExist) {
		ierr = nil
	}
	// The descriptor goes after the store: a compacted store is never
	// left without it (it would be checked as a dense one).
	derr := fsys.Remove(filepath.Join(dir, descName(base)))
	if errors.Is(derr, fs.ErrNotExist) {
		derr = nil
	}
	return errors.Join(err, ierr, derr)
}

// recoverCompacted checks a compacted segment (next is the following
// segment's base, -1 for the last) against its descriptor and rebuilds its
// index from the store unless the index is consistent with both. A
// compacted segment was fsynced before it was swapped in, so no damage in
// it is a torn write: all of it is corruption, reported and kept.
func (l *Log) recoverCompacted(base, next int64) (r recovered, err error) {
	fsys := l.fs
	d, derr := readDesc(fsys, filepath.Join(l.dir, descName(base)), base)
	if derr != nil {
		l.lg.Error("compacted segment's descriptor unreadable; checking the store without it",
			zap.String("segment", storeName(base)), zap.Error(derr))
	}
	sf, err := fsys.OpenFile(filepath.Join(l.dir, storeName(base)), os.O_RDONLY, 0)
	if err != nil {
		return r, err
	}
	defer func() { err = errors.Join(err, sf.Close()) }()
	fi, err := sf.Stat()
	if err != nil {
		return r, err
	}
	size := fi.Size()
	w := &window{r: sf, size: size}
	if derr == nil && d.bytes < size {
		l.lg.Error("compacted store longer than its descriptor says; ignoring the bytes past it",
			zap.String("segment", storeName(base)), zap.Int64("bytes", size), zap.Int64("descriptor_bytes", d.bytes))
		w.size = d.bytes
	}
	idxPath := filepath.Join(l.dir, indexName(base))
	idx, idxFileLen, err := readIndexPrefix(fsys, idxPath, (compactedMaxEntries(w.size)+1)*indexEntrySize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, err
	}
	if err == nil && derr == nil && size == d.bytes && (next < 0 || next == d.end) && idxFileLen == int64(len(idx)) {
		if n, ok := l.validSparseIndex(w, base, d.end, idx); ok && n == d.records {
			return recovered{base: base, count: d.end - base, endPos: size, compacted: true, entries: n}, nil
		}
	}
	l.stats.indexRebuilds.Add(1)
	entries, end := l.compactedIndex(w, base, next, d, derr == nil,
		func(c *CorruptError) { c.Segment = storeName(base); l.noteCorrupt(c) })
	if idxFileLen != int64(len(entries)) || string(idx) != string(entries) {
		if err := rewriteIndex(fsys, idxPath, entries); err != nil {
			return r, err
		}
	}
	return recovered{base: base, count: end - base, endPos: w.size, compacted: true,
		entries: int64(len(entries) / indexEntrySize)}, nil
}

// compactedMaxEntries bounds the index entries of a compacted store of
// size bytes: a record per frame (at least 24 bytes) and a placeholder
// before each, and two more at the end.
func compactedMaxEntries(size int64) int64 { return 2*(size/frameHeaderSize) + 4 }

// compactedIndex derives a compacted segment's index from its store (w, cut
// to the descriptor's bytes) and returns it with the segment's end offset:
// the descriptor's end, the next segment's base when that comes first (the
// segment's offsets from there on are ignored) or later (the offsets
// between are missing), and without a descriptor the next segment's base
// or, for the last segment, the offset after its last record. Damage gets
// placeholders as in scanCompacted; records the descriptor counts that are
// not in the store get one at the end of the store.
func (l *Log) compactedIndex(w *window, base, next int64, d segDesc, dOK bool, note func(*CorruptError)) (entries []byte, end int64) {
	end = int64(math.MaxInt64)
	if dOK {
		end = d.end
	}
	if next >= 0 && next < end {
		if dOK {
			l.lg.Error("compacted segment overlaps the next one; ignoring its offsets from there",
				zap.String("segment", storeName(base)), zap.Int64("end", d.end), zap.Int64("next_base", next))
		}
		end = next
	}
	known := end != math.MaxInt64
	end = min(end, base+math.MaxUint32)
	entries, records, last := l.scanCompacted(w, base, end, compactedMaxEntries(w.size), note)
	if !known {
		// The offset after the last entry (a record or a placeholder).
		end = base + 1
		if n := len(entries); n > 0 {
			rel, _ := parseIndexEntry(entries[n-indexEntrySize:])
			end = base + int64(rel) + 1
		}
	}
	placeholder := func(off, to int64, reason string) {
		entries = appendIndexEntry(entries, uint32(off-base), w.size)
		if note != nil {
			note(&CorruptError{Position: w.size, Offset: off, End: to, Reason: reason})
		}
	}
	if dOK && records < d.records && last+1 < end {
		placeholder(last+1, end, fmt.Sprintf("store holds %d of the %d records its descriptor counts", records, d.records))
	}
	if next > end {
		placeholder(end, next, fmt.Sprintf("segment ends before the next segment's base %d", next))
		end = next
	}
	return entries, end
}

// scanCompacted walks a compacted store's frames from position 0: their
// offsets increase, with gaps, from base up to limit (exclusive). It
// returns the index entries, the number of good frames and the last offset
// covered. At a bad frame it salvages what follows (salvage): the offsets
// from the last good one up to the next good frame get one placeholder
// entry at the damaged position (which offsets of them held records is
// not known), and note gets the range; with no good frame after, the
// placeholder covers the offsets up to limit.
func (l *Log) scanCompacted(w *window, base, limit, maxEntries int64, note func(*CorruptError)) (entries []byte, records, last int64) {
	entries = make([]byte, 0, min(maxEntries, 1<<16)*indexEntrySize)
	last = base - 1
	full := func() bool { return int64(len(entries)/indexEntrySize) >= maxEntries }
	placeholder := func(p, to int64, reason string) {
		if last+1 >= to || full() {
			return
		}
		entries = appendIndexEntry(entries, uint32(last+1-base), p)
		if note != nil {
			note(&CorruptError{Position: p, Offset: last + 1, End: to, Reason: reason})
		}
	}
	pos := int64(0)
	for pos < w.size && last+1 < limit && !full() {
		n, off, reason := l.frameIn(w, pos, last+1, limit)
		if reason == "" {
			entries = appendIndexEntry(entries, uint32(off-base), pos)
			records++
			last, pos = off, pos+int64(n)
			continue
		}
		good := l.salvage(w, pos+1, last+1, limit, nil)
		if len(good) == 0 {
			placeholder(pos, limit, reason)
			return entries, records, limit - 1
		}
		damaged := pos
		for _, g := range good {
			if g.pos != damaged {
				placeholder(damaged, g.off, reason)
			}
			if full() {
				break
			}
			entries = appendIndexEntry(entries, uint32(g.off-base), g.pos)
			records++
			last, pos = g.off, g.pos+g.n
			damaged, reason = pos, "damaged region"
		}
	}
	return entries, records, last
}

// frameIn checks the frame at pos, which should carry an offset in [lo,
// hi), and returns its size and offset, or why it is not a good frame.
func (l *Log) frameIn(w *window, pos, lo, hi int64) (int, int64, string) {
	h, err := w.get(pos, frameHeaderSize)
	if err != nil {
		return 0, 0, "torn frame header"
	}
	off := int64(binary.BigEndian.Uint64(h[8:]))
	if off < lo || off >= hi {
		return 0, 0, fmt.Sprintf("offset %d outside [%d, %d)", off, lo, hi)
	}
	n, reason := l.checkFrameAt(w, pos, off)
	return n, off, reason
}

// validSparseIndex checks a compacted segment's index against its store:
// relative offsets strictly increase below end, positions start at 0 and
// grow by at least a frame header, and the last entry's frame ends exactly
// at the end of the store. It returns the number of entries and whether
// the index can be trusted (one with placeholders never is).
func (l *Log) validSparseIndex(w *window, base, end int64, idx []byte) (int64, bool) {
	if len(idx)%indexEntrySize != 0 {
		return 0, false
	}
	n := int64(len(idx) / indexEntrySize)
	if n == 0 {
		return 0, w.size == 0
	}
	prevRel, prevPos := int64(-1), int64(-1)
	for i := int64(0); i < n; i++ {
		r, pos := parseIndexEntry(idx[i*indexEntrySize:])
		rel := int64(r)
		if rel <= prevRel || base+rel >= end || pos < 0 || pos >= w.size {
			return 0, false
		}
		if i == 0 && pos != 0 || i > 0 && pos-prevPos < frameHeaderSize {
			return 0, false
		}
		prevRel, prevPos = rel, pos
	}
	n1, reason := l.checkFrameAt(w, prevPos, base+prevRel)
	if reason != "" || prevPos+int64(n1) != w.size {
		return 0, false
	}
	return n, true
}

// recoverSegment checks one segment (next is the following segment's base,
// -1 for the last) and rebuilds its index from the store when the index is
// missing, inconsistent, or the segment reaches past the recovery point. It
// reports whether a crash tail was truncated.
//
// Without a valid recovery point (rpKnown false, rp 0) nothing tells a
// crash from corruption, and recovery errs on keeping data: only damage at
// the end of the last segment, with no good record after it, is taken for
// a torn write; anything else is reported as corruption and kept.
func (l *Log) recoverSegment(base, next, rp int64, rpKnown bool) (r recovered, crashed bool, err error) {
	fsys := l.fs
	sf, err := fsys.OpenFile(filepath.Join(l.dir, storeName(base)), os.O_RDWR, 0)
	if err != nil {
		return r, false, err
	}
	defer func() { err = errors.Join(err, sf.Close()) }()
	fi, err := sf.Stat()
	if err != nil {
		return r, false, err
	}
	size := fi.Size()
	maxEntries := l.opts.MaxIndexBytes / indexEntrySize
	if byStore := size/frameHeaderSize + 1; byStore > maxEntries {
		maxEntries = byStore
	}

	idxPath := filepath.Join(l.dir, indexName(base))
	idx, idxFileLen, err := readIndexPrefix(fsys, idxPath, maxEntries*indexEntrySize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return r, false, err
	}
	w := &window{r: sf, size: size}
	idxMissing := errors.Is(err, fs.ErrNotExist)
	// An index is trusted only for a segment wholly below the recovery
	// point (no torn tail possible) that ends where it must: at the next
	// segment's base, or for the last one at the recovery point itself.
	if n, ok := l.validIndex(w, base, idx); ok && !idxMissing && base+n <= rp && (next < 0 && base+n == rp || base+n == next) {
		if next >= 0 && idxFileLen != n*indexEntrySize {
			if err := rewriteIndex(fsys, idxPath, idx[:n*indexEntrySize]); err != nil {
				return r, false, err
			}
		}
		return recovered{base: base, count: n, endPos: size}, false, nil
	}

	// Scan the store, rebuilding the index.
	l.stats.indexRebuilds.Add(1)
	limitOff, fill := int64(math.MaxInt64), rp
	if next >= 0 {
		limitOff, fill = next, next
	}
	// Damage at or past the recovery point is a torn write: cut there.
	// Below it, it is corruption: keep the bytes, never serve them. Its
	// offsets stay taken (the last segment's up to the recovery point: they
	// were durable), and appends go after them.
	isTorn := func(off int64, followed bool) bool { return off >= rp }
	if !rpKnown {
		isTorn = func(_ int64, followed bool) bool { return next < 0 && !followed }
	}
	entries, off, pos, torn := l.scanStore(w, base, limitOff, fill, maxEntries, isTorn,
		func(c *CorruptError) { c.Segment = storeName(base); l.noteCorrupt(c) }, hintFrom(idx, base))
	if torn {
		l.lg.Warn("truncating torn tail after crash",
			zap.String("segment", storeName(base)), zap.Int64("offset", off),
			zap.Int64("position", pos), zap.Int64("bytes", size-pos), zap.Int64("recovery_point", rp))
		if err := sf.Truncate(pos); err != nil {
			return r, false, err
		}
		if err := sf.Sync(); err != nil {
			return r, false, err
		}
		l.stats.truncatedBytes.Add(size - pos)
		size = pos
		crashed = true
	}
	if next >= 0 && !crashed && off < next && off >= rp && rpKnown {
		// The store ends early past what was synced: the rest of it, and
		// the segments after it, were never durable (a crash).
		l.lg.Warn("segment ends early past the recovery point; dropping what follows",
			zap.String("segment", storeName(base)), zap.Int64("offset", off), zap.Int64("recovery_point", rp))
		crashed = true
	}
	if next >= 0 && !crashed {
		if off < next {
			c := &CorruptError{Segment: storeName(base), Position: size, Offset: off,
				Reason: fmt.Sprintf("segment ends before the next segment's base %d", next)}
			for ; off < next && off-base < maxEntries; off++ {
				entries = appendIndexEntry(entries, uint32(off-base), size)
			}
			c.End = off
			l.noteCorrupt(c)
		}
		if pos < size && off >= next {
			l.lg.Error("segment overlaps the next one; ignoring its tail",
				zap.String("segment", storeName(base)), zap.Int64("next_base", next), zap.Int64("position", pos))
			size = pos
		}
	}
	if next < 0 && !crashed && off < rp {
		// The store ends before records known durable: they were lost
		// after they were synced. Their offsets stay taken, unreadable.
		c := &CorruptError{Segment: storeName(base), Position: size, Offset: off,
			Reason: fmt.Sprintf("store ends before the recovery point %d", rp)}
		for ; off < rp && off-base < maxEntries; off++ {
			entries = appendIndexEntry(entries, uint32(off-base), size)
		}
		c.End = off
		l.noteCorrupt(c)
	}
	if err := rewriteIndex(fsys, idxPath, entries); err != nil {
		return r, crashed, err
	}
	return recovered{base: base, count: off - base, endPos: size}, crashed, nil
}

// scanStore walks a store's frames from position 0, offsets from base, up to
// limit (exclusive) or the end of the store, and returns the index entries
// it found, the next offset and the position where the walk ended. At the
// first bad frame of a damaged region it salvages what follows (salvage).
// If isTorn says so for the damaged offset (and whether any good frame
// follows), the walk ends there instead (torn is then true, and pos is
// where the damage starts). Otherwise each offset the damage took gets a
// placeholder entry at the damaged position (unreadable, never
// re-assigned), and note (if set) gets the damaged range. When no good
// frame follows, placeholders run up to fill (at least the damaged offset)
// and the walk ends at the end of the store.
func (l *Log) scanStore(w *window, base, limit, fill, maxEntries int64, isTorn func(off int64, followed bool) bool, note func(*CorruptError), hint indexHint) (entries []byte, off, pos int64, torn bool) {
	entries = make([]byte, 0, min(maxEntries, 1<<16)*indexEntrySize)
	off = base
	// placeholders gives [off, to) entries at the damaged position p.
	placeholders := func(to, p int64, reason string) {
		first := off
		for ; off < to && off-base < maxEntries; off++ {
			entries = appendIndexEntry(entries, uint32(off-base), p)
		}
		if off > first && note != nil {
			note(&CorruptError{Position: p, Offset: first, End: off, Reason: reason})
		}
	}
	for pos < w.size && off < limit && off-base < maxEntries {
		n, reason := l.checkFrameAt(w, pos, off)
		if reason == "" {
			entries = appendIndexEntry(entries, uint32(off-base), pos)
			pos += int64(n)
			off++
			continue
		}
		good := l.salvage(w, pos+1, off, limit, hint)
		if isTorn(off, len(good) > 0) {
			return entries, off, pos, true
		}
		if len(good) == 0 {
			placeholders(max(fill, off+1), pos, reason)
			return entries, off, w.size, false
		}
		if good[0].off == off {
			l.lg.Warn("stray bytes between records; no record damaged", zap.Int64("offset", off),
				zap.Int64("position", pos), zap.Int64("bytes", good[0].pos-pos))
		}
		damaged := pos
		for _, g := range good {
			placeholders(g.off, damaged, reason)
			if off-base >= maxEntries {
				break
			}
			entries = appendIndexEntry(entries, uint32(off-base), g.pos)
			off, pos = g.off+1, g.pos+g.n
			damaged, reason = pos, "damaged region"
		}
	}
	return entries, off, pos, false
}

// goodFrame is a frame salvage found intact.
type goodFrame struct{ pos, off, n int64 }

// salvage finds the intact frames at or after from whose offsets lie in
// [off, limit), and keeps the longest run of them whose offsets increase
// with their positions, as a segment's frames do; of equally long runs,
// the one that starts first. A misdirected write can leave a copy of an
// earlier or a later frame inside the damage; the longest run leaves such
// strays out instead of letting one hide the intact records around it.
// The damaged offset itself counts: stray bytes written between two frames
// damage no record.
func (l *Log) salvage(w *window, from, off, limit int64, hint indexHint) []goodFrame {
	var found []goodFrame
	for q := from; q+frameHeaderSize <= w.size; {
		h, err := w.get(q, frameHeaderSize)
		if err != nil {
			break
		}
		if _, err := frameLen(binary.BigEndian.Uint32(h), l.opts.MaxRecordBytes); err == nil {
			if o := int64(binary.BigEndian.Uint64(h[8:])); o >= off && o < limit {
				if n, reason := l.checkFrameAt(w, q, o); reason == "" {
					found = append(found, goodFrame{pos: q, off: o, n: int64(n)})
					q += int64(n) // an intact frame's bytes hold no other frame
					continue
				}
			}
		}
		q++
	}
	run := longestRun(found)
	if hint == nil {
		return run
	}
	// A frame the segment's old index places elsewhere may be a copy
	// written to the wrong place. Leave such frames out when that costs
	// the run no length: between equally long runs, the one the index
	// agrees with (a damaged index can only lose this tie-break, never a
	// frame a longer run holds).
	var agreed []goodFrame
	for _, g := range found {
		if p, ok := hint(g.off); !ok || p == g.pos {
			agreed = append(agreed, g)
		}
	}
	if len(agreed) < len(found) {
		if alt := longestRun(agreed); len(alt) == len(run) {
			return alt
		}
	}
	return run
}

// indexHint is where a segment's index, as found at open, places offset
// off; false when it has no entry for it. Nil means no index to ask.
type indexHint func(off int64) (pos int64, ok bool)

// hintFrom reads idx (a segment's index file as found) as an indexHint: an
// entry counts only when its stored relative offset is its own.
func hintFrom(idx []byte, base int64) indexHint {
	return func(off int64) (int64, bool) {
		i := off - base
		if i < 0 || (i+1)*indexEntrySize > int64(len(idx)) {
			return 0, false
		}
		rel, pos := parseIndexEntry(idx[i*indexEntrySize:])
		if int64(rel) != i {
			return 0, false
		}
		return pos, true
	}
}

// longestRun returns the longest subsequence of frames (in position order)
// whose offsets strictly increase, the earliest-starting of equals:
// length[i] is the longest run starting at frame i, found right to left
// with best[k], the highest first offset of a run of k+1 frames.
func longestRun(frames []goodFrame) []goodFrame {
	length := make([]int, len(frames))
	var best []int64 // decreasing
	for i := len(frames) - 1; i >= 0; i-- {
		o := frames[i].off
		k := sort.Search(len(best), func(k int) bool { return best[k] <= o })
		length[i] = k + 1
		if k == len(best) {
			best = append(best, o)
		} else {
			best[k] = max(best[k], o)
		}
	}
	out := make([]goodFrame, 0, len(best))
	need, last := len(best), int64(-1)
	for i := range frames {
		if need > 0 && length[i] == need && frames[i].off > last {
			out = append(out, frames[i])
			last = frames[i].off
			need--
		}
	}
	return out
}

// repairIndex rebuilds s's index from its store after a read found an
// entry that does not lead to its record: the index is derived state, and
// one damaged entry must not hide an intact record. The entries are written
// in place (a sealed segment's mapping sees them; the count is unchanged, so
// the file never shrinks under it). It reports whether the index was
// checked, now or before: each segment is scanned at most once per Open, so
// a record that is really damaged costs one scan, not one per read.
//
// It takes the writer's lock (a rare path): the segment must not be
// truncated, replaced or deleted while its index file is rewritten.
func (l *Log) repairIndex(s *segment) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.dead.Load() || l.isClosed.Load() {
		return true // replaced meanwhile: the caller looks again
	}
	if s.indexChecked {
		return true
	}
	s.indexChecked = true
	endOff, endPos := s.endOff.Load(), s.endPos.Load()
	n := endOff - s.base
	w := &window{r: s.store, size: endPos}
	var entries []byte
	if s.compacted {
		// As recovery derived it: the segment ends at the next one's base.
		d, derr := readDesc(l.fs, s.descPath(), s.base)
		entries, _ = l.compactedIndex(w, s.base, endOff, d, derr == nil, nil)
		if int64(len(entries)) != s.entries*indexEntrySize {
			return false // the store changed since Open: leave it to the next one
		}
	} else {
		var off int64
		// The index being repaired still tells, for most offsets, where
		// their frames are: a tie-break against misdirected copies.
		old := make([]byte, n*indexEntrySize)
		var hint indexHint
		if k, err := s.index.ReadAt(old, 0); err == nil || k == len(old) {
			hint = hintFrom(old, s.base)
		}
		entries, off, _, _ = l.scanStore(w, s.base, endOff, endOff, n, func(int64, bool) bool { return false }, nil, hint)
		for ; off < endOff; off++ {
			// The store ends before the segment's last offset (recovery found
			// them missing): placeholders at the end, as recovery left them.
			entries = appendIndexEntry(entries, uint32(off-s.base), endPos)
		}
	}
	old := make([]byte, len(entries))
	if _, err := s.index.ReadAt(old, 0); err == nil && string(old) == string(entries) {
		return true
	}
	write := func(f File) error {
		if _, err := f.WriteAt(entries, 0); err != nil {
			return err
		}
		return f.Sync()
	}
	var err error
	if s.indexFile != nil {
		err = write(s.indexFile)
	} else {
		var f File
		if f, err = l.fs.OpenFile(s.indexPath(), os.O_RDWR, 0); err == nil {
			err = errors.Join(write(f), f.Close())
		}
	}
	l.stats.indexRebuilds.Add(1)
	if err != nil {
		l.lg.Error("index repair failed", zap.String("segment", s.name), zap.Error(err))
		return false
	}
	l.lg.Warn("index entry did not match its record; rebuilt the index from the store", zap.String("segment", s.name))
	return true
}

// readIndexPrefix reads up to limit bytes of an index file and its length.
func readIndexPrefix(fsys FS, name string, limit int64) ([]byte, int64, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, errors.Join(err, f.Close())
	}
	b := make([]byte, min(fi.Size(), limit))
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, errors.Join(err, f.Close())
	}
	return b[:n], fi.Size(), f.Close()
}

// rewriteIndex replaces an index file's content with entries and syncs it.
// The index is derived state: a crash while writing it is repaired by the
// next recovery, so no temp file is needed.
func rewriteIndex(fsys FS, name string, entries []byte) error {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(entries, 0); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Truncate(int64(len(entries))); err != nil {
		return errors.Join(err, f.Close())
	}
	return errors.Join(f.Sync(), f.Close())
}

// validIndex checks an index against its store: entry i must be offset
// base+i, positions must start at 0 and grow by at least a frame header
// (or stay put for unreadable placeholders), and the last entry's frame must
// end exactly at the end of the store. Trailing zero entries (a
// preallocated index after a crash) are not entries. It returns the number
// of entries and whether the index can be trusted.
func (l *Log) validIndex(w *window, base int64, idx []byte) (int64, bool) {
	if len(idx)%indexEntrySize != 0 {
		return 0, false
	}
	n := int64(len(idx) / indexEntrySize)
	for n > 1 && isZero(idx[(n-1)*indexEntrySize:n*indexEntrySize]) {
		n--
	}
	if n == 1 && w.size == 0 && isZero(idx[:indexEntrySize]) {
		n = 0
	}
	if n == 0 {
		return 0, w.size == 0
	}
	prev := int64(-1)
	for i := int64(0); i < n; i++ {
		rel, pos := parseIndexEntry(idx[i*indexEntrySize:])
		if int64(rel) != i || pos < 0 || pos >= w.size {
			return 0, false
		}
		if i == 0 && pos != 0 || i > 0 && pos != prev && pos-prev < frameHeaderSize {
			return 0, false
		}
		prev = pos
	}
	n1, reason := l.checkFrameAt(w, prev, base+n-1)
	if reason != "" || prev+int64(n1) != w.size {
		return 0, false
	}
	return n, true
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkFrameAt checks the frame at pos, which should carry offset off, and
// returns its size, or why it is not a good frame.
func (l *Log) checkFrameAt(w *window, pos, off int64) (int, string) {
	h, err := w.get(pos, frameHeaderSize)
	if err != nil {
		return 0, "torn frame header"
	}
	n, err := frameLen(binary.BigEndian.Uint32(h), l.opts.MaxRecordBytes)
	if err != nil {
		return 0, err.Error()
	}
	raw, err := w.get(pos, n)
	if err != nil {
		return 0, "torn frame"
	}
	if crc32.Checksum(raw[8:], castagnoli) != binary.BigEndian.Uint32(raw[4:]) {
		return 0, "checksum mismatch"
	}
	if got := int64(binary.BigEndian.Uint64(raw[8:])); got != off {
		return 0, fmt.Sprintf("offset %d, want %d", got, off)
	}
	return n, ""
}

// window reads a file sequentially through one reusable buffer.
type window struct {
	r     io.ReaderAt
	size  int64
	buf   []byte
	start int64
	n     int
}

const windowSize = 1 << 20

// get returns the n bytes at pos, valid until the next call.
func (w *window) get(pos int64, n int) ([]byte, error) {
	if pos < 0 || pos+int64(n) > w.size {
		return nil, io.ErrUnexpectedEOF
	}
	if pos >= w.start && pos+int64(n) <= w.start+int64(w.n) {
		return w.buf[pos-w.start : pos-w.start+int64(n)], nil
	}
	want := int(min(int64(max(n, windowSize)), w.size-pos))
	if cap(w.buf) < want {
		w.buf = make([]byte, want)
	}
	m, err := w.r.ReadAt(w.buf[:want], pos)
	if m < n {
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		w.n = 0
		return nil, err
	}
	w.start, w.n = pos, m
	return w.buf[:n], nil
}
