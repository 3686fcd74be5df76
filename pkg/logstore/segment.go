package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

const (
	storeSuffix = ".log"
	indexSuffix = ".index"
)

func storeName(base int64) string { return fmt.Sprintf("%020d%s", base, storeSuffix) }
func indexName(base int64) string { return fmt.Sprintf("%020d%s", base, indexSuffix) }

// segment is one store file and its index. A segment object is shared by the
// writer and any number of readers through reference counts: the Log's
// segment list holds one reference, every reader positioned in it holds one,
// and its files are closed (unmapped) only when the last one is dropped. A
// segment that is sealed is immutable; the active segment only grows, except
// under Truncate, which bumps gen while holding mu.
type segment struct {
	base int64
	name string // store file name, for errors
	dir  string

	// store and index are what readers read: the files of the active
	// segment, the mappings of a sealed one.
	store io.ReaderAt
	index io.ReaderAt

	// Exactly one of the pairs below is set.
	storeFile, indexFile File   // active
	storeMap, indexMap   Mapped // sealed
	sealed               bool

	// endPos then endOff are published by the writer (in that order; readers
	// load endOff first): every record below endOff is complete below endPos.
	endOff atomic.Int64
	endPos atomic.Int64
	// gen is bumped when the segment shrinks in place (Truncate); readers
	// holding buffered bytes of it re-validate their position.
	gen atomic.Uint64
	// mu is held exclusively while the segment shrinks; a reader
	// repositioning after a gen change takes it shared.
	mu sync.RWMutex

	// indexChecked is set once the index was checked against the store
	// (recover.go repairIndex), under the Log's mu.
	indexChecked bool

	// compacted says the segment was written by the cleaner (compact.go):
	// its offsets [base, endOff) have gaps, its index is sparse (entries
	// entries, relative offsets strictly increasing) and it is sealed.
	compacted bool
	entries   int64

	refs atomic.Int32
	dead atomic.Bool // deleted or replaced: readers re-resolve

	// maxTs is the newest record timestamp, math.MinInt64 when unknown yet
	// (sealed segments not scanned at open compute it on first use).
	maxTs      atomic.Int64
	maxTsKnown atomic.Bool
}

func (s *segment) storePath() string { return filepath.Join(s.dir, storeName(s.base)) }
func (s *segment) indexPath() string { return filepath.Join(s.dir, indexName(s.base)) }
func (s *segment) descPath() string  { return filepath.Join(s.dir, descName(s.base)) }

// publish makes records up to off (exclusive), ending at pos, visible.
func (s *segment) publish(off, pos int64) {
	s.endPos.Store(pos)
	s.endOff.Store(off)
}

// tryAcquire takes a reference unless the segment already lost its last one.
func (s *segment) tryAcquire() bool {
	for {
		n := s.refs.Load()
		if n <= 0 {
			return false
		}
		if s.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// release drops a reference and closes the files with the last one.
func (s *segment) release() error {
	if s.refs.Add(-1) != 0 {
		return nil
	}
	return s.closeFiles()
}

func (s *segment) closeFiles() error {
	var errs []error
	if s.storeFile != nil {
		errs = append(errs, s.storeFile.Close())
	}
	if s.indexFile != nil {
		errs = append(errs, s.indexFile.Close())
	}
	if s.storeMap != nil {
		errs = append(errs, s.storeMap.Close())
	}
	if s.indexMap != nil {
		errs = append(errs, s.indexMap.Close())
	}
	return errors.Join(errs...)
}

// lookup returns the store position of off, which must be below a loaded
// endOff of s.
func (s *segment) lookup(off int64) (int64, error) {
	rel := off - s.base
	if rel < 0 || rel > math.MaxUint32 {
		return 0, s.corrupt(-1, off, "offset outside the segment")
	}
	var b [indexEntrySize]byte
	if _, err := s.index.ReadAt(b[:], rel*indexEntrySize); err != nil {
		return 0, s.corrupt(-1, off, "index entry unreadable: "+err.Error())
	}
	r, pos := parseIndexEntry(b[:])
	if int64(r) != rel || pos < 0 {
		return 0, s.corrupt(-1, off, "index entry does not match its offset")
	}
	return pos, nil
}

// seek returns the store position of the first record at or after off
// (below a loaded endOff of s) and that record's offset, at. In a dense
// segment at is off. In a compacted one it is the next surviving offset,
// or endOff (pos endPos) when no record at or after off is left in s.
func (s *segment) seek(off int64) (pos, at int64, err error) {
	if !s.compacted {
		pos, err := s.lookup(off)
		return pos, off, err
	}
	i, rel, pos, err := s.searchSparse(off)
	if err != nil {
		return 0, 0, err
	}
	if i == s.entries {
		return s.endPos.Load(), s.endOff.Load(), nil
	}
	return pos, s.base + int64(rel), nil
}

// entry reads index entry i.
func (s *segment) entry(i int64) (rel uint32, pos int64, err error) {
	var b [indexEntrySize]byte
	if _, err := s.index.ReadAt(b[:], i*indexEntrySize); err != nil {
		return 0, 0, err
	}
	rel, pos = parseIndexEntry(b[:])
	return rel, pos, nil
}

// searchSparse finds the first entry of a compacted segment's index whose
// offset is at or after off: its number i (s.entries when there is none),
// relative offset and position. Relative offsets strictly increase, so
// entry k has one >= k: the fast path is entry rel itself, when no
// record before off was removed; otherwise a binary search over entries
// [0, rel]. When the search passes over a gap, the entry before must be a
// frame ending where the found one starts, so that a damaged entry cannot
// make a read skip records silently: it reads as a mismatch and the index
// is rebuilt (repairIndex).
func (s *segment) searchSparse(off int64) (i int64, rel uint32, pos int64, err error) {
	want := off - s.base
	if want < 0 || want > math.MaxUint32 {
		return 0, 0, 0, s.corrupt(-1, off, "offset outside the segment")
	}
	unreadable := func(err error) error {
		return s.corrupt(-1, off, "index entry unreadable: "+err.Error())
	}
	n := s.entries
	if want < n {
		r, p, err := s.entry(want)
		if err != nil {
			return 0, 0, 0, unreadable(err)
		}
		if int64(r) == want {
			return want, r, p, nil
		}
	}
	lo, hi := int64(0), min(n, want+1)
	for lo < hi {
		m := (lo + hi) / 2
		r, _, err := s.entry(m)
		if err != nil {
			return 0, 0, 0, unreadable(err)
		}
		if int64(r) < want {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == n {
		return n, 0, 0, nil
	}
	r, p, err := s.entry(lo)
	if err != nil {
		return 0, 0, 0, unreadable(err)
	}
	if int64(r) < want {
		return 0, 0, 0, s.corrupt(-1, off, "index entries out of order")
	}
	if lo > 0 && int64(r) > want {
		pr, pp, err := s.entry(lo - 1)
		if err != nil {
			return 0, 0, 0, unreadable(err)
		}
		if int64(pr) >= want {
			return 0, 0, 0, s.corrupt(-1, off, "index entries out of order")
		}
		n, ok := s.frameAt(pp, s.base+int64(pr))
		if !ok {
			// The entry before is a placeholder: off lies in the damaged
			// range it starts, and reads as damaged at its position.
			return lo - 1, uint32(want), pp, nil
		}
		if pp+int64(n) != p {
			return 0, 0, 0, s.corrupt(pp, off, "index entries do not follow the store")
		}
	}
	return lo, r, p, nil
}

// frameAt reports whether a good frame of offset off starts at pos, and
// its size.
func (s *segment) frameAt(pos, off int64) (int, bool) {
	var h [frameHeaderSize]byte
	if _, err := s.store.ReadAt(h[:], pos); err != nil {
		return 0, false
	}
	n, err := frameLen(binary.BigEndian.Uint32(h[:]), math.MaxUint32-frameHeaderSize)
	if err != nil || pos+int64(n) > s.endPos.Load() || int64(binary.BigEndian.Uint64(h[8:])) != off {
		return 0, false
	}
	raw := make([]byte, n)
	if _, err := s.store.ReadAt(raw, pos); err != nil {
		return 0, false
	}
	if crc32.Checksum(raw[8:], castagnoli) != binary.BigEndian.Uint32(raw[4:]) {
		return 0, false
	}
	return n, true
}

// damagedEndSparse is damagedEnd for a compacted segment: the offset of the
// first entry after at whose position differs from pos (the next record
// after a damaged region), or endOff.
func (s *segment) damagedEndSparse(at, pos, endOff int64) int64 {
	want := at - s.base
	lo, hi := int64(0), s.entries
	for lo < hi {
		m := (lo + hi) / 2
		r, _, err := s.entry(m)
		if err != nil {
			return at + 1
		}
		if int64(r) <= want {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := lo; i < s.entries; i++ {
		r, p, err := s.entry(i)
		if err != nil {
			return at + 1
		}
		if p != pos {
			return min(s.base+int64(r), endOff)
		}
	}
	return endOff
}

// damagedEnd returns the end of the run of offsets from off (below endOff)
// whose index entries all point at pos: the placeholders recovery gave a
// damaged range.
func (s *segment) damagedEnd(off, pos, endOff int64) int64 {
	const chunk = 256
	var b [chunk * indexEntrySize]byte
	end := off + 1
	for end < endOff {
		n := min(endOff-end, chunk)
		if _, err := s.index.ReadAt(b[:n*indexEntrySize], (end-s.base)*indexEntrySize); err != nil {
			return end
		}
		for i := int64(0); i < n; i++ {
			rel, p := parseIndexEntry(b[i*indexEntrySize:])
			if int64(rel) != end-s.base || p != pos {
				return end
			}
			end++
		}
	}
	return end
}

func (s *segment) corrupt(pos, off int64, reason string) *CorruptError {
	return &CorruptError{Segment: s.name, Position: pos, Offset: off, Reason: reason}
}

// newestTimestamp returns the newest record timestamp in s (math.MinInt64
// for an empty one), scanning the segment once if it is not known yet.
func (s *segment) newestTimestamp() int64 {
	if s.maxTsKnown.Load() {
		return s.maxTs.Load()
	}
	maxTs := int64(math.MinInt64)
	var b [8]byte
	if s.compacted {
		for i := int64(0); i < s.entries; i++ {
			_, pos, err := s.entry(i)
			if err != nil {
				break
			}
			if _, err := s.store.ReadAt(b[:], pos+16); err != nil {
				continue
			}
			maxTs = max(maxTs, int64(binary.BigEndian.Uint64(b[:])))
		}
	}
	for off := s.base; !s.compacted && off < s.endOff.Load(); off++ {
		pos, err := s.lookup(off)
		if err != nil {
			continue
		}
		if _, err := s.store.ReadAt(b[:], pos+16); err != nil {
			continue
		}
		if ts := int64(binary.BigEndian.Uint64(b[:])); ts > maxTs {
			maxTs = ts
		}
	}
	s.maxTs.Store(maxTs)
	s.maxTsKnown.Store(true)
	return maxTs
}

func (s *segment) noteTimestamp(ts int64) {
	if ts > s.maxTs.Load() {
		s.maxTs.Store(ts)
	}
}

// openSealed maps a sealed segment whose records [base, endOff) end at endPos.
func openSealed(fsys FS, dir string, base, endOff, endPos int64) (*segment, error) {
	s := &segment{base: base, name: storeName(base), dir: dir, sealed: true}
	sm, err := fsys.Map(s.storePath())
	if err != nil {
		return nil, err
	}
	im, err := fsys.Map(s.indexPath())
	if err != nil {
		return nil, errors.Join(err, sm.Close())
	}
	if int64(sm.Len()) < endPos || int64(im.Len()) < (endOff-base)*indexEntrySize {
		return nil, errors.Join(fmt.Errorf("logstore: segment %s shorter than recovered", s.name), sm.Close(), im.Close())
	}
	s.storeMap, s.indexMap = sm, im
	s.store, s.index = sm, im
	s.publish(endOff, endPos)
	s.maxTs.Store(math.MinInt64)
	s.refs.Store(1)
	return s, nil
}

// openCompacted maps a compacted segment covering offsets [base, endOff),
// whose store is endPos bytes and whose index holds entries entries.
func openCompacted(fsys FS, dir string, base, endOff, endPos, entries int64) (*segment, error) {
	s := &segment{base: base, name: storeName(base), dir: dir, sealed: true, compacted: true, entries: entries}
	sm, err := fsys.Map(s.storePath())
	if err != nil {
		return nil, err
	}
	im, err := fsys.Map(s.indexPath())
	if err != nil {
		return nil, errors.Join(err, sm.Close())
	}
	if int64(sm.Len()) < endPos || int64(im.Len()) < entries*indexEntrySize {
		return nil, errors.Join(fmt.Errorf("logstore: segment %s shorter than recovered", s.name), sm.Close(), im.Close())
	}
	s.storeMap, s.indexMap = sm, im
	s.store, s.index = sm, im
	s.publish(endOff, endPos)
	s.maxTs.Store(math.MinInt64)
	s.refs.Store(1)
	return s, nil
}

// openActive opens the files of the active segment for reading and writing;
// the index is preallocated to indexBytes.
func openActive(fsys FS, dir string, base, endOff, endPos, indexBytes int64) (*segment, error) {
	s := &segment{base: base, name: storeName(base), dir: dir}
	sf, err := fsys.OpenFile(s.storePath(), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	xf, err := fsys.OpenFile(s.indexPath(), os.O_RDWR, 0)
	if err != nil {
		return nil, errors.Join(err, sf.Close())
	}
	if used := (endOff - base) * indexEntrySize; indexBytes > used {
		if err := xf.Truncate(indexBytes); err != nil {
			return nil, errors.Join(err, sf.Close(), xf.Close())
		}
	}
	s.storeFile, s.indexFile = sf, xf
	s.store, s.index = sf, xf
	s.publish(endOff, endPos)
	s.maxTs.Store(math.MinInt64)
	s.maxTsKnown.Store(true) // the writer keeps it current
	s.refs.Store(1)
	return s, nil
}

// createSegment creates the empty files of a new segment safely (created,
// synced, directory synced) and opens it as the active segment.
func createSegment(fsys FS, dir string, base, indexBytes int64) (*segment, error) {
	sf, err := createFile(fsys, filepath.Join(dir, storeName(base)))
	if err != nil {
		return nil, err
	}
	if err := sf.Close(); err != nil {
		return nil, err
	}
	xf, err := createFile(fsys, filepath.Join(dir, indexName(base)))
	if err != nil {
		return nil, err
	}
	if err := xf.Close(); err != nil {
		return nil, err
	}
	return openActive(fsys, dir, base, base, 0, indexBytes)
}

// segList is an immutable snapshot of the segments, oldest first; the last
// one is the active segment.
type segList struct {
	segs []*segment
}

// find returns the segment holding off: the last one whose base <= off.
func (l *segList) find(off int64) *segment {
	lo, hi := 0, len(l.segs)
	for lo < hi {
		m := (lo + hi) / 2
		if l.segs[m].base <= off {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return nil
	}
	return l.segs[lo-1]
}
