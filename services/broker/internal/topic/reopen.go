package topic

import (
	"context"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/logstore"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// reopenableLog is a partition's log that can be closed and opened again
// in place, recovery running as at startup: how a follower whose log
// failed (logstore.ErrFailed, sticky until the log is reopened) becomes
// writable again without a broker restart (partition.ApplyState calls
// Reopen). The partition keeps this one value; every call goes to the log
// open at the time. Calls in flight on the old log when it closes end with
// logstore.ErrClosed, and its Changed channel closes, so waiters look again.
type reopenableLog struct {
	dir  string
	open func() (partition.Log, error)
	lg   *zap.Logger
	cur  atomic.Pointer[openLog]

	mu     sync.Mutex // serializes Reopen and Close
	closed bool
}

// openLog holds the current log (atomic.Pointer needs a concrete type).
type openLog struct{ partition.Log }

var _ partition.Log = (*reopenableLog)(nil)

func newReopenableLog(l partition.Log, open func() (partition.Log, error), lg *zap.Logger) *reopenableLog {
	r := &reopenableLog{dir: l.Dir(), open: open, lg: lg}
	r.cur.Store(&openLog{l})
	return r
}

func (r *reopenableLog) log() partition.Log { return r.cur.Load().Log }

// Reopen closes the log and opens its directory again. The old log's
// close error is logged, not returned: a failed log reports its failure
// there, and the recovery of the reopen decides what survived. When the
// open fails the old, closed log stays in place (it still reports its
// failure, so the caller can try again) and the error is returned.
func (r *reopenableLog) Reopen() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return logstore.ErrClosed
	}
	if err := r.log().Close(); err != nil {
		r.lg.Warn("closing a log before reopening it", zap.String("dir", r.dir), zap.Error(err))
	}
	l, err := r.open()
	if err != nil {
		return err
	}
	r.cur.Store(&openLog{l})
	return nil
}

// Close closes the current log; a later Reopen fails with logstore.ErrClosed.
func (r *reopenableLog) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	return r.log().Close()
}

// Stats forwards the engine's figures; zero when the log does not report
// them. A reopened log counts afresh.
func (r *reopenableLog) Stats() logstore.Stats {
	if s, ok := r.log().(interface{ Stats() logstore.Stats }); ok {
		return s.Stats()
	}
	return logstore.Stats{}
}

func (r *reopenableLog) Append(epoch int32, recs []logstore.Record) (int64, error) {
	return r.log().Append(epoch, recs)
}

func (r *reopenableLog) AppendFrames(epoch int32, frames []byte) (int64, error) {
	return r.log().AppendFrames(epoch, frames)
}

func (r *reopenableLog) Truncate(offset int64) error { return r.log().Truncate(offset) }
func (r *reopenableLog) Reset(offset int64) error    { return r.log().Reset(offset) }

func (r *reopenableLog) EndOffsetForEpoch(e int32) (int32, int64) {
	return r.log().EndOffsetForEpoch(e)
}

func (r *reopenableLog) Dir() string { return r.dir }

func (r *reopenableLog) NewReader(offset int64) (*logstore.Reader, error) {
	return r.log().NewReader(offset)
}

func (r *reopenableLog) Changed() <-chan struct{} { return r.log().Changed() }
func (r *reopenableLog) LogStartOffset() int64    { return r.log().LogStartOffset() }
func (r *reopenableLog) LogEndOffset() int64      { return r.log().LogEndOffset() }

func (r *reopenableLog) OffsetForTime(tsMillis int64) (int64, error) {
	return r.log().OffsetForTime(tsMillis)
}

func (r *reopenableLog) Epochs() []logstore.EpochEntry { return r.log().Epochs() }
func (r *reopenableLog) ApplyRetention() error         { return r.log().ApplyRetention() }
func (r *reopenableLog) Healthy() error                { return r.log().Healthy() }
func (r *reopenableLog) Sync() error                   { return r.log().Sync() }

// Compact forwards to the log's compaction; partition.ErrNoCompaction when
// the log has none.
func (r *reopenableLog) Compact(ctx context.Context, opts logstore.CompactOptions) (logstore.CompactStats, error) {
	c, ok := r.log().(interface {
		Compact(context.Context, logstore.CompactOptions) (logstore.CompactStats, error)
	})
	if !ok {
		return logstore.CompactStats{}, partition.ErrNoCompaction
	}
	return c.Compact(ctx, opts)
}

// AppendCompactedFrames forwards a compacted leader's gapped batch to the
// log; partition.ErrNoCompaction when the log cannot take one.
func (r *reopenableLog) AppendCompactedFrames(epoch int32, frames []byte) (int64, error) {
	a, ok := r.log().(interface {
		AppendCompactedFrames(int32, []byte) (int64, error)
	})
	if !ok {
		return -1, partition.ErrNoCompaction
	}
	return a.AppendCompactedFrames(epoch, frames)
}
