package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Log is one partition's log on disk: a directory of segments. One writer
// (Append, AppendFrames, Truncate, retention; serialised by mu) and any
// number of concurrent readers, which load the immutable segment list
// snapshot atomically and pin segments with reference counts.
type Log struct {
	dir  string
	opts Options
	lg   *zap.Logger
	fs   FS

	segs     atomic.Pointer[segList]
	end      atomic.Int64 // visible log end offset
	size     atomic.Int64 // bytes of all stores
	isClosed atomic.Bool
	failure  atomic.Pointer[error]        // sticky write failure
	corrupt  atomic.Pointer[CorruptError] // latest corruption seen
	stats    counters

	mu   sync.Mutex
	cond *sync.Cond // on mu: group commit and in-flight syncs
	// Writer state, under mu.
	active        *segment
	next          int64 // next offset to assign
	activePos     int64 // bytes written to the active store
	activeCreated time.Time
	synced        int64 // offsets below are fsynced (SyncAlways bookkeeping)
	syncing       bool  // an fsync runs without mu
	writeSeq      uint64
	syncedSeq     uint64
	failed        error
	closing       bool
	writing       bool // the writer token is taken (lockWriter)
	rp            *recoveryPoint
	unsynced      []int64 // bases of sealed segments not fsynced yet (SyncNever)
	buf, ibuf     []byte  // reusable encode buffers
	truncGen      uint64  // bumped by every Truncate and Reset (a running clean checks it)

	// cleanMu serialises cleans (Compact); it is taken before mu.
	cleanMu sync.Mutex

	epochMu sync.Mutex
	epochs  epochs

	notifyMu     sync.Mutex
	changed      chan struct{}
	changedTaken bool
	notifyClosed bool

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (creating it if missing) the log in dir and recovers it.
func Open(dir string, opts Options) (*Log, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{
		dir:     dir,
		opts:    o,
		lg:      o.Logger.With(zap.String("log", dir)),
		fs:      o.FS,
		changed: make(chan struct{}),
		stop:    make(chan struct{}),
	}
	l.cond = sync.NewCond(&l.mu)
	recs, err := l.recoverDir()
	if err != nil {
		if l.rp != nil {
			err = errors.Join(err, l.rp.close())
		}
		return nil, err
	}
	if len(recs) == 0 {
		s, err := createSegment(l.fs, dir, l.rp.off, o.MaxIndexBytes)
		if err != nil {
			return nil, errors.Join(err, l.rp.close())
		}
		l.install([]*segment{s})
	} else {
		segs := make([]*segment, 0, len(recs))
		closeAll := func(err error) error {
			for _, s := range segs {
				err = errors.Join(err, s.release())
			}
			return err
		}
		for i, r := range recs {
			var s *segment
			var err error
			switch {
			case i == len(recs)-1:
				s, err = openActive(l.fs, dir, r.base, r.base+r.count, r.endPos, o.MaxIndexBytes)
			case r.compacted:
				s, err = openCompacted(l.fs, dir, r.base, r.base+r.count, r.endPos, r.entries)
			default:
				s, err = openSealed(l.fs, dir, r.base, r.base+r.count, r.endPos)
			}
			if err != nil {
				return nil, errors.Join(closeAll(err), l.rp.close())
			}
			segs = append(segs, s)
			l.size.Add(r.endPos)
		}
		l.install(segs)
	}
	l.activeCreated = o.Now()
	if l.next > l.active.base {
		// Age of a reopened segment: from its first record's timestamp.
		var b [8]byte
		if _, err := l.active.store.ReadAt(b[:], 16); err == nil {
			l.activeCreated = time.UnixMilli(int64(binary.BigEndian.Uint64(b[:])))
		}
		l.active.maxTsKnown.Store(false)
		l.active.newestTimestamp()
	}
	if err := l.loadEpochs(); err != nil {
		return nil, errors.Join(err, l.closeSegments(), l.rp.close())
	}
	if err := l.syncRecoveredLocked(recs); err != nil {
		return nil, errors.Join(err, l.closeSegments(), l.rp.close())
	}
	if o.Sync.Mode == SyncInterval {
		l.wg.Add(1)
		go l.runIntervalSync(o.Sync.Interval)
	}
	l.lg.Info("log opened", zap.Int64("start", l.LogStartOffset()), zap.Int64("end", l.next),
		zap.Int("segments", len(l.segs.Load().segs)), zap.Stringer("sync", o.Sync))
	return l, nil
}

// install publishes segs as the segment list with the last one active.
func (l *Log) install(segs []*segment) {
	a := segs[len(segs)-1]
	l.active = a
	l.next = a.endOff.Load()
	l.activePos = a.endPos.Load()
	l.synced = l.next
	l.segs.Store(&segList{segs: segs})
	l.end.Store(l.next)
}

func (l *Log) loadEpochs() error {
	b, err := readFile(l.fs, filepath.Join(l.dir, epochFileName), maxEpochFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := decodeEpochs(b)
	if err != nil {
		l.lg.Error("ignoring unreadable leader-epoch checkpoint", zap.Error(err))
		return nil
	}
	l.epochs.entries = ents
	if l.epochs.truncateFrom(l.next) || l.epochs.truncateBefore(l.LogStartOffset()) {
		return l.persistEpochsLocked()
	}
	return nil
}

// persistEpochsLocked writes the leader-epoch checkpoint (mu held).
func (l *Log) persistEpochsLocked() error {
	l.epochMu.Lock()
	data := l.epochs.encode()
	l.epochMu.Unlock()
	return writeFileAtomic(l.fs, filepath.Join(l.dir, epochFileName), data)
}

// writeRecoveryPointLocked persists off as the recovery point, fsynced.
func (l *Log) writeRecoveryPointLocked(off int64) error {
	return l.rp.write(off, true)
}

// syncRecoveredLocked makes durable what recovery kept past the recovery
// point (records a crash left in the page cache), then moves the recovery
// point to the log end: from now on damage below it is corruption.
func (l *Log) syncRecoveredLocked(recs []recovered) error {
	if l.rp.off == l.next {
		return nil
	}
	if l.rp.off < l.next {
		for _, r := range recs {
			if r.base+r.count <= l.rp.off {
				continue
			}
			if err := errors.Join(syncFile(l.fs, filepath.Join(l.dir, storeName(r.base))),
				syncFile(l.fs, filepath.Join(l.dir, indexName(r.base)))); err != nil {
				return fmt.Errorf("logstore: syncing recovered segment %d: %w", r.base, err)
			}
		}
	}
	if err := l.writeRecoveryPointLocked(l.next); err != nil {
		return fmt.Errorf("logstore: writing recovery point: %w", err)
	}
	return nil
}

// writerToken is held by one writer at a time, from lockWriter to its
// unlock, except while it waits for its fsync: a write may release mu on
// the way (a roll waits for a running fsync on cond), and no other write
// may come between the check of the log end and the last byte of a batch,
// nor between the parts of a batch split across segments.
type writerToken struct {
	l    *Log
	held bool
}

// lockWriter takes mu and the writer token.
func (l *Log) lockWriter() *writerToken {
	l.mu.Lock()
	for l.writing {
		l.cond.Wait()
	}
	l.writing = true
	return &writerToken{l: l, held: true}
}

// release gives the token back (mu still held), letting the next writer in
// while this one waits for its fsync (group commit).
func (t *writerToken) release() {
	if t.held {
		t.held = false
		t.l.writing = false
		t.l.cond.Broadcast()
	}
}

// unlock releases the token if still held, and mu.
func (t *writerToken) unlock() {
	t.release()
	t.l.mu.Unlock()
}

// writableLocked says whether the writer may proceed.
func (l *Log) writableLocked() error {
	if l.closing {
		return ErrClosed
	}
	return l.failed
}

// failLocked puts the log into the sticky failed state.
func (l *Log) failLocked(err error) error {
	if l.failed == nil {
		l.failed = failedError(err)
		l.failure.Store(&l.failed)
		l.lg.Error("log failed; refusing writes until reopened", zap.Error(err))
	}
	l.cond.Broadcast()
	return l.failed
}

// Append writes recs with one write call, assigning consecutive offsets from
// the log end offset, tagging them with the leader epoch (a new epoch > the
// latest one gets an (epoch, first offset) entry in the leader-epoch file).
// It returns once the batch is as durable as the sync policy promises
// (SyncAlways: fsynced, with group commit across concurrent callers).
//
// A batch that does not fit the active segment is split across segments
// (one write each), so no segment exceeds MaxSegmentBytes by more than one
// record. If a later part then fails, the earlier parts stay appended.
// A full file system gives a *NoSpaceError and leaves the log writable.
func (l *Log) Append(epoch int32, recs []Record) (base int64, err error) {
	for i := range recs {
		if len(recs[i].Payload) > l.opts.MaxRecordBytes {
			return -1, fmt.Errorf("%w: record %d has %d bytes, max %d", ErrRecordTooLarge, i, len(recs[i].Payload), l.opts.MaxRecordBytes)
		}
	}
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return -1, err
	}
	base = -1
	frameSize := func(i int) int64 { return int64(FrameSize(len(recs[i].Payload))) }
	for i := 0; i < len(recs); {
		j, size := l.chunkLocked(i, len(recs), frameSize)
		if err := l.prepareLocked(epoch, size, j-i); err != nil {
			return -1, err
		}
		buf, ibuf := l.buf[:0], l.ibuf[:0]
		maxTs := int64(math.MinInt64)
		first := l.next
		if base < 0 {
			base = first
		}
		rel, pos := first-l.active.base, l.activePos
		for k := i; k < j; k++ {
			r := &recs[k]
			ibuf = appendIndexEntry(ibuf, uint32(rel+int64(k-i)), pos+int64(len(buf)))
			buf = AppendFrame(buf, first+int64(k-i), r.Timestamp, r.Payload)
			maxTs = max(maxTs, r.Timestamp)
		}
		l.keepBuffers(buf, ibuf)
		if err := l.writeLocked(buf, ibuf, int64(j-i), maxTs); err != nil {
			return -1, err
		}
		i = j
	}
	return base, l.awaitDurableLocked(w)
}

// awaitDurableLocked ends a write: it gives up the writer token and, under
// SyncAlways, waits for the fsync covering everything written so far.
func (l *Log) awaitDurableLocked(w *writerToken) error {
	target := l.next
	w.release()
	if l.opts.Sync.Mode != SyncAlways {
		return nil
	}
	return l.waitDurableLocked(target)
}

// chunkLocked returns the end j of the part recs[i:j] of a batch that goes
// into one segment, and its bytes: as many records as fit the active
// segment, or, when not even the first fits there, a new one (which takes
// at least one record, whatever its size).
func (l *Log) chunkLocked(i, n int, frameSize func(int) int64) (j int, size int64) {
	used, count := l.activePos, l.next-l.active.base
	maxCount := l.opts.MaxIndexBytes / indexEntrySize
	if count > 0 && (used+frameSize(i) > l.opts.MaxSegmentBytes || count+1 > maxCount) {
		used, count = 0, 0 // prepareLocked rolls
	}
	for j = i; j < n; j++ {
		fs := frameSize(j)
		if (j > i || count > 0) && (used+fs > l.opts.MaxSegmentBytes || count+1 > maxCount) {
			break
		}
		used, size, count = used+fs, size+fs, count+1
	}
	return j, size
}

// AppendFrames is the follower path: raw frames exactly as read from the
// leader (Frame.Raw concatenated). CRCs are checked, offsets must be
// consecutive and the first must equal LogEndOffset, else ErrNotAtEnd
// (wrapped with the expected offset). All frames belong to epoch. Like
// Append, it splits a batch that does not fit the active segment.
func (l *Log) AppendFrames(epoch int32, frames []byte) (last int64, err error) {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return -1, err
	}
	return l.appendFramesLocked(w, epoch, frames)
}

// appendFramesLocked is AppendFrames with the writer's token held.
func (l *Log) appendFramesLocked(w *writerToken, epoch int32, frames []byte) (last int64, err error) {
	if len(frames) == 0 {
		return l.next - 1, nil
	}
	want := l.next
	var starts []int // byte position of each frame, then len(frames)
	for p := 0; p < len(frames); {
		f, n, err := DecodeFrame(frames[p:], l.opts.MaxRecordBytes)
		switch {
		case errors.Is(err, ErrRecordTooLarge):
			return -1, fmt.Errorf("frame at byte %d: %w", p, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return -1, fmt.Errorf("%w: truncated frame at byte %d", ErrBadBatch, p)
		case err != nil:
			return -1, &CorruptError{Position: int64(p), Offset: want, Reason: err.Error()}
		}
		if f.Offset != want {
			if p == 0 {
				return -1, fmt.Errorf("%w: first offset %d, log end offset %d", ErrNotAtEnd, f.Offset, want)
			}
			return -1, fmt.Errorf("%w: offset %d at byte %d, want %d", ErrBadBatch, f.Offset, p, want)
		}
		starts = append(starts, p)
		want++
		p += n
	}
	starts = append(starts, len(frames))
	count := len(starts) - 1
	frameSize := func(i int) int64 { return int64(starts[i+1] - starts[i]) }
	for i := 0; i < count; {
		j, size := l.chunkLocked(i, count, frameSize)
		if err := l.prepareLocked(epoch, size, j-i); err != nil {
			return -1, err
		}
		chunk := frames[starts[i]:starts[j]]
		ibuf := l.ibuf[:0]
		rel := l.next - l.active.base
		maxTs := int64(math.MinInt64)
		for k := i; k < j; k++ {
			ibuf = appendIndexEntry(ibuf, uint32(rel+int64(k-i)), l.activePos+int64(starts[k]-starts[i]))
			maxTs = max(maxTs, int64(binary.BigEndian.Uint64(frames[starts[k]+16:])))
		}
		l.keepBuffers(l.buf, ibuf)
		if err := l.writeLocked(chunk, ibuf, int64(j-i), maxTs); err != nil {
			return -1, err
		}
		i = j
	}
	return want - 1, l.awaitDurableLocked(w)
}

// AppendCompactedFrames is AppendFrames for a follower of a compacted log:
// the frames' offsets increase but may skip offsets the leader's
// compaction removed, and the first may be past LogEndOffset (not before
// it: ErrNotAtEnd). A batch consecutive from LogEndOffset is appended as
// AppendFrames appends it. One with a gap becomes a compacted segment of
// its own covering the offsets from LogEndOffset to its last frame: the
// active segment is sealed, the batch written, fsynced and swapped in as
// a clean's segments are (doc.go), and a new active segment starts after
// it, so a crash leaves the batch whole or absent. The follower's own
// Compact merges such segments later. A new epoch starts at the batch's
// first frame, as on the leader. It returns the last offset appended.
func (l *Log) AppendCompactedFrames(epoch int32, frames []byte) (last int64, err error) {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return -1, err
	}
	if len(frames) == 0 {
		return l.next - 1, nil
	}
	var starts []int // byte position of each frame, then len(frames)
	var offs []int64
	maxTs := int64(math.MinInt64)
	dense := true
	for p := 0; p < len(frames); {
		f, n, err := DecodeFrame(frames[p:], l.opts.MaxRecordBytes)
		switch {
		case errors.Is(err, ErrRecordTooLarge):
			return -1, fmt.Errorf("frame at byte %d: %w", p, err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return -1, fmt.Errorf("%w: truncated frame at byte %d", ErrBadBatch, p)
		case err != nil:
			return -1, &CorruptError{Position: int64(p), Offset: l.next, Reason: err.Error()}
		}
		switch k := len(offs); {
		case k == 0 && f.Offset < l.next:
			return -1, fmt.Errorf("%w: first offset %d, log end offset %d", ErrNotAtEnd, f.Offset, l.next)
		case k > 0 && f.Offset <= offs[k-1]:
			return -1, fmt.Errorf("%w: offset %d at byte %d after %d", ErrBadBatch, f.Offset, p, offs[k-1])
		case f.Offset-l.next > math.MaxUint32-1:
			return -1, fmt.Errorf("%w: offset %d too far past the log end offset %d", ErrBadBatch, f.Offset, l.next)
		}
		dense = dense && f.Offset == l.next+int64(len(offs))
		starts, offs = append(starts, p), append(offs, f.Offset)
		maxTs = max(maxTs, f.Timestamp)
		p += n
	}
	if dense {
		return l.appendFramesLocked(w, epoch, frames)
	}
	starts = append(starts, len(frames))
	if err := l.appendGappedLocked(epoch, frames, starts, offs, maxTs); err != nil {
		return -1, err
	}
	return l.next - 1, l.awaitDurableLocked(w)
}

// appendGappedLocked writes a batch with gaps as a compacted segment (see
// AppendCompactedFrames).
func (l *Log) appendGappedLocked(epoch int32, frames []byte, starts []int, offs []int64, maxTs int64) error {
	l.epochMu.Lock()
	latest := l.epochs.latest()
	l.epochMu.Unlock()
	if epoch < 0 || epoch < latest {
		return fmt.Errorf("%w: epoch %d, latest %d", ErrStaleEpoch, epoch, latest)
	}
	if err := l.flushLocked(); err != nil {
		return err
	}
	if l.next > l.active.base {
		if err := l.rollLocked(); err != nil {
			return err
		}
	}
	if epoch > latest {
		l.epochMu.Lock()
		l.epochs.assign(epoch, offs[0])
		l.epochMu.Unlock()
		if err := l.persistEpochsLocked(); err != nil {
			l.epochMu.Lock()
			l.epochs.truncateFrom(offs[0])
			l.epochMu.Unlock()
			if isNoSpace(err) {
				return l.noSpace(err)
			}
			return l.failLocked(fmt.Errorf("writing leader-epoch checkpoint: %w", err))
		}
	}
	a, end := l.active, offs[len(offs)-1]+1
	cw, err := newCleanedWriter(l.fs, l.dir, a.base, end, []*segment{a})
	if err == nil {
		for i, off := range offs {
			raw := frames[starts[i]:starts[i+1]]
			if err = cw.add(raw, off, int64(binary.BigEndian.Uint64(raw[16:]))); err != nil {
				break
			}
		}
		if err == nil {
			err = cw.finish()
		}
		if err == nil {
			err = l.fs.SyncDir(l.dir)
		}
		if err != nil {
			err = errors.Join(err, cw.abort())
		}
	}
	if err != nil {
		// Nothing of the batch is in the log; only the roll happened.
		if isNoSpace(err) {
			return l.noSpace(err)
		}
		return l.failLocked(fmt.Errorf("writing a compacted segment at %d: %w", a.base, err))
	}
	if err := swapIn(l.fs, l.dir, []*cleanedWriter{cw}); err != nil {
		return l.failLocked(fmt.Errorf("swapping in a compacted segment at %d: %w", a.base, err))
	}
	nt, err := openCompacted(l.fs, l.dir, a.base, end, cw.desc.bytes, cw.desc.records)
	if err != nil {
		return l.failLocked(fmt.Errorf("mapping compacted segment %s: %w", storeName(a.base), err))
	}
	nt.maxTs.Store(maxTs)
	nt.maxTsKnown.Store(true)
	na, err := createSegment(l.fs, l.dir, end, l.opts.MaxIndexBytes)
	if err != nil {
		return l.failLocked(errors.Join(fmt.Errorf("creating segment %d: %w", end, err), nt.release()))
	}
	cur := l.segs.Load().segs
	segs := append(append(make([]*segment, 0, len(cur)+1), cur[:len(cur)-1]...), nt, na)
	l.segs.Store(&segList{segs: segs})
	a.dead.Store(true)
	if err := a.release(); err != nil {
		l.lg.Warn("closing replaced segment", zap.String("segment", a.name), zap.Error(err))
	}
	l.size.Add(cw.desc.bytes)
	l.active, l.next, l.activePos, l.activeCreated = na, end, 0, l.opts.Now()
	l.synced, l.syncedSeq = end, l.writeSeq
	l.publishLocked(end, 0)
	if l.opts.Sync.Mode != SyncNever {
		// The roll synced everything before the batch; the batch is synced.
		return l.advanceRecoveryPointLocked(end)
	}
	return nil
}

// keepBuffers retains encode buffers for reuse unless a huge batch grew them.
func (l *Log) keepBuffers(buf, ibuf []byte) {
	const keep = 8 << 20
	if cap(buf) <= keep {
		l.buf = buf[:0]
	} else {
		l.buf = nil
	}
	if cap(ibuf) <= keep {
		l.ibuf = ibuf[:0]
	} else {
		l.ibuf = nil
	}
}

// prepareLocked checks the epoch, rolls the active segment if the batch
// would not fit, and records a new epoch before its first record is written.
func (l *Log) prepareLocked(epoch int32, size int64, count int) error {
	l.epochMu.Lock()
	latest := l.epochs.latest()
	l.epochMu.Unlock()
	if epoch < 0 || epoch < latest {
		return fmt.Errorf("%w: epoch %d, latest %d", ErrStaleEpoch, epoch, latest)
	}
	if err := l.maybeRollLocked(size, count); err != nil {
		return err
	}
	if epoch > latest {
		l.epochMu.Lock()
		l.epochs.assign(epoch, l.next)
		l.epochMu.Unlock()
		if err := l.persistEpochsLocked(); err != nil {
			if isNoSpace(err) {
				l.epochMu.Lock()
				l.epochs.truncateFrom(l.next)
				l.epochMu.Unlock()
				return l.noSpace(err)
			}
			return l.failLocked(fmt.Errorf("writing leader-epoch checkpoint: %w", err))
		}
	}
	return nil
}

// writeLocked writes an encoded batch and its index entries to the active
// segment. Under SyncAlways the fsync publishes it (awaitDurableLocked, or
// the roll before the next part of a split batch).
func (l *Log) writeLocked(frames, entries []byte, count, maxTs int64) error {
	a := l.active
	if _, err := a.storeFile.WriteAt(frames, l.activePos); err != nil {
		return l.writeFailedLocked(fmt.Errorf("writing %s: %w", a.name, err))
	}
	if _, err := a.indexFile.WriteAt(entries, (l.next-a.base)*indexEntrySize); err != nil {
		return l.writeFailedLocked(fmt.Errorf("writing %s: %w", indexName(a.base), err))
	}
	if l.next == a.base {
		l.activeCreated = l.opts.Now()
	}
	l.activePos += int64(len(frames))
	l.next += count
	l.writeSeq++
	l.size.Add(int64(len(frames)))
	a.noteTimestamp(maxTs)
	if l.opts.Sync.Mode != SyncAlways {
		l.publishLocked(l.next, l.activePos)
	}
	return nil
}

// writeFailedLocked handles a failed write of a batch to the active
// segment. Out of space, the bytes that got written past the log end are
// cut off, so nothing of the batch remains, and the log stays writable: the
// next append tries again. Any other failure leaves the file's state unknown
// and fails the log.
func (l *Log) writeFailedLocked(err error) error {
	if !isNoSpace(err) {
		return l.failLocked(err)
	}
	if terr := l.active.storeFile.Truncate(l.activePos); terr != nil {
		return l.failLocked(errors.Join(err, fmt.Errorf("cutting the failed write: %w", terr)))
	}
	return l.noSpace(err)
}

// noSpace is the error of a write refused for lack of space.
func (l *Log) noSpace(err error) error {
	free := int64(-1)
	if sr, ok := l.fs.(spaceReporter); ok {
		if n, ferr := sr.FreeBytes(l.dir); ferr == nil {
			free = n
		}
	}
	l.stats.noSpaceErrors.Add(1)
	l.lg.Warn("write refused: no space left", zap.Int64("free_bytes", free), zap.Error(err))
	return &NoSpaceError{Dir: l.dir, Free: free, Err: err}
}

// publishLocked makes the active segment's records below off visible.
func (l *Log) publishLocked(off, pos int64) {
	l.active.publish(off, pos)
	l.end.Store(off)
	l.notify()
}

// maybeRollLocked rolls the active segment if a batch of size bytes and
// count records would overflow it, or it is too old. An empty segment never
// rolls.
func (l *Log) maybeRollLocked(size int64, count int) error {
	a := l.active
	n := l.next - a.base
	if n == 0 {
		return nil
	}
	if l.activePos+size <= l.opts.MaxSegmentBytes &&
		(n+int64(count))*indexEntrySize <= l.opts.MaxIndexBytes &&
		l.opts.Now().Sub(l.activeCreated) < l.opts.SegmentMaxAge {
		return nil
	}
	return l.rollLocked()
}

// rollLocked seals the active segment and starts a new one at the log end.
func (l *Log) rollLocked() error {
	if err := l.flushLocked(); err != nil {
		return err
	}
	old := l.active
	n := l.next - old.base
	if err := old.indexFile.Truncate(n * indexEntrySize); err != nil {
		return l.failLocked(fmt.Errorf("trimming %s: %w", indexName(old.base), err))
	}
	if l.opts.Sync.Mode != SyncNever {
		if err := l.fsyncStore(old.storeFile); err != nil {
			return l.failLocked(fmt.Errorf("syncing %s: %w", old.name, err))
		}
		if err := old.indexFile.Sync(); err != nil {
			return l.failLocked(fmt.Errorf("syncing %s: %w", indexName(old.base), err))
		}
	} else {
		l.unsynced = append(l.unsynced, old.base)
	}
	sealed, err := openSealed(l.fs, l.dir, old.base, l.next, l.activePos)
	if err != nil {
		return l.failLocked(fmt.Errorf("mapping %s: %w", old.name, err))
	}
	sealed.maxTs.Store(old.maxTs.Load())
	sealed.maxTsKnown.Store(true)
	nu, err := createSegment(l.fs, l.dir, l.next, l.opts.MaxIndexBytes)
	if err != nil {
		err = errors.Join(fmt.Errorf("creating segment %d: %w", l.next, err), sealed.release())
		if isNoSpace(err) {
			// The old segment stays active; the next append rolls again.
			if rerr := removeSegmentFiles(l.fs, l.dir, l.next); rerr == nil {
				return l.noSpace(err)
			}
		}
		return l.failLocked(err)
	}
	cur := l.segs.Load().segs
	segs := make([]*segment, 0, len(cur)+1)
	segs = append(segs, cur[:len(cur)-1]...)
	segs = append(segs, sealed, nu)
	l.segs.Store(&segList{segs: segs})
	l.active, l.activePos, l.activeCreated = nu, 0, l.opts.Now()
	if err := old.release(); err != nil {
		l.lg.Warn("closing sealed segment files", zap.String("segment", old.name), zap.Error(err))
	}
	l.stats.rolls.Add(1)
	l.lg.Debug("rolled segment", zap.String("sealed", old.name), zap.Int64("next", l.next))
	if l.opts.Sync.Mode != SyncNever {
		if err := l.writeRecoveryPointLocked(l.next); err != nil {
			return l.failLocked(fmt.Errorf("writing recovery point: %w", err))
		}
	}
	return l.applyRetentionLocked()
}

// Truncate removes offsets >= offset (follower truncation after a leader
// change), from the leader-epoch file too. Truncating at or below the log
// start offset empties the log and restarts it at offset (see Reset).
func (l *Log) Truncate(offset int64) error {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if err := l.flushLocked(); err != nil {
		return err
	}
	if offset >= l.next {
		return nil
	}
	list := l.segs.Load().segs
	if offset <= list[0].base {
		return l.resetLocked(offset)
	}
	l.truncGen++
	// The recovery point goes down first: a crash in the middle then
	// leaves records past it that recovery treats as a crash tail, never
	// offsets below it that are gone.
	if l.rp.off > offset {
		if err := l.writeRecoveryPointLocked(offset); err != nil {
			return l.failLocked(fmt.Errorf("writing recovery point: %w", err))
		}
	}
	k := len(list) - 1
	for list[k].base >= offset {
		k--
	}
	t := list[k]
	// Newest first, so a crash leaves a contiguous log (as if the
	// truncation had not happened; the caller truncates again).
	for j := len(list) - 1; j > k; j-- {
		if err := l.removeSegmentLocked(list[j]); err != nil {
			return l.failLocked(err)
		}
	}
	if k < len(list)-1 {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return l.failLocked(err)
		}
	}
	var err error
	switch {
	case t == l.active:
		err = l.truncateActiveLocked(offset)
	case t.compacted:
		err = l.truncateCompactedLocked(list[:k], t, offset)
	default:
		err = l.reopenTruncatedLocked(list[:k], t, offset)
	}
	if err != nil {
		return l.failLocked(err)
	}
	l.synced = l.next
	l.end.Store(l.next)
	l.stats.truncations.Add(1)
	l.forgetCorruption(func(off int64) bool { return off >= offset })
	l.notify()
	l.epochMu.Lock()
	changed := l.epochs.truncateFrom(offset)
	l.epochMu.Unlock()
	if changed {
		if err := l.persistEpochsLocked(); err != nil {
			return l.failLocked(fmt.Errorf("writing leader-epoch checkpoint: %w", err))
		}
	}
	return nil
}

// removeSegmentLocked unpublishes s and deletes its files; readers holding
// it keep their mapping until they let go.
func (l *Log) removeSegmentLocked(s *segment) error {
	cur := l.segs.Load().segs
	segs := make([]*segment, 0, len(cur))
	for _, x := range cur {
		if x != s {
			segs = append(segs, x)
		}
	}
	if len(segs) > 0 {
		l.segs.Store(&segList{segs: segs})
	}
	s.dead.Store(true)
	l.size.Add(-s.endPos.Load())
	l.dropUnsynced(s.base)
	if err := s.release(); err != nil {
		l.lg.Warn("closing removed segment", zap.String("segment", s.name), zap.Error(err))
	}
	return removeSegmentFiles(l.fs, l.dir, s.base)
}

// dropUnsynced forgets a segment that is removed or active again (the
// active one is synced by base anyway).
func (l *Log) dropUnsynced(base int64) {
	l.unsynced = slices.DeleteFunc(l.unsynced, func(b int64) bool { return b == base })
}

// truncateActiveLocked cuts the active segment in place at offset.
func (l *Log) truncateActiveLocked(offset int64) error {
	a := l.active
	pos, err := a.lookup(offset)
	if err != nil {
		return err
	}
	// A seqlock: gen is odd while the segment shrinks, and readers that
	// saw another gen, or an odd one, drop what they read and reposition
	// (waiting on mu while it is odd).
	a.mu.Lock()
	a.gen.Add(1)
	defer func() {
		a.gen.Add(1)
		a.mu.Unlock()
	}()
	a.publish(offset, pos)
	l.end.Store(offset)
	rel := offset - a.base
	if err := a.storeFile.Truncate(pos); err != nil {
		return err
	}
	// Drop stale entries, keep the preallocation.
	if err := a.indexFile.Truncate(rel * indexEntrySize); err != nil {
		return err
	}
	if err := a.indexFile.Truncate(max(l.opts.MaxIndexBytes, rel*indexEntrySize)); err != nil {
		return err
	}
	if err := l.fsyncStore(a.storeFile); err != nil {
		return err
	}
	if err := a.indexFile.Sync(); err != nil {
		return err
	}
	l.size.Add(pos - l.activePos)
	l.next, l.activePos = offset, pos
	a.maxTsKnown.Store(false)
	a.newestTimestamp()
	return nil
}

// reopenTruncatedLocked turns sealed segment t into the active segment cut
// at offset. The mapping readers may hold must never shrink under them
// (SIGBUS), so the kept prefix is copied into new files renamed over the
// old ones; the old mapping stays valid until its last reader lets go.
func (l *Log) reopenTruncatedLocked(older []*segment, t *segment, offset int64) error {
	pos := t.endPos.Load()
	if offset < t.endOff.Load() {
		var err error
		if pos, err = t.lookup(offset); err != nil {
			return err
		}
	}
	rel := offset - t.base
	if err := copyPrefix(l.fs, t.storeMap, t.storePath(), pos); err != nil {
		return err
	}
	if err := copyPrefix(l.fs, t.indexMap, t.indexPath(), rel*indexEntrySize); err != nil {
		return err
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return err
	}
	a, err := openActive(l.fs, l.dir, t.base, offset, pos, l.opts.MaxIndexBytes)
	if err != nil {
		return err
	}
	segs := append(append(make([]*segment, 0, len(older)+1), older...), a)
	l.segs.Store(&segList{segs: segs})
	t.dead.Store(true)
	l.dropUnsynced(t.base)
	l.size.Add(pos - t.endPos.Load())
	if err := t.release(); err != nil {
		l.lg.Warn("closing replaced segment", zap.String("segment", t.name), zap.Error(err))
	}
	l.active, l.next, l.activePos, l.activeCreated = a, offset, pos, l.opts.Now()
	a.maxTsKnown.Store(false)
	a.newestTimestamp()
	return nil
}

// truncateCompactedLocked cuts compacted segment t at offset. A compacted
// segment is never active, so its records below offset become a compacted
// segment ending at offset, swapped in over t as a clean's are (swapIn),
// and a new active segment starts at offset. A crash before the swap
// leaves t whole and last: recovery then starts the active segment at its
// end, as if the truncation had not reached it.
func (l *Log) truncateCompactedLocked(older []*segment, t *segment, offset int64) error {
	end := min(offset, t.endOff.Load())
	pos, _, err := t.seek(end)
	if err != nil {
		return err
	}
	entries, records, _ := l.scanCompacted(&window{r: t.store, size: pos}, t.base, end, compactedMaxEntries(pos), nil)
	cw, err := newCleanedWriter(l.fs, l.dir, t.base, end, []*segment{t})
	if err != nil {
		return err
	}
	if err := cw.copyFrom(t.store, pos, entries, records); err != nil {
		return errors.Join(err, cw.abort())
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return errors.Join(err, cw.abort())
	}
	if err := swapIn(l.fs, l.dir, []*cleanedWriter{cw}); err != nil {
		return err
	}
	nt, err := openCompacted(l.fs, l.dir, t.base, end, pos, int64(len(entries)/indexEntrySize))
	if err != nil {
		return err
	}
	a, err := createSegment(l.fs, l.dir, offset, l.opts.MaxIndexBytes)
	if err != nil {
		return errors.Join(err, nt.release())
	}
	segs := append(append(make([]*segment, 0, len(older)+2), older...), nt, a)
	l.segs.Store(&segList{segs: segs})
	t.dead.Store(true)
	l.dropUnsynced(t.base)
	l.size.Add(pos - t.endPos.Load())
	if err := t.release(); err != nil {
		l.lg.Warn("closing replaced segment", zap.String("segment", t.name), zap.Error(err))
	}
	nt.newestTimestamp()
	l.active, l.next, l.activePos, l.activeCreated = a, offset, 0, l.opts.Now()
	return nil
}

// copyPrefix replaces name with the first n bytes of src: temp file, fsync,
// rename (the directory is synced by the caller).
func copyPrefix(fsys FS, src io.ReaderAt, name string, n int64) error {
	tmp := name + ".tmp"
	f, err := createFile(fsys, tmp)
	if err != nil {
		return err
	}
	buf := make([]byte, min(n, 1<<20))
	for p := int64(0); p < n; {
		m := int(min(int64(len(buf)), n-p))
		if _, err := src.ReadAt(buf[:m], p); err != nil {
			return errors.Join(err, f.Close())
		}
		if _, err := f.WriteAt(buf[:m], p); err != nil {
			return errors.Join(err, f.Close())
		}
		p += int64(m)
	}
	if err := f.Sync(); err != nil {
		return errors.Join(err, f.Close())
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fsys.Rename(tmp, name)
}

// Reset removes every record and restarts the log empty at offset (a
// follower whose leader's log starts past this log's end). The leader-epoch
// file is emptied.
func (l *Log) Reset(offset int64) error {
	if offset < 0 {
		return fmt.Errorf("logstore: reset to negative offset %d", offset)
	}
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if err := l.flushLocked(); err != nil {
		return err
	}
	return l.resetLocked(offset)
}

func (l *Log) resetLocked(offset int64) error {
	l.truncGen++
	// The recovery point goes first: a crash that leaves no segment behind
	// makes recovery start the empty log there.
	if err := l.writeRecoveryPointLocked(offset); err != nil {
		return l.failLocked(fmt.Errorf("writing recovery point: %w", err))
	}
	list := l.segs.Load().segs
	for j := len(list) - 1; j >= 0; j-- {
		if err := removeSegmentFiles(l.fs, l.dir, list[j].base); err != nil {
			return l.failLocked(err)
		}
	}
	s, err := createSegment(l.fs, l.dir, offset, l.opts.MaxIndexBytes)
	if err != nil {
		return l.failLocked(err)
	}
	l.install([]*segment{s})
	for _, old := range list {
		old.dead.Store(true)
		if err := old.release(); err != nil {
			l.lg.Warn("closing removed segment", zap.String("segment", old.name), zap.Error(err))
		}
	}
	l.activeCreated = l.opts.Now()
	l.unsynced = nil
	l.size.Store(0)
	l.stats.truncations.Add(1)
	l.forgetCorruption(func(int64) bool { return true })
	l.notify()
	l.epochMu.Lock()
	l.epochs.entries = nil
	l.epochMu.Unlock()
	if err := l.persistEpochsLocked(); err != nil {
		return l.failLocked(fmt.Errorf("writing leader-epoch checkpoint: %w", err))
	}
	return nil
}

// DeleteBefore drops whole sealed segments entirely below offset; the
// active segment is never deleted.
func (l *Log) DeleteBefore(offset int64) error {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	list := l.segs.Load().segs
	k := 0
	for k < len(list)-1 && list[k].endOff.Load() <= offset {
		k++
	}
	return l.deleteOldestLocked(k)
}

// ApplyRetention applies size and age retention now (it also runs after
// every roll).
func (l *Log) ApplyRetention() error {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	return l.applyRetentionLocked()
}

func (l *Log) applyRetentionLocked() error {
	list := l.segs.Load().segs
	k := 0
	if age := l.opts.RetentionAge; age > 0 {
		cutoff := l.opts.Now().Add(-age).UnixMilli()
		for k < len(list)-1 && list[k].newestTimestamp() < cutoff {
			k++
		}
	}
	if limit := l.opts.RetentionBytes; limit > 0 {
		total := l.size.Load()
		for i := 0; i < k; i++ {
			total -= list[i].endPos.Load()
		}
		for k < len(list)-1 && total > limit {
			total -= list[k].endPos.Load()
			k++
		}
	}
	return l.deleteOldestLocked(k)
}

// deleteOldestLocked deletes the k oldest segments (never the active one).
func (l *Log) deleteOldestLocked(k int) error {
	if k == 0 {
		return nil
	}
	list := l.segs.Load().segs
	k = min(k, len(list)-1)
	for _, s := range list[:k] {
		l.lg.Info("deleting segment", zap.String("segment", s.name))
		if err := l.removeSegmentLocked(s); err != nil {
			return l.failLocked(err)
		}
		l.stats.deletedSegments.Add(1)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return l.failLocked(err)
	}
	start := l.LogStartOffset()
	l.forgetCorruption(func(off int64) bool { return off < start })
	l.epochMu.Lock()
	changed := l.epochs.truncateBefore(start)
	l.epochMu.Unlock()
	if changed {
		if err := l.persistEpochsLocked(); err != nil {
			return l.failLocked(fmt.Errorf("writing leader-epoch checkpoint: %w", err))
		}
	}
	return nil
}

// Changed returns a channel that is closed on the next change of the log end
// offset (append or truncate) or on Close. Callers re-read Changed after it fires.
func (l *Log) Changed() <-chan struct{} {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	l.changedTaken = true
	return l.changed
}

// notify wakes Changed waiters: close the channel, replace it.
func (l *Log) notify() {
	l.notifyMu.Lock()
	defer l.notifyMu.Unlock()
	if l.notifyClosed || !l.changedTaken {
		return
	}
	close(l.changed)
	l.changed = make(chan struct{})
	l.changedTaken = false
}

// LogStartOffset is the first offset held.
func (l *Log) LogStartOffset() int64 { return l.segs.Load().segs[0].base }

// LogEndOffset is the next offset to be assigned, as far as readers can
// see: under SyncAlways a batch counts once it is fsynced.
func (l *Log) LogEndOffset() int64 { return l.end.Load() }

// Size is the bytes on disk of all stores.
func (l *Log) Size() int64 { return l.size.Load() }

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Healthy returns nil, or the sticky ErrFailed error, or the corruption
// found at the lowest offset still in the log (the log keeps serving the
// other records then; Truncate or retention below it clears it).
func (l *Log) Healthy() error {
	if p := l.failure.Load(); p != nil {
		return *p
	}
	if c := l.corrupt.Load(); c != nil {
		return c
	}
	return nil
}

// noteCorrupt logs and counts a corrupt record; Healthy reports the
// lowest corrupt offset seen, where a repair (a follower's truncation) has
// to start.
func (l *Log) noteCorrupt(c *CorruptError) {
	l.stats.corruptRecords.Add(1)
	for {
		cur := l.corrupt.Load()
		if cur != nil && cur.Offset <= c.Offset || l.corrupt.CompareAndSwap(cur, c) {
			break
		}
	}
	l.lg.Error("corrupt record", zap.String("segment", c.Segment), zap.Int64("offset", c.Offset),
		zap.Int64("position", c.Position), zap.String("reason", c.Reason))
}

// forgetCorruption clears the reported corruption if its offset left the
// log (gone reports true for it). Writers only (mu held).
func (l *Log) forgetCorruption(gone func(off int64) bool) {
	if c := l.corrupt.Load(); c != nil && gone(c.Offset) {
		l.corrupt.CompareAndSwap(c, nil)
	}
}

// LatestEpoch is the latest leader epoch, -1 when none.
func (l *Log) LatestEpoch() int32 {
	l.epochMu.Lock()
	defer l.epochMu.Unlock()
	return l.epochs.latest()
}

// Epochs returns a copy of the leader-epoch entries, oldest first.
func (l *Log) Epochs() []EpochEntry {
	l.epochMu.Lock()
	defer l.epochMu.Unlock()
	return append([]EpochEntry(nil), l.epochs.entries...)
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch: the largest epoch <= e known
// here, and its end offset (start of the next epoch, or LogEndOffset for the
// latest). (-1, -1) when no epoch <= e exists.
func (l *Log) EndOffsetForEpoch(e int32) (epoch int32, end int64) {
	l.epochMu.Lock()
	defer l.epochMu.Unlock()
	return l.epochs.endOffsetFor(e, l.end.Load())
}

// Close syncs and closes the log. Readers still open keep their segments
// until they close; their next call returns ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return nil
	}
	l.closing = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()

	w := l.lockWriter()
	defer w.unlock()
	for l.syncing {
		l.cond.Wait()
	}
	var errs []error
	if l.failed == nil {
		errs = append(errs, l.syncAllLocked(true))
	}
	l.isClosed.Store(true)
	l.cond.Broadcast()
	errs = append(errs, l.closeSegments(), l.rp.close())
	l.notifyMu.Lock()
	if !l.notifyClosed {
		l.notifyClosed = true
		close(l.changed)
	}
	l.notifyMu.Unlock()
	return errors.Join(errs...)
}

func (l *Log) closeSegments() error {
	var errs []error
	for _, s := range l.segs.Load().segs {
		errs = append(errs, s.release())
	}
	return errors.Join(errs...)
}
