// Package partition is one partition of a topic on this broker: its log, its
// role (leader or follower), leader epoch and high watermark, and the produce
// and read paths over them.
package partition

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Role is this broker's role for a partition.
type Role int

const (
	// RoleLeader accepts produce and serves consumers.
	RoleLeader Role = iota + 1
	// RoleFollower copies the leader's log (replication issue).
	RoleFollower
	// RoleNone: the broker holds the log but has no role for it yet (a
	// cluster-mode broker before its replicator's first ApplyPartitionState)
	// or no longer (the replica moved away).
	RoleNone
)

func (r Role) String() string {
	switch r {
	case RoleLeader:
		return "leader"
	case RoleFollower:
		return "follower"
	case RoleNone:
		return "none"
	}
	return fmt.Sprintf("role(%d)", int(r))
}

// State is the partition's place in the cluster. On a single node the broker
// leads every partition in epoch 0 with itself as the only replica; the
// cluster issue sets it from the controller's metadata (ApplyPartitionState).
type State struct {
	Role        Role
	LeaderEpoch int32
	LeaderID    int32 // -1 when no leader is known
	LeaderAddr  string
	Replicas    []int32
	ISR         []int32
}

// Options configure a Partition.
type Options struct {
	Topic string
	ID    int32
	// MaxRecordBytes bounds one record's key, value and headers.
	MaxRecordBytes int
	// MinInsyncReplicas is the ISR size acks=ALL needs.
	MinInsyncReplicas int
	// Compacted is true when the topic's cleanup.policy compacts.
	Compacted bool
	State     State
	// Logger; nil means zap.NewNop().
	Logger *zap.Logger
	// LeaderLease, when > 0, is how long this broker may accept produce as
	// the partition's leader after its replicator last confirmed that
	// leadership (lease.go); zero means no lease (a single node, which has
	// no replicator and no other leader). Cluster mode sets it.
	LeaderLease time.Duration
	// Now is the broker clock for record timestamps and the lease; nil
	// means time.Now.
	Now func() time.Time
	// ProducerIDExpiry is how long a producer id that wrote nothing to
	// the partition stays in its dedupe state; 0 means
	// DefaultProducerIDExpiry.
	ProducerIDExpiry time.Duration
}

// Partition serves one partition's log.
type Partition struct {
	topic string
	id    int32
	log   Log
	lg    *zap.Logger
	now   func() time.Time

	maxRecordBytes atomic.Int64
	minISR         atomic.Int32
	// compacted: the topic's cleanup.policy compacts, so the leader's log
	// may skip offsets and a follower takes gapped batches.
	compacted atomic.Bool

	mu           sync.RWMutex
	state        State
	stateChanged chan struct{} // closed and replaced on every state change

	// Replication state (replication.go), guarded by rmu.
	rmu         sync.Mutex
	hw          atomic.Int64
	hwSaved     atomic.Int64
	hwChanged   chan struct{}
	followers   map[int32]*followerState
	leaderSince time.Time // when this broker began leading in this epoch
	epochStart  int64     // log end offset then

	// The leader lease (lease.go): confirmed, guarded by rmu, is the last
	// time this node's replicator confirmed the leadership in the current
	// epoch; revoked, that it named another leader or epoch since.
	lease     time.Duration
	confirmed time.Time
	revoked   bool

	// Idempotent producers (producers.go), guarded by pmu, which is held
	// across the dedupe check, the append and the state update of every
	// idempotent batch. Lock order: mu, then pmu.
	pmu            sync.Mutex
	producers      *producerTable
	producerExpiry time.Duration
	rolls          uint64 // the log's roll count at the last snapshot check

	closed    chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// New wraps an open log. The partition owns the log from now on.
func New(log Log, o Options) *Partition {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ProducerIDExpiry <= 0 {
		o.ProducerIDExpiry = DefaultProducerIDExpiry
	}
	p := &Partition{
		topic:          o.Topic,
		id:             o.ID,
		log:            log,
		lg:             o.Logger.With(zap.String("topic", o.Topic), zap.Int32("partition", o.ID)),
		now:            o.Now,
		stateChanged:   make(chan struct{}),
		hwChanged:      make(chan struct{}),
		followers:      make(map[int32]*followerState),
		closed:         make(chan struct{}),
		lease:          o.LeaderLease,
		producers:      newProducerTable(),
		producerExpiry: o.ProducerIDExpiry,
	}
	p.SetLimits(o.MaxRecordBytes, o.MinInsyncReplicas)
	p.compacted.Store(o.Compacted)
	// A restarted partition serves up to the HW it had checkpointed, never
	// past its own log end; a leader then recomputes it.
	hw, err := loadHW(log.Dir())
	if err != nil {
		p.lg.Warn("ignoring the high watermark checkpoint", zap.Error(err))
		hw = 0
	}
	hw = min(hw, log.LogEndOffset())
	p.hw.Store(hw)
	p.hwSaved.Store(hw)
	p.mu.Lock()
	p.setStateLocked(o.State)
	p.mu.Unlock()
	p.rebuildProducers()
	return p
}

// Topic is the partition's topic name.
func (p *Partition) Topic() string { return p.topic }

// ID is the partition number.
func (p *Partition) ID() int32 { return p.id }

// SetLimits changes the record size limit and min ISR (topic config alter).
func (p *Partition) SetLimits(maxRecordBytes, minInsyncReplicas int) {
	p.maxRecordBytes.Store(int64(maxRecordBytes))
	p.minISR.Store(int32(minInsyncReplicas))
}

// SetCompacted records whether the topic's cleanup.policy compacts (topic
// config alter): a follower of a compacted partition takes batches whose
// offsets skip what the leader's compaction removed.
func (p *Partition) SetCompacted(c bool) { p.compacted.Store(c) }

// State returns a copy of the partition's cluster state.
func (p *Partition) State() State {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s := p.state
	s.Replicas = append([]int32(nil), s.Replicas...)
	s.ISR = append([]int32(nil), s.ISR...)
	return s
}

// SetState replaces the partition's cluster state unconditionally.
func (p *Partition) SetState(s State) {
	p.mu.Lock()
	p.setStateLocked(s)
	p.mu.Unlock()
}

// ApplyState replaces the cluster state as the controller decided it. A
// state from an older leader epoch than the current one is refused with a
// StaleEpochError: the controller's decisions only move forward, and an
// older one arriving late (a retried call, a replicator that lagged) must
// not undo a newer leadership. A follower repairs a damaged log
// (repairFollowerLocked, repair.go): a failed log is reopened, and a log
// holding a corrupt record truncates to just before it; when that fails
// the state stays applied and the error is returned, so that the call is
// retried.
func (p *Partition) ApplyState(s State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.LeaderEpoch < p.state.LeaderEpoch {
		return &StaleEpochError{Topic: p.topic, Partition: p.id, Got: s.LeaderEpoch, Current: p.state.LeaderEpoch}
	}
	p.setStateLocked(s)
	return p.repairFollowerLocked()
}

func (p *Partition) setStateLocked(s State) {
	s.Replicas = append([]int32(nil), s.Replicas...)
	s.ISR = append([]int32(nil), s.ISR...)
	old := p.state
	if s.Role != old.Role || s.LeaderEpoch != old.LeaderEpoch || !slices.Equal(s.ISR, old.ISR) {
		p.lg.Info("partition state", zap.Stringer("role", s.Role), zap.Int32("leader_epoch", s.LeaderEpoch),
			zap.Int32("leader", s.LeaderID), zap.Int32s("isr", s.ISR))
	}
	p.state = s
	p.onStateChangeLocked(old, s)
	close(p.stateChanged)
	p.stateChanged = make(chan struct{})
}

// StateChanged is closed on the next state change; streams serving a
// leader watch it to end when leadership moves.
func (p *Partition) StateChanged() <-chan struct{} {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.stateChanged
}

// NotLeader is nil when this broker leads the partition, else a
// NotLeaderError naming the leader it knows of.
func (p *Partition) NotLeader() error {
	st := p.State()
	if st.Role == RoleLeader {
		return nil
	}
	return &NotLeaderError{Topic: p.topic, Partition: p.id, LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr, Epoch: st.LeaderEpoch}
}

// LogStartOffset is the first offset still in the log.
func (p *Partition) LogStartOffset() int64 { return p.log.LogStartOffset() }

// LogEndOffset is the next offset to be assigned.
func (p *Partition) LogEndOffset() int64 { return p.log.LogEndOffset() }

// Healthy is nil, or why the log refuses writes or reads.
func (p *Partition) Healthy() error { return p.log.Healthy() }

// ApplyRetention runs size and age retention now.
func (p *Partition) ApplyRetention() error { return p.log.ApplyRetention() }

// OffsetForTime is the first offset whose timestamp is >= tsMillis, or the
// high watermark when there is none.
func (p *Partition) OffsetForTime(tsMillis int64) (int64, error) {
	off, err := p.log.OffsetForTime(tsMillis)
	if err != nil {
		return 0, err
	}
	return min(off, p.HighWatermark()), nil
}

// ProduceResult is where a batch landed.
type ProduceResult struct {
	Base, Last int64
	Epoch      int32
	// Duplicate: an idempotent batch already in the log; Base and Last
	// are its original offsets and nothing was appended.
	Duplicate bool
}

// Produce appends a plain (non-idempotent) batch and waits for acks.
func (p *Partition) Produce(ctx context.Context, recs []*stratav1.Record, acks stratav1.Acks) (ProduceResult, error) {
	return p.ProduceBatch(ctx, recs, acks, ProducerBatch{})
}

// ProduceBatch is Append then AwaitAcks.
func (p *Partition) ProduceBatch(ctx context.Context, recs []*stratav1.Record, acks stratav1.Acks, pb ProducerBatch) (ProduceResult, error) {
	res, err := p.Append(ctx, recs, acks, pb)
	if err != nil {
		return res, err
	}
	return res, p.AwaitAcks(ctx, res, acks)
}

// Append validates and appends a batch without waiting for the followers.
// Records keep the producer's timestamp when set (> 0), else get the
// broker's time. A batch with a producer id (pb) is deduplicated: a batch
// already in the log is answered with its original offsets (Duplicate),
// a gap in the producer's sequence or an older epoch is refused with a
// *ProducerFaultError. A leader whose lease expired refuses every batch,
// whatever its acks (LeaseExpiredError).
func (p *Partition) Append(ctx context.Context, recs []*stratav1.Record, acks stratav1.Acks, pb ProducerBatch) (ProduceResult, error) {
	if len(recs) == 0 {
		return ProduceResult{}, ErrEmptyBatch
	}
	// The state is held from the leadership check to the write: a demotion
	// (ApplyState) waits for an append in progress, so a leader's append
	// never lands in the log after it became a follower and truncated.
	p.mu.RLock()
	defer p.mu.RUnlock()
	st := p.state
	if st.Role != RoleLeader {
		return ProduceResult{}, &NotLeaderError{Topic: p.topic, Partition: p.id, LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr, Epoch: st.LeaderEpoch}
	}
	if err := p.leaseErr(st.LeaderEpoch); err != nil {
		return ProduceResult{}, err
	}
	if acks == stratav1.Acks_ACKS_ALL {
		if isr, need := len(st.ISR), int(p.minISR.Load()); isr < need {
			return ProduceResult{}, &NotEnoughReplicasError{ISR: isr, MinISR: need}
		}
	}
	limit := int(p.maxRecordBytes.Load())
	total := 0
	for i, r := range recs {
		n := PayloadSize(r)
		if n > limit {
			return ProduceResult{}, &RecordTooLargeError{Topic: p.topic, Index: i, Size: n, Max: limit}
		}
		total += n
	}
	if err := ctx.Err(); err != nil {
		return ProduceResult{}, err
	}
	if pb.Idempotent() {
		return p.appendIdempotent(st.LeaderEpoch, recs, total, pb)
	}
	batch, _ := p.encode(recs, total, ProducerBatch{})
	base, err := p.log.Append(st.LeaderEpoch, batch)
	if err != nil {
		return ProduceResult{}, fmt.Errorf("partition %s/%d: append: %w", p.topic, p.id, err)
	}
	res := ProduceResult{Base: base, Last: base + int64(len(batch)) - 1, Epoch: st.LeaderEpoch}
	p.advanceHW()
	return res, nil
}

// encode builds the stored records of recs; with a producer id every
// payload carries the producer fields, sequences from pb.Sequence on. It
// returns the newest timestamp.
func (p *Partition) encode(recs []*stratav1.Record, size int, pb ProducerBatch) ([]logstore.Record, int64) {
	if pb.Idempotent() {
		size += len(recs) * ProducerFieldsSize(pb.ID, pb.Epoch, pb.Sequence+int64(len(recs)))
	}
	buf := make([]byte, 0, size)
	batch := make([]logstore.Record, len(recs))
	now := p.now().UnixMilli()
	maxTs := int64(0)
	for i, r := range recs {
		start := len(buf)
		buf = EncodePayload(buf, r)
		if pb.Idempotent() {
			buf = AppendProducerFields(buf, pb.ID, pb.Epoch, pb.Sequence+int64(i))
		}
		ts := r.GetTimestampMs()
		if ts <= 0 {
			ts = now
		}
		maxTs = max(maxTs, ts)
		batch[i] = logstore.Record{Timestamp: ts, Payload: buf[start:len(buf):len(buf)]}
	}
	return batch, maxTs
}

// appendIdempotent is Append for a batch with a producer id: the dedupe
// check, the append and the state update under pmu, so that two requests
// carrying the same batch (a retry on a new stream while the first is
// still being written) append it once.
func (p *Partition) appendIdempotent(epoch int32, recs []*stratav1.Record, size int, pb ProducerBatch) (ProduceResult, error) {
	p.pmu.Lock()
	defer p.pmu.Unlock()
	d, err := p.producers.check(pb, len(recs))
	if err == nil && d.dup && !p.holdsBatchLocked(pb, d.offset) {
		// The state says the batch is in the log, the log says otherwise
		// (a chaos run acknowledged offsets holding other records): never
		// answer with them. Rebuild the state from the log and decide again.
		p.lg.Warn("producer state disagrees with the log; rebuilding it", zap.Int64("producer_id", pb.ID),
			zap.Int64("sequence", pb.Sequence), zap.Int64("offset", d.offset))
		p.rebuildProducersLocked()
		d, err = p.producers.check(pb, len(recs))
		if err == nil && d.dup && !p.holdsBatchLocked(pb, d.offset) {
			return ProduceResult{}, fmt.Errorf("partition %s/%d: producer %d sequence %d: state and log disagree at offset %d", p.topic, p.id, pb.ID, pb.Sequence, d.offset)
		}
	}
	if err != nil {
		return ProduceResult{}, err
	}
	n := int64(len(recs))
	if d.dup {
		return ProduceResult{Base: d.offset, Last: d.offset + n - 1, Epoch: epoch, Duplicate: true}, nil
	}
	if d.skip > 0 {
		// The first records are in the log already (a failover cut the
		// batch short); the rest must follow them directly for the batch's
		// offsets to be one range.
		if d.offset+int64(d.skip) != p.log.LogEndOffset() {
			return ProduceResult{}, &ProducerFaultError{Reason: FaultOutOfOrderSequence, ProducerID: pb.ID, Epoch: pb.Epoch, CurrentEpoch: pb.Epoch,
				Expected: pb.Sequence + int64(d.skip), Sequence: pb.Sequence}
		}
		recs = recs[d.skip:]
		pb.Sequence += int64(d.skip)
	}
	batch, maxTs := p.encode(recs, size, pb)
	base, err := p.log.Append(epoch, batch)
	if err != nil {
		return ProduceResult{}, fmt.Errorf("partition %s/%d: append: %w", p.topic, p.id, err)
	}
	p.producers.apply(pb.ID, pb.Epoch, pb.Sequence, len(batch), base, maxTs)
	p.maybeSnapshotLocked()
	res := ProduceResult{Base: base, Last: base + int64(len(batch)) - 1, Epoch: epoch}
	if d.skip > 0 {
		res.Base = d.offset
	}
	p.advanceHW()
	return res, nil
}

// holdsBatchLocked reports whether the record at offset carries batch
// pb's producer id and first sequence (the answer a duplicate is given).
func (p *Partition) holdsBatchLocked(pb ProducerBatch, offset int64) bool {
	r, err := p.log.NewReader(offset)
	if err != nil {
		return false
	}
	f, err := r.Next()
	closeErr := r.Close()
	if err != nil || closeErr != nil || f.Offset != offset {
		return false
	}
	id, _, seq, ok, err := PayloadProducer(f.Payload)
	return err == nil && ok && id == pb.ID && seq == pb.Sequence
}

// AwaitAcks waits, for acks=ALL, until the high watermark passed the
// batch res (ctx, the partition's close or the end of this broker's
// leadership end the wait).
func (p *Partition) AwaitAcks(ctx context.Context, res ProduceResult, acks stratav1.Acks) error {
	if acks != stratav1.Acks_ACKS_ALL {
		return nil
	}
	if err := p.WaitFor(ctx, res.Last, nil); err != nil {
		return err
	}
	// The HW passed the batch, but if the ISR shrank below the minimum
	// meanwhile fewer copies than promised may hold it: no ack (Kafka's
	// NOT_ENOUGH_REPLICAS_AFTER_APPEND). The records stay; a retry of an
	// idempotent batch is answered with them, a plain one may duplicate.
	if isr, need := len(p.State().ISR), int(p.minISR.Load()); isr < need {
		return &NotEnoughReplicasError{ISR: isr, MinISR: need, AfterAppend: true}
	}
	return nil
}

// WaitFor blocks until the high watermark is past offset, ctx ends, stop is
// closed (ErrStopped), the partition closes (ErrClosed) or this broker stops
// leading it (a NotLeaderError). It waits on the log's and the state's change
// notifications: no polling.
func (p *Partition) WaitFor(ctx context.Context, offset int64, stop <-chan struct{}) error {
	for {
		changed, stateChanged := p.HWChanged(), p.StateChanged()
		select {
		case <-p.closed:
			return ErrClosed
		default:
		}
		if err := p.NotLeader(); err != nil {
			return err
		}
		if p.HighWatermark() > offset {
			return nil
		}
		select {
		case <-changed:
		case <-stateChanged:
		case <-ctx.Done():
			return ctx.Err()
		case <-stop:
			return ErrStopped
		case <-p.closed:
			return ErrClosed
		}
	}
}

// Close syncs and closes the log. Waiters and readers get ErrClosed.
func (p *Partition) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		p.closeErr = errors.Join(p.log.Sync(), p.CheckpointHW(), p.snapshotProducers(), p.log.Close())
	})
	return p.closeErr
}

// Cursor reads a partition's records in order, up to the high watermark.
// It is not safe for concurrent use.
type Cursor struct {
	p *Partition
	// limit is where reading stops: the HW for consumers, the log end for
	// a follower's fetch.
	limit  func() int64
	r      *logstore.Reader
	next   int64
	epochs []logstore.EpochEntry

	// pending is a frame read but not yet returned (it did not fit the last batch).
	pending    bool
	pendingF   logstore.Frame
	pendingBuf []byte
	// err is a read error met after some records of a batch: that batch
	// is returned whole, and the next Read returns err.
	err error
}

// NewCursor positions a cursor at offset, which must be in
// [log start, high watermark].
func (p *Partition) NewCursor(offset int64) (*Cursor, error) {
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	start, hw := p.log.LogStartOffset(), p.HighWatermark()
	if offset < start || offset > hw {
		return nil, &logstore.OutOfRangeError{Offset: offset, Start: start, End: hw}
	}
	r, err := p.log.NewReader(offset)
	if err != nil {
		return nil, err
	}
	return &Cursor{p: p, r: r, next: offset, limit: p.HighWatermark}, nil
}

// NewReplicaCursor positions a cursor for a follower's Fetch at offset,
// which must be in [log start, log end]: a follower reads past the HW.
func (p *Partition) NewReplicaCursor(offset int64) (*Cursor, error) {
	select {
	case <-p.closed:
		return nil, ErrClosed
	default:
	}
	start, end := p.log.LogStartOffset(), p.log.LogEndOffset()
	if offset < start || offset > end {
		return nil, &logstore.OutOfRangeError{Offset: offset, Start: start, End: end}
	}
	r, err := p.log.NewReader(offset)
	if err != nil {
		return nil, err
	}
	return &Cursor{p: p, r: r, next: offset, limit: p.log.LogEndOffset}, nil
}

// ReadFrames appends raw frames of one leader epoch to dst, about maxBytes
// (at least one frame when any is there), for a follower's Fetch: the
// frames go out exactly as stored. It returns the frames, their epoch and
// their count; 0 frames means the cursor is at its limit.
func (c *Cursor) ReadFrames(dst []byte, maxBytes int) (out []byte, epoch int32, n int, err error) {
	if c.pending {
		return dst, 0, 0, errors.New("partition: ReadFrames after Read on one cursor")
	}
	limit := c.limit()
	if c.next >= limit {
		return dst, 0, 0, nil
	}
	epochs := c.p.log.Epochs()
	epoch, before := int32(0), limit
	for _, e := range epochs {
		if e.StartOffset > c.next {
			before = min(before, e.StartOffset)
			break
		}
		epoch = e.Epoch
	}
	// The reader ends a batch before a bad record and returns its error,
	// with no frames, from the next call: frames are never dropped. A
	// corrupt record it moved past is not a frame of the answer.
	out, next, err := c.r.ReadFramesBefore(dst, maxBytes, before)
	n = int(next - c.next)
	c.next = next
	if err != nil {
		n = 0
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return out, epoch, n, err
}

// Next is the offset the cursor reads next.
func (c *Cursor) Next() int64 { return c.next }

// Read calls fn for each record from the cursor's position on, at most
// maxRecords and about maxBytes of payload (at least one record), stopping at
// the high watermark. fn's frame is valid only during the call. It returns
// how many records it read; 0 means the cursor is at the high watermark.
//
// A read error ends the batch before the failed record: the records already
// read are returned with a nil error, and the next Read returns the error
// before reading further. A *logstore.CorruptError leaves the cursor past
// the damaged record, so a Read after it goes on with the next one.
func (c *Cursor) Read(maxRecords, maxBytes int, fn func(f logstore.Frame, epoch int32)) (int, error) {
	if err := c.err; err != nil {
		c.err = nil
		c.passCorrupt(err)
		return 0, err
	}
	hw := c.limit()
	c.epochs = c.p.log.Epochs()
	n, size := 0, 0
	for n < maxRecords && c.next < hw {
		var f logstore.Frame
		if c.pending {
			f = c.pendingF
		} else {
			var err error
			f, err = c.r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if n > 0 {
					c.err = err
					break
				}
				c.passCorrupt(err)
				return 0, err
			}
		}
		fsize := len(f.Payload) + recordOverhead
		if n > 0 && size+fsize > maxBytes {
			if !c.pending {
				c.pendingBuf = append(c.pendingBuf[:0], f.Payload...)
				f.Payload, f.Raw = c.pendingBuf, nil
				c.pendingF, c.pending = f, true
			}
			break
		}
		c.pending = false
		size += fsize
		fn(f, c.epochFor(f.Offset))
		c.next = f.Offset + 1
		n++
	}
	return n, nil
}

// passCorrupt moves the cursor past a corrupt record the reader skipped.
func (c *Cursor) passCorrupt(err error) {
	var ce *logstore.CorruptError
	if errors.As(err, &ce) {
		c.next = max(c.next, c.r.Offset())
	}
}

// recordOverhead approximates the bytes a record adds beyond its payload on
// the wire (timestamp, offset, epoch, length prefix).
const recordOverhead = 24

// epochFor is the leader epoch of offset: the last epoch entry starting at
// or before it.
func (c *Cursor) epochFor(off int64) int32 {
	e := int32(0)
	for _, ent := range c.epochs {
		if ent.StartOffset > off {
			break
		}
		e = ent.Epoch
	}
	return e
}

// Close releases the reader.
func (c *Cursor) Close() error { return c.r.Close() }

// statser is the optional storage capability of reporting segment figures.
type statser interface{ Stats() logstore.Stats }

// LogStats are the log's segment figures and fault counters; ok is false
// when the log does not report them.
func (p *Partition) LogStats() (st logstore.Stats, ok bool) {
	s, ok := p.log.(statser)
	if !ok {
		return logstore.Stats{}, false
	}
	return s.Stats(), true
}

// LatestLocalEpoch is the newest leader epoch in the log's epoch file, -1
// when the log has none.
func (p *Partition) LatestLocalEpoch() int32 {
	es := p.log.Epochs()
	if len(es) == 0 {
		return -1
	}
	return es[len(es)-1].Epoch
}
