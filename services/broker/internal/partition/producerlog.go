package partition

import (
	"errors"
	"io"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/logstore"
)

// The producer state's life with the log (producers.go, snapshot.go):
// rebuilt when the partition opens and after the log was truncated or
// reopened, updated by the frames a follower appends, snapshotted when the
// log rolls a segment and at Close.

// rebuildProducers replaces the producer state with the one the log holds:
// the newest valid snapshot at or below the log end, then the records
// after it (from the log start without one). Snapshots past the log end
// (taken before a truncation) are removed.
func (p *Partition) rebuildProducers() {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	p.rebuildProducersLocked()
}

// rebuildProducersLocked is rebuildProducers for a caller holding pmu.
func (p *Partition) rebuildProducersLocked() {
	dir, start, end := p.log.Dir(), p.log.LogStartOffset(), p.log.LogEndOffset()
	if err := removeSnapshotsAfter(dir, end); err != nil {
		p.lg.Warn("cannot remove producer snapshots past the log end", zap.Int64("log_end_offset", end), zap.Error(err))
	}
	t, from := newProducerTable(), start
	offs, err := listSnapshots(dir)
	if err != nil {
		p.lg.Warn("cannot list producer snapshots; scanning the log", zap.Error(err))
	}
	for i := len(offs) - 1; i >= 0; i-- {
		if offs[i] > end {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, snapshotName(offs[i])))
		if err == nil {
			var at int64
			t, at, err = decodeSnapshot(b)
			if err == nil {
				from = max(at, start)
				break
			}
		}
		t = newProducerTable()
		p.lg.Warn("ignoring a producer snapshot", zap.String("file", snapshotName(offs[i])), zap.Error(err))
	}
	scanned, err := p.scanProducers(t, from, end)
	if err != nil {
		p.lg.Warn("producer state rebuilt from part of the log", zap.Int64("from", from), zap.Int64("to", from+scanned), zap.Error(err))
	}
	t.expire(p.now().Add(-p.producerExpiry).UnixMilli())
	p.producers = t
	if st, ok := p.log.(statser); ok {
		p.rolls = st.Stats().Rolls
	}
	if len(t.m) > 0 || scanned > 0 {
		p.lg.Debug("producer state rebuilt", zap.Int64("from", from), zap.Int64("records_scanned", scanned), zap.Int("producers", len(t.m)))
	}
}

// scanProducers applies the records in [from, end) to t and returns how
// many it read. A corrupt record is passed over (its producer fields are
// lost with it, as its data is); any other read error ends the scan.
func (p *Partition) scanProducers(t *producerTable, from, end int64) (int64, error) {
	if from >= end {
		return 0, nil
	}
	r, err := p.log.NewReader(from)
	if err != nil {
		return 0, err
	}
	n := int64(0)
	for {
		f, err := r.Next()
		var ce *logstore.CorruptError
		switch {
		case errors.Is(err, io.EOF):
			return n, r.Close()
		case errors.As(err, &ce):
			p.lg.Warn("producer state scan passed a corrupt record", zap.Int64("offset", ce.Offset), zap.Error(err))
			continue
		case err != nil:
			return n, errors.Join(err, r.Close())
		}
		if f.Offset >= end {
			return n, r.Close()
		}
		if err := t.applyPayload(f.Payload, f.Offset, f.Timestamp); err != nil {
			p.lg.Warn("record without readable producer fields", zap.Int64("offset", f.Offset), zap.Error(err))
		}
		n++
	}
}

// applyFramesLocked needs pmu, held since the frames were appended: it
// updates the producer state with a follower's appended frames (the
// leader's, as stored).
func (p *Partition) applyFramesLocked(frames []byte) {
	for len(frames) > 0 {
		f, n, err := logstore.DecodeFrame(frames, len(frames))
		if err != nil {
			// AppendFrames took these frames; a frame it took and this
			// cannot read would be a bug: rebuild from the log instead.
			p.lg.Warn("cannot read appended frames for the producer state", zap.Error(err))
			p.rebuildProducersLocked()
			return
		}
		frames = frames[n:]
		if err := p.producers.applyPayload(f.Payload, f.Offset, f.Timestamp); err != nil {
			p.lg.Warn("record without readable producer fields", zap.Int64("offset", f.Offset), zap.Error(err))
		}
	}
	p.maybeSnapshotLocked()
}

// maybeSnapshotLocked needs pmu: it writes a snapshot when the log rolled a
// segment since the last check.
func (p *Partition) maybeSnapshotLocked() {
	st, ok := p.log.(statser)
	if !ok {
		return
	}
	rolls := st.Stats().Rolls
	if rolls == p.rolls {
		return
	}
	p.rolls = rolls
	if err := p.snapshotLocked(); err != nil {
		// The next roll or Close writes one; until then a restart scans more.
		p.lg.Warn("producer snapshot failed", zap.Error(err))
	}
}

// snapshotLocked needs pmu: it expires idle producers and writes the state
// at the log end.
func (p *Partition) snapshotLocked() error {
	if n := p.producers.expire(p.now().Add(-p.producerExpiry).UnixMilli()); n > 0 {
		p.lg.Info("producer ids expired", zap.Int("count", n), zap.Duration("idle_for", p.producerExpiry))
	}
	return writeSnapshot(p.log.Dir(), p.producers, p.log.LogEndOffset())
}

// snapshotProducers writes a snapshot at the log end (Close).
func (p *Partition) snapshotProducers() error {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	if len(p.producers.m) == 0 {
		offs, err := listSnapshots(p.log.Dir())
		if err != nil || len(offs) == 0 {
			return nil // nothing to remember; no file for a log never written idempotently
		}
	}
	return p.snapshotLocked()
}

// ProducerCount is the number of producer ids in the partition's state.
func (p *Partition) ProducerCount() int {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	return len(p.producers.m)
}
