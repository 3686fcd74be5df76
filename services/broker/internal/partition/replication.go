package partition

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// The replication state of a partition (DESIGN.md §4): on the leader, each
// follower's position as its Fetch stream reports it, the high watermark
// (HW) as the minimum log end offset over the committed ISR, and the ISR
// this leader would propose; on a follower, the HW the leader passes on.
//
// Locking: p.mu (the cluster state) is taken before p.rmu (this state), so
// that the HW is always computed against one consistent ISR and role.

// followerState is the leader's view of one follower in the current epoch.
type followerState struct {
	// leo is the follower's log end offset, -1 until it first reports.
	leo int64
	// lastCaughtUp is the last time the follower's position reached the
	// leader's log end offset (Kafka's lastCaughtUpTime): a follower that
	// has not caught up for ReplicaLagMax leaves the ISR.
	lastCaughtUp time.Time
	// lastReport and endAtLastReport are the previous report's time and the
	// leader's log end offset then: a follower that reaches what the leader
	// had at its previous report was caught up at that time.
	lastReport      time.Time
	endAtLastReport int64
}

// hwFileName holds a partition's checkpointed high watermark.
const hwFileName = "high-watermark"

// HighWatermark is one past the last offset consumers may read: on the
// leader the minimum log end offset over the ISR, on a follower what the
// leader last told it (capped by its own log end).
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// HWChanged is closed on the next change of the high watermark.
func (p *Partition) HWChanged() <-chan struct{} {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	return p.hwChanged
}

// LogChanged is closed on the next change of the log end offset.
func (p *Partition) LogChanged() <-chan struct{} { return p.log.Changed() }

// setHWLocked needs p.rmu.
func (p *Partition) setHWLocked(hw int64) {
	if hw == p.hw.Load() {
		return
	}
	p.hw.Store(hw)
	close(p.hwChanged)
	p.hwChanged = make(chan struct{})
}

// advanceHW needs p.mu (read): it recomputes the leader's high watermark
// after an append.
func (p *Partition) advanceHW() {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	p.advanceHWLocked()
}

// advanceHWLocked needs p.mu (read) and p.rmu. The HW is the minimum log end
// offset over the committed ISR; a member whose position is not known yet
// (no report in this epoch) holds it where it is. It never moves back on a
// leader.
func (p *Partition) advanceHWLocked() {
	st := p.state
	if st.Role != RoleLeader {
		return
	}
	hw := p.log.LogEndOffset()
	for _, id := range st.ISR {
		if id == st.LeaderID {
			continue
		}
		f := p.followers[id]
		if f == nil || f.leo < 0 {
			return
		}
		hw = min(hw, f.leo)
	}
	if hw > p.hw.Load() {
		p.setHWLocked(hw)
	}
}

// onStateChangeLocked needs p.mu (write); it takes p.rmu. A new leadership
// (role or epoch) starts the follower bookkeeping afresh: positions from an
// older epoch say nothing about the log as this epoch defines it.
func (p *Partition) onStateChangeLocked(old, next State) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if next.Role != RoleLeader {
		clear(p.followers)
		return
	}
	if old.Role != RoleLeader || old.LeaderEpoch != next.LeaderEpoch {
		clear(p.followers)
		p.leaderSince = p.now()
		p.epochStart = p.log.LogEndOffset()
	}
	// The state comes from this node's replicator: it confirms the
	// leadership as much as a renewal does (lease.go).
	p.confirmed, p.revoked = p.now(), false
	for id := range p.followers {
		if !slices.Contains(next.Replicas, id) {
			delete(p.followers, id)
		}
	}
	p.advanceHWLocked()
}

// FollowerFetched records follower id's position (its log end offset) as
// its Fetch stream in leader epoch epoch reported it, and advances the HW.
func (p *Partition) FollowerFetched(id, epoch int32, leo int64) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := p.state
	if st.Role != RoleLeader {
		return &NotLeaderError{Topic: p.topic, Partition: p.id, LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr, Epoch: st.LeaderEpoch}
	}
	if epoch != st.LeaderEpoch {
		return p.epochMismatch(epoch, st.LeaderEpoch)
	}
	if !slices.Contains(st.Replicas, id) || id == st.LeaderID {
		return fmt.Errorf("%w: broker %d is not a follower of %s/%d (replicas %v)", ErrNotReplica, id, p.topic, p.id, st.Replicas)
	}
	now := p.now()
	p.rmu.Lock()
	defer p.rmu.Unlock()
	f := p.followers[id]
	if f == nil {
		f = &followerState{leo: -1, lastCaughtUp: p.leaderSince}
		p.followers[id] = f
	}
	end := p.log.LogEndOffset()
	leo = min(leo, end)
	switch {
	case leo >= end:
		f.lastCaughtUp = now
	case !f.lastReport.IsZero() && leo >= f.endAtLastReport && f.lastReport.After(f.lastCaughtUp):
		f.lastCaughtUp = f.lastReport
	}
	f.leo, f.lastReport, f.endAtLastReport = leo, now, end
	p.advanceHWLocked()
	return nil
}

// ProposedISR is the ISR this leader would have now: the committed ISR
// without followers that have not caught up within lagMax, plus replicas
// that caught up to the HW (and into this epoch). ok is false when it is
// the committed ISR or this broker does not lead.
func (p *Partition) ProposedISR(lagMax time.Duration) (epoch int32, isr []int32, ok bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := p.state
	if st.Role != RoleLeader {
		return 0, nil, false
	}
	now := p.now()
	p.rmu.Lock()
	defer p.rmu.Unlock()
	hw := p.hw.Load()
	for _, id := range st.ISR {
		if id == st.LeaderID {
			isr = append(isr, id)
			continue
		}
		last := p.leaderSince
		if f := p.followers[id]; f != nil {
			last = f.lastCaughtUp
		}
		if now.Sub(last) <= lagMax {
			isr = append(isr, id)
		}
	}
	if !slices.Contains(isr, st.LeaderID) {
		isr = append(isr, st.LeaderID)
	}
	for _, id := range st.Replicas {
		if slices.Contains(st.ISR, id) || id == st.LeaderID {
			continue
		}
		f := p.followers[id]
		if f != nil && f.leo >= hw && f.leo >= p.epochStart && now.Sub(f.lastCaughtUp) <= lagMax {
			isr = append(isr, id)
		}
	}
	slices.Sort(isr)
	cur := slices.Sorted(slices.Values(st.ISR))
	if slices.Equal(isr, cur) {
		return 0, nil, false
	}
	return st.LeaderEpoch, isr, true
}

// gappedAppender is the log's optional append of a compacted leader's
// frames, whose offsets may skip (*logstore.Log has it).
type gappedAppender interface {
	AppendCompactedFrames(epoch int32, frames []byte) (last int64, err error)
}

// AppendReplicated is the follower path: frames fetched from the leader in
// leaderEpoch, all appended in recordsEpoch, written at exactly the
// leader's offsets; leaderHW is the leader's high watermark, which this
// follower adopts up to its own log end. Empty frames only pass the HW on.
func (p *Partition) AppendReplicated(leaderEpoch, recordsEpoch int32, frames []byte, leaderHW int64) (int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.checkFollowerLocked(leaderEpoch); err != nil {
		return 0, err
	}
	if recordsEpoch > leaderEpoch || recordsEpoch < 0 {
		return 0, fmt.Errorf("%w: records epoch %d outside [0, leader epoch %d]", ErrBadReplicaRequest, recordsEpoch, leaderEpoch)
	}
	if len(frames) > 0 {
		// pmu from the write to the state update: a truncation running at
		// the same time (a cancelled Append call goes on here while the
		// next fetcher truncates) rebuilds the state either before these
		// frames are written or after they are applied, never in between,
		// where applying them would leave the state remembering records
		// the truncation removed.
		p.pmu.Lock()
		defer p.pmu.Unlock()
		appendFrames := p.log.AppendFrames
		if c, ok := p.log.(gappedAppender); ok && p.compacted.Load() {
			// Only a compacted topic may skip offsets: elsewhere a gap is
			// a replication bug, which AppendFrames refuses.
			appendFrames = c.AppendCompactedFrames
		}
		if _, err := appendFrames(recordsEpoch, frames); err != nil {
			return 0, fmt.Errorf("partition %s/%d: replicated append: %w", p.topic, p.id, err)
		}
		p.applyFramesLocked(frames)
	}
	leo := p.log.LogEndOffset()
	p.rmu.Lock()
	if hw := min(leaderHW, leo); hw > p.hw.Load() {
		p.setHWLocked(hw)
	}
	p.rmu.Unlock()
	return leo, nil
}

// TruncateReplica removes every record at and after offset on this
// follower (reset: empties the log and restarts it at offset).
func (p *Partition) TruncateReplica(leaderEpoch int32, offset int64, reset bool) (int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err := p.checkFollowerLocked(leaderEpoch); err != nil {
		return 0, err
	}
	if offset < 0 {
		return 0, fmt.Errorf("%w: truncate to negative offset %d", ErrBadReplicaRequest, offset)
	}
	// pmu across the cut and the rebuild: see AppendReplicated.
	p.pmu.Lock()
	var err error
	switch {
	case reset:
		err = p.log.Reset(offset)
	case offset < p.log.LogEndOffset():
		err = p.log.Truncate(offset)
	}
	if err != nil {
		p.pmu.Unlock()
		return 0, fmt.Errorf("partition %s/%d: truncate to %d: %w", p.topic, p.id, offset, err)
	}
	p.rebuildProducersLocked()
	p.pmu.Unlock()
	leo := p.log.LogEndOffset()
	p.rmu.Lock()
	if p.hw.Load() > leo || reset {
		p.setHWLocked(leo)
	}
	p.rmu.Unlock()
	p.lg.Info("follower truncated", zap.Int64("offset", offset), zap.Bool("reset", reset), zap.Int64("log_end_offset", leo))
	return leo, nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch (KIP-101/279): the
// largest epoch <= epoch in this log and where it ends; (-1, -1) when none.
// With currentEpoch >= 0 the caller is a follower asking the leader: this
// broker must lead in exactly currentEpoch, and an epoch newer than its
// own is refused. currentEpoch -1 asks about the local log whatever the
// role (a follower's own replicator).
func (p *Partition) EndOffsetForEpoch(epoch, currentEpoch int32) (int32, int64, error) {
	if currentEpoch >= 0 {
		st := p.State()
		if st.Role != RoleLeader {
			return 0, 0, &NotLeaderError{Topic: p.topic, Partition: p.id, LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr, Epoch: st.LeaderEpoch}
		}
		if currentEpoch != st.LeaderEpoch {
			return 0, 0, p.epochMismatch(currentEpoch, st.LeaderEpoch)
		}
		if epoch > st.LeaderEpoch {
			return 0, 0, fmt.Errorf("%w: epoch %d is newer than this leader's %d", ErrUnknownEpoch, epoch, st.LeaderEpoch)
		}
	}
	e, end := p.log.EndOffsetForEpoch(epoch)
	return e, end, nil
}

// checkFollowerLocked needs p.mu: the replicated write paths are for a
// follower in exactly the leader epoch the fetcher works in.
func (p *Partition) checkFollowerLocked(epoch int32) error {
	st := p.state
	if st.Role != RoleFollower {
		return fmt.Errorf("%w: %s/%d is %s here, not follower", ErrNotFollower, p.topic, p.id, st.Role)
	}
	if epoch != st.LeaderEpoch {
		return p.epochMismatch(epoch, st.LeaderEpoch)
	}
	return nil
}

func (p *Partition) epochMismatch(got, current int32) error {
	if got < current {
		return &StaleEpochError{Topic: p.topic, Partition: p.id, Got: got, Current: current}
	}
	return fmt.Errorf("%w: %s/%d: leader epoch %d is newer than this broker's %d (not applied here yet)", ErrUnknownEpoch, p.topic, p.id, got, current)
}

// CheckpointHW writes the high watermark to the log directory when it
// changed since the last checkpoint (temp file, fsync, rename, fsync dir),
// so that a restarted broker does not serve less than it had committed.
func (p *Partition) CheckpointHW() error {
	hw := p.hw.Load()
	if hw == p.hwSaved.Load() {
		return nil
	}
	dir := p.log.Dir()
	if err := atomicfile.Write(filepath.Join(dir, hwFileName), []byte(strconv.FormatInt(hw, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("partition %s/%d: checkpoint high watermark: %w", p.topic, p.id, err)
	}
	p.hwSaved.Store(hw)
	return nil
}

// loadHW reads a checkpointed high watermark; 0 when there is none.
func loadHW(dir string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(dir, hwFileName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	hw, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || hw < 0 {
		return 0, fmt.Errorf("bad high watermark checkpoint %q", b)
	}
	return hw, nil
}

// FollowerLag is a leader's view of one follower, for metrics.
type FollowerLag struct {
	ID int32
	// Records is the leader's log end minus the follower's position; -1
	// before its first report in this epoch.
	Records int64
	// SinceCaughtUp is the time since the follower last caught up.
	SinceCaughtUp time.Duration
}

// Followers reports every follower of a partition this broker leads; nil
// when it does not lead.
func (p *Partition) Followers() []FollowerLag {
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := p.state
	if st.Role != RoleLeader {
		return nil
	}
	now, end := p.now(), p.log.LogEndOffset()
	p.rmu.Lock()
	defer p.rmu.Unlock()
	var out []FollowerLag
	for _, id := range st.Replicas {
		if id == st.LeaderID {
			continue
		}
		fl := FollowerLag{ID: id, Records: -1, SinceCaughtUp: now.Sub(p.leaderSince)}
		if f := p.followers[id]; f != nil {
			fl.SinceCaughtUp = now.Sub(f.lastCaughtUp)
			if f.leo >= 0 {
				fl.Records = end - f.leo
			}
		}
		out = append(out, fl)
	}
	return out
}
