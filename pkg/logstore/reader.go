package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"

	"go.uber.org/zap"
)

// readerBufSize is how much of a store a Reader copies at a time.
const readerBufSize = 64 << 10

// errReposition tells a read loop that the segment changed under it.
var errReposition = errors.New("logstore: segment changed; reposition")

// Reader reads the log sequentially from an offset. It is not safe for
// concurrent use; use one Reader per goroutine. It takes no lock on the
// write path: it pins its current segment with a reference and copies
// frames out of the segment (a mapping, or the active file) into its own
// buffer, which the returned Frames alias.
type Reader struct {
	l      *Log
	seg    *segment
	off    int64 // next offset to return
	pos    int64 // its store position in seg, -1 until looked up
	gen    uint64
	buf    []byte
	bufPos int64 // store position of buf[0]
	bufLen int
	closed bool
}

// NewReader reads from offset onwards. Next returns io.EOF at the current log
// end (the caller may wait on Changed() and call Next again).
func (l *Log) NewReader(offset int64) (*Reader, error) {
	if l.isClosed.Load() {
		return nil, ErrClosed
	}
	r := &Reader{l: l, off: offset, pos: -1}
	if err := r.resolve(); err != nil {
		return nil, err
	}
	return r, nil
}

// Offset is the offset the next call to Next returns.
func (r *Reader) Offset() int64 { return r.off }

// Close releases the reader's segment.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	return r.dropSegment()
}

func (r *Reader) dropSegment() error {
	if r.seg == nil {
		return nil
	}
	s := r.seg
	r.seg, r.pos, r.bufLen = nil, -1, 0
	return s.release()
}

// resolve pins the segment holding r.off in the current segment list.
func (r *Reader) resolve() error {
	if err := r.dropSegment(); err != nil {
		r.l.lg.Warn("closing segment files", zap.Error(err))
	}
	for {
		if r.l.isClosed.Load() {
			return ErrClosed
		}
		list := r.l.segs.Load()
		start, end := list.segs[0].base, r.l.end.Load()
		if r.off < start || r.off > end {
			return &OutOfRangeError{Offset: r.off, Start: start, End: end}
		}
		s := list.find(r.off)
		if !s.tryAcquire() {
			continue // unpublished meanwhile: a newer list is out
		}
		if s.dead.Load() {
			if err := s.release(); err != nil {
				return err
			}
			continue
		}
		r.seg, r.gen, r.pos, r.bufLen = s, s.gen.Load(), -1, 0
		return nil
	}
}

// reposition re-validates r.off after its segment shrank.
func (r *Reader) reposition() error {
	s := r.seg
	s.mu.RLock()
	r.gen, r.pos, r.bufLen = s.gen.Load(), -1, 0
	s.mu.RUnlock()
	if end := r.l.end.Load(); r.off > end {
		return &OutOfRangeError{Offset: r.off, Start: r.l.LogStartOffset(), End: end}
	}
	return nil
}

// Next returns the next record. It returns io.EOF at the log end, a
// *CorruptError for a record that fails its checks (the reader moves past
// it), an *OutOfRangeError if the log no longer holds the reader's offset,
// and ErrClosed after Close of the reader or the log.
func (r *Reader) Next() (Frame, error) {
	f, n, err := r.peek()
	if err != nil {
		var c *CorruptError
		if errors.As(err, &c) {
			r.skip(c)
		}
		return Frame{}, err
	}
	r.off++
	r.pos += int64(n)
	return f, nil
}

// ReadFrames appends whole raw frames to dst until maxBytes would be
// exceeded (at least one frame if any is available) and returns the offset
// of the next frame; for Fetch / streaming without re-encoding. It returns
// io.EOF only when no frame was available; a corrupt record ends the batch
// before it and is returned by the next call.
func (r *Reader) ReadFrames(dst []byte, maxBytes int) (out []byte, next int64, err error) {
	return r.ReadFramesBefore(dst, maxBytes, math.MaxInt64)
}

// ReadFramesBefore is ReadFrames stopping before offset before (a leader
// epoch boundary, so that one batch of frames belongs to one epoch). At
// before it returns no frames and a nil error.
func (r *Reader) ReadFramesBefore(dst []byte, maxBytes int, before int64) (out []byte, next int64, err error) {
	got := 0
	for {
		if r.off >= before {
			return dst, r.off, nil
		}
		f, n, err := r.peek()
		if err != nil {
			if got > 0 {
				return dst, r.off, nil
			}
			var c *CorruptError
			if errors.As(err, &c) {
				r.skip(c)
			}
			return dst, r.off, err
		}
		if f.Offset >= before {
			return dst, r.off, nil // past a gap of a compacted segment
		}
		if got > 0 && got+n > maxBytes {
			return dst, r.off, nil
		}
		if got == 0 {
			dst = r.reserve(dst, maxBytes)
		}
		dst = append(dst, f.Raw...)
		got += n
		r.off++
		r.pos += int64(n)
	}
}

// reserve grows dst once for the frames a batch is about to take: up to
// maxBytes of what the current segment holds past the reader. Appending
// frame by frame to a small slice would copy a large batch many times
// over as it grows.
func (r *Reader) reserve(dst []byte, maxBytes int) []byte {
	avail := r.seg.endPos.Load() - r.pos
	want := int(min(int64(maxBytes), avail))
	return slices.Grow(dst, want)
}

// skip moves past a corrupt record, counting it.
func (r *Reader) skip(c *CorruptError) {
	r.l.noteCorrupt(c)
	r.off = c.next()
	r.pos, r.bufLen = -1, 0
}

// peek decodes the frame at r.off without consuming it.
func (r *Reader) peek() (Frame, int, error) {
	// Frames follow each other, except around a damaged region, where the
	// index is the authority; and an index entry may itself be damaged. So a
	// bad frame found by walking is looked up in the index, and one found
	// through the index has the index checked against the store (once per
	// segment), before the record is reported corrupt.
	const (
		walked = iota
		lookedUp
		indexChecked
	)
	tried := walked
	from := r.off // a lookup may move past removed offsets; a repair starts over from here
	for {
		if r.closed || r.l.isClosed.Load() {
			return Frame{}, 0, ErrClosed
		}
		s := r.seg
		if s == nil || s.dead.Load() {
			if err := r.resolve(); err != nil {
				return Frame{}, 0, err
			}
			continue
		}
		if g := s.gen.Load(); g != r.gen || g&1 == 1 {
			if err := r.reposition(); err != nil {
				return Frame{}, 0, err
			}
			continue
		}
		endOff := s.endOff.Load()
		if r.off >= endOff {
			moved, err := r.advance(s)
			if err != nil {
				return Frame{}, 0, err
			}
			if !moved {
				return Frame{}, 0, io.EOF
			}
			continue
		}
		endPos := s.endPos.Load()
		var err error
		if r.pos < 0 {
			tried = max(tried, lookedUp)
			var pos, at int64
			pos, at, err = s.seek(r.off)
			if s.gen.Load() != r.gen {
				continue
			}
			if err == nil {
				// Past offsets a compaction removed: the next record, or
				// the end of the segment.
				r.off = at
				if at >= endOff {
					continue
				}
			}
			r.pos = pos
		} else if s.compacted && r.pos >= endPos {
			// Walked past the last frame: the index says whether offsets
			// are left (placeholders of damage at the end of the store).
			r.pos, r.bufLen = -1, 0
			continue
		}
		var f Frame
		var n int
		if err == nil {
			var reason string
			f, n, reason = r.decode(s, endPos)
			if s.gen.Load() != r.gen {
				continue // shrank while we read: the bytes may be stale
			}
			if reason == "" && f.Offset == r.off {
				return f, n, nil
			}
			if reason == "" && s.compacted && tried == walked && f.Offset > r.off && f.Offset < endOff {
				// The next frame of a compacted store: the offsets
				// between were removed.
				r.off = f.Offset
				return f, n, nil
			}
			c := s.corrupt(r.pos, r.off, reason)
			if reason == "" {
				c.Reason = fmt.Sprintf("frame carries offset %d", f.Offset)
			}
			if tried != walked {
				// Offsets whose entries share the damaged position (the
				// placeholders recovery left) are unreadable with it; a
				// good frame there is the first one after them.
				if s.compacted {
					c.End = s.damagedEndSparse(r.off, r.pos, s.endOff.Load())
				} else {
					c.End = s.damagedEnd(r.off, r.pos, s.endOff.Load())
				}
				if reason == "" && f.Offset > r.off {
					c.End = min(c.End, f.Offset)
				}
			}
			err = c
		}
		switch tried {
		case walked:
			r.pos, r.bufLen = -1, 0
			continue
		case lookedUp:
			tried = indexChecked
			if r.l.repairIndex(s) {
				r.off, r.pos, r.bufLen = max(from, s.base), -1, 0
				continue
			}
		}
		return Frame{}, 0, err
	}
}

// advance moves past the end of segment s; it reports false at the log end.
func (r *Reader) advance(s *segment) (bool, error) {
	list := r.l.segs.Load()
	next := list.find(r.off)
	if next == s {
		i := len(list.segs) - 1
		if list.segs[i] == s {
			return false, nil // the active segment: log end
		}
		// A sealed segment ending before the next one begins: offsets
		// lost to corruption found at recovery.
		for list.segs[i-1] != s {
			i--
		}
		nb := list.segs[i].base
		c := s.corrupt(s.endPos.Load(), r.off, fmt.Sprintf("offsets %d..%d missing", r.off, nb-1))
		r.l.noteCorrupt(c)
		r.off = nb
		if err := r.resolve(); err != nil {
			return false, err
		}
		return false, c
	}
	if r.off >= r.l.end.Load() && next != nil && next.base > r.off {
		return false, nil
	}
	if err := r.resolve(); err != nil {
		return false, err
	}
	return r.seg != s, nil
}

// decode reads and checks the frame at r.pos, below endPos, through the
// reader's buffer.
func (r *Reader) decode(s *segment, endPos int64) (Frame, int, string) {
	h, err := r.bytes(s, r.pos, frameHeaderSize, endPos)
	if err != nil {
		return Frame{}, 0, err.Error()
	}
	n, err := frameLen(binary.BigEndian.Uint32(h), r.l.opts.MaxRecordBytes)
	if err != nil {
		return Frame{}, 0, err.Error()
	}
	raw, err := r.bytes(s, r.pos, n, endPos)
	if err != nil {
		return Frame{}, 0, err.Error()
	}
	if crc32.Checksum(raw[8:], castagnoli) != binary.BigEndian.Uint32(raw[4:]) {
		return Frame{}, 0, "checksum mismatch"
	}
	return Frame{
		Offset:    int64(binary.BigEndian.Uint64(raw[8:])),
		Timestamp: int64(binary.BigEndian.Uint64(raw[16:])),
		Payload:   raw[frameHeaderSize:],
		Raw:       raw,
	}, n, ""
}

// bytes returns n bytes of s's store at pos (below endPos), refilling the
// buffer when needed.
func (r *Reader) bytes(s *segment, pos int64, n int, endPos int64) ([]byte, error) {
	if pos+int64(n) > endPos {
		return nil, errors.New("frame runs past the segment end")
	}
	if pos >= r.bufPos && pos+int64(n) <= r.bufPos+int64(r.bufLen) {
		o := pos - r.bufPos
		return r.buf[o : o+int64(n) : o+int64(n)], nil
	}
	if len(r.buf) < n {
		r.buf = make([]byte, max(n, readerBufSize))
	}
	want := int(min(int64(len(r.buf)), endPos-pos))
	m, err := s.store.ReadAt(r.buf[:want], pos)
	if m < n {
		r.bufLen = 0
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("store unreadable: %w", err)
	}
	r.bufPos, r.bufLen = pos, m
	return r.buf[:n:n], nil
}

// gapError says that a compacted segment holds no record at or after the
// offset asked for: the next one is at or after next.
type gapError struct{ next int64 }

func (e *gapError) Error() string { return fmt.Sprintf("logstore: no record before offset %d", e.next) }

// Read returns a copy of the record at offset: ErrOffsetOutOfRange
// (*OutOfRangeError) outside [start, end), a *CorruptError for a record that
// fails its checks. An offset a compaction removed reads as the next record
// (its Frame.Offset says which), or io.EOF when none is left below the log
// end.
func (l *Log) Read(offset int64) (Frame, error) {
	moved := false
	for {
		if l.isClosed.Load() {
			return Frame{}, ErrClosed
		}
		list := l.segs.Load()
		start, end := list.segs[0].base, l.end.Load()
		if moved && offset >= end {
			return Frame{}, io.EOF
		}
		if offset < start || offset >= end {
			return Frame{}, &OutOfRangeError{Offset: offset, Start: start, End: end}
		}
		s := list.find(offset)
		if !s.tryAcquire() {
			continue
		}
		f, err := l.readFrom(s, offset)
		if errors.Is(err, ErrCorrupt) && l.repairIndex(s) {
			f, err = l.readFrom(s, offset)
		}
		if rerr := s.release(); rerr != nil {
			l.lg.Warn("closing segment files", zap.Error(rerr))
		}
		if errors.Is(err, errReposition) {
			continue
		}
		if g := (*gapError)(nil); errors.As(err, &g) {
			offset, moved = g.next, true
			continue
		}
		if c := (*CorruptError)(nil); errors.As(err, &c) {
			l.noteCorrupt(c)
		}
		return f, err
	}
}

func (l *Log) readFrom(s *segment, off int64) (Frame, error) {
	g := s.gen.Load()
	if g&1 == 1 {
		// Shrinking right now: wait for it, then start over.
		s.mu.RLock()
		s.mu.RUnlock()
		return Frame{}, errReposition
	}
	if s.dead.Load() {
		return Frame{}, errReposition
	}
	// fail reports a bad record unless the segment changed meanwhile, in
	// which case what was read may be stale and the caller starts over.
	fail := func(pos int64, reason string) (Frame, error) {
		if s.gen.Load() != g {
			return Frame{}, errReposition
		}
		return Frame{}, s.corrupt(pos, off, reason)
	}
	endOff := s.endOff.Load()
	if off >= endOff {
		if s.sealed {
			return fail(-1, "offset missing from its segment")
		}
		return Frame{}, errReposition
	}
	endPos := s.endPos.Load()
	pos, at, err := s.seek(off)
	if s.gen.Load() != g {
		return Frame{}, errReposition
	}
	if err != nil {
		return Frame{}, err
	}
	if at >= endOff {
		return Frame{}, &gapError{next: endOff}
	}
	off = at
	var h [frameHeaderSize]byte
	if pos+frameHeaderSize > endPos {
		return fail(pos, "frame runs past the segment end")
	}
	if _, err := s.store.ReadAt(h[:], pos); err != nil {
		return fail(pos, "store unreadable: "+err.Error())
	}
	n, err := frameLen(binary.BigEndian.Uint32(h[:]), l.opts.MaxRecordBytes)
	if err != nil {
		return fail(pos, err.Error())
	}
	if pos+int64(n) > endPos {
		return fail(pos, "frame runs past the segment end")
	}
	raw := make([]byte, n)
	if _, err := s.store.ReadAt(raw, pos); err != nil {
		return fail(pos, "store unreadable: "+err.Error())
	}
	f, _, err := DecodeFrame(raw, l.opts.MaxRecordBytes)
	if err != nil {
		return fail(pos, err.Error())
	}
	if f.Offset != off {
		return fail(pos, fmt.Sprintf("frame carries offset %d", f.Offset))
	}
	if s.gen.Load() != g {
		return Frame{}, errReposition
	}
	return f, nil
}

// OffsetForTime returns the first offset whose timestamp is >= tsMillis,
// or LogEndOffset if none.
func (l *Log) OffsetForTime(tsMillis int64) (offset int64, err error) {
	if l.isClosed.Load() {
		return 0, ErrClosed
	}
	end := l.end.Load()
	var from int64 = -1
	for _, s := range l.segs.Load().segs {
		if !s.tryAcquire() {
			continue
		}
		newest := s.newestTimestamp()
		base := s.base
		if err := s.release(); err != nil {
			l.lg.Warn("closing segment files", zap.Error(err))
		}
		if newest >= tsMillis {
			from = base
			break
		}
	}
	if from < 0 {
		return end, nil
	}
	r, err := l.NewReader(max(from, l.LogStartOffset()))
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	for {
		f, nerr := r.Next()
		switch {
		case errors.Is(nerr, io.EOF):
			return r.off, nil
		case errors.Is(nerr, ErrCorrupt):
			continue
		case nerr != nil:
			return 0, nerr
		}
		if f.Timestamp >= tsMillis {
			return f.Offset, nil
		}
	}
}
