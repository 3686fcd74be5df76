package partition

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/logstore"
)

// Repair of a damaged log (DESIGN.md §8). A log is damaged when a write or
// fsync failed (logstore.ErrFailed: it refuses writes until reopened) or a
// record below its log end is corrupt. A leader with a damaged log gives
// leadership to an in-sync replica when one exists (ProposedResignation;
// the ISR manager asks the controller); a follower repairs from the
// leader: it reopens a failed log, which runs recovery, and truncates to
// just before a corrupt record, so that its fetcher copies the range again.
// A leader alone in its ISR keeps serving what is intact and refuses the
// damaged range.

// reopener is the optional capability of a log that can be closed and
// opened again in place, recovery running as at startup; the topic
// registry's logs have it.
type reopener interface{ Reopen() error }

// Damage is nil, or why this partition's log cannot serve as the
// partition's copy: its sticky write failure (errors.Is(err,
// logstore.ErrFailed)) or its lowest corrupt record still in the log (a
// *logstore.CorruptError at an offset in [log start, log end)). A write
// refused for lack of space is no damage: the log stays writable.
func (p *Partition) Damage() error {
	err := p.log.Healthy()
	if err == nil || errors.Is(err, logstore.ErrFailed) {
		return err
	}
	var ce *logstore.CorruptError
	if errors.As(err, &ce) && ce.Offset >= p.log.LogStartOffset() && ce.Offset < p.log.LogEndOffset() {
		return err
	}
	return nil // unknown offset (-1), or no longer in the log
}

// ProposedResignation reports whether this broker should give up leading
// the partition: it leads in epoch, its log is damaged (why), and another
// replica is in the committed ISR to take over. ok is false otherwise; a
// leader alone in its ISR keeps leading.
func (p *Partition) ProposedResignation() (epoch int32, why error, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := p.state
	if st.Role != RoleLeader {
		return 0, nil, false
	}
	other := false
	for _, id := range st.ISR {
		other = other || id != st.LeaderID
	}
	if !other {
		return 0, nil, false
	}
	why = p.Damage()
	return st.LeaderEpoch, why, why != nil
}

// repairFollowerLocked needs p.mu (write). On a follower whose log failed
// it reopens the log; then, when the log reports a corrupt record below
// its log end, it truncates the log to just before the record, so that the
// fetcher, which fetches from the log end, copies the damaged range and
// everything after it again from the leader.
func (p *Partition) repairFollowerLocked() error {
	if p.state.Role != RoleFollower {
		return nil
	}
	if err := p.log.Healthy(); errors.Is(err, logstore.ErrFailed) {
		if err := p.reopenLocked(err); err != nil {
			return err
		}
	}
	var ce *logstore.CorruptError
	if !errors.As(p.Damage(), &ce) {
		return nil
	}
	p.lg.Warn("follower truncating before a corrupt record to fetch it again from the leader",
		zap.Int64("offset", ce.Offset), zap.String("segment", ce.Segment), zap.Int64("position", ce.Position),
		zap.String("reason", ce.Reason), zap.Int64("log_end_offset", p.log.LogEndOffset()))
	if err := p.log.Truncate(ce.Offset); err != nil {
		return fmt.Errorf("partition %s/%d: truncate before the corrupt record at %d: %w", p.topic, p.id, ce.Offset, err)
	}
	p.rebuildProducers()
	p.capHWLocked()
	return nil
}

// reopenLocked needs p.mu (write): it closes the failed log and opens it
// again. Recovery cuts what was not synced; the fetcher's resync then
// truncates to the leader's history and copies the rest. A log that cannot
// reopen stays failed (until the broker restarts); when opening fails the
// error is returned, so that the state is applied again later.
func (p *Partition) reopenLocked(cause error) error {
	r, ok := p.log.(reopener)
	if !ok {
		p.lg.Warn("follower's log failed and cannot be reopened here; it refuses writes until the broker restarts", zap.Error(cause))
		return nil
	}
	p.lg.Warn("follower reopening its failed log", zap.Error(cause), zap.Int64("log_end_offset", p.log.LogEndOffset()))
	if err := r.Reopen(); err != nil {
		return fmt.Errorf("partition %s/%d: reopen the failed log: %w", p.topic, p.id, err)
	}
	p.rebuildProducers()
	p.capHWLocked()
	p.lg.Info("log reopened", zap.Int64("log_start_offset", p.log.LogStartOffset()), zap.Int64("log_end_offset", p.log.LogEndOffset()))
	return nil
}

// capHWLocked needs p.mu (write): a follower's HW never passes its log end
// after the log shrank.
func (p *Partition) capHWLocked() {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if leo := p.log.LogEndOffset(); p.hw.Load() > leo {
		p.setHWLocked(leo)
	}
}
