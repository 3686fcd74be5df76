package partition

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Idempotent producers (KIP-98): the partition remembers, per producer id,
// the newest epoch it has seen and the sequence ranges of that producer's
// last ProducerWindow batches with their offsets. The state is a function
// of the log alone: every record of an idempotent batch carries its
// producer id, epoch and sequence in its stored payload (record.go), the
// leader applies a batch after appending it, a follower applies the
// frames it appends, and a broker opening the log rebuilds it from the
// newest snapshot (snapshot.go) and a scan of the records after it. So a
// new leader after a failover deduplicates exactly as the old one would
// have.
//
// Consecutive records of one producer with consecutive sequences at
// consecutive offsets form one range, however many requests wrote them:
// the leader and a replica scanning the log then hold the same ranges,
// and a retried batch is a duplicate when one range covers its sequences.

// ProducerWindow is how many batches (sequence ranges) per producer a
// partition remembers, as Kafka's max.in.flight for idempotent producers.
const ProducerWindow = 5

// DefaultProducerIDExpiry is how long a producer id that wrote nothing
// stays in a partition's state.
const DefaultProducerIDExpiry = 7 * 24 * time.Hour

// ProducerBatch is an idempotent batch's identity; the zero value is a
// plain batch.
type ProducerBatch struct {
	ID       int64
	Epoch    int32
	Sequence int64 // of the batch's first record
}

// Idempotent reports whether the batch carries a producer id.
func (b ProducerBatch) Idempotent() bool { return b.ID != 0 }

// seqRange is a run of one producer's records: sequences [first, last]
// at offsets [offset, offset+last-first].
type seqRange struct {
	first, last int64
	offset      int64
}

func (r seqRange) lastOffset() int64 { return r.offset + r.last - r.first }

// producerEntry is one producer id's state in a partition. The window is
// an array, not a slice: a slice grown by append to 5 ranges holds 8, and
// with its own allocation an entry cost 263 bytes against the 200 allowed
// per producer id (TestProducerStateMemory).
type producerEntry struct {
	lastTs int64 // newest record timestamp, unix ms
	epoch  int32
	n      int32                    // ranges in use
	window [ProducerWindow]seqRange // oldest first
}

// ranges are the remembered batches, oldest first.
func (e *producerEntry) ranges() []seqRange { return e.window[:e.n] }

// push remembers one more range, forgetting the oldest when full.
func (e *producerEntry) push(r seqRange) {
	if e.n == ProducerWindow {
		copy(e.window[:], e.window[1:])
		e.n--
	}
	e.window[e.n] = r
	e.n++
}

// producerTable is a partition's producer state; the partition guards it.
type producerTable struct {
	m map[int64]*producerEntry
}

func newProducerTable() *producerTable { return &producerTable{m: make(map[int64]*producerEntry)} }

// decision is what check decided for an incoming batch.
type decision struct {
	// dup: the whole batch is in the log at [offset, offset+n-1].
	dup    bool
	offset int64
	// skip > 0: the first skip records are in the log at [offset,
	// offset+skip-1] (a batch a failover cut short, retried): append the
	// rest, which must follow them directly.
	skip int
}

// check decides whether a batch of n records may be appended, is a
// duplicate, or is refused with a *ProducerFaultError.
func (t *producerTable) check(b ProducerBatch, n int) (decision, error) {
	e := t.m[b.ID]
	fault := func(reason FaultReason, expected int64) error {
		cur := b.Epoch
		if e != nil {
			cur = e.epoch
		}
		return &ProducerFaultError{Reason: reason, ProducerID: b.ID, Epoch: b.Epoch, CurrentEpoch: cur, Expected: expected, Sequence: b.Sequence}
	}
	if b.Sequence < 0 || n <= 0 {
		return decision{}, fault(FaultOutOfOrderSequence, -1)
	}
	if e != nil && b.Epoch < e.epoch {
		return decision{}, fault(FaultProducerFenced, -1)
	}
	if e == nil || e.n == 0 || b.Epoch > e.epoch {
		// A producer (or epoch) this partition has no record of starts
		// at sequence 0; anything else follows a batch it never saw.
		if b.Sequence != 0 {
			return decision{}, fault(FaultOutOfOrderSequence, 0)
		}
		return decision{}, nil
	}
	first, last := b.Sequence, b.Sequence+int64(n)-1
	for _, r := range e.ranges() {
		if r.first <= first && last <= r.last {
			return decision{dup: true, offset: r.offset + first - r.first}, nil
		}
	}
	tail := e.window[e.n-1]
	switch {
	case first == tail.last+1:
		return decision{}, nil
	case tail.first <= first && first <= tail.last && last > tail.last:
		return decision{offset: tail.offset + first - tail.first, skip: int(tail.last - first + 1)}, nil
	}
	return decision{}, fault(FaultOutOfOrderSequence, tail.last+1)
}

// apply records that sequences [seq, seq+n-1] of producer b.ID in epoch
// b.Epoch are at offsets [offset, offset+n-1], with timestamp ts.
func (t *producerTable) apply(id int64, epoch int32, seq int64, n int, offset, ts int64) {
	e := t.m[id]
	if e == nil {
		e = &producerEntry{epoch: epoch}
		t.m[id] = e
	}
	switch {
	case epoch < e.epoch:
		return // the leader fences these; a log cannot hold them after newer ones
	case epoch > e.epoch:
		e.epoch, e.n = epoch, 0
	}
	e.lastTs = max(e.lastTs, ts)
	last := seq + int64(n) - 1
	if e.n > 0 {
		tail := &e.window[e.n-1]
		if seq == tail.last+1 && offset == tail.lastOffset()+1 {
			tail.last = last
			return
		}
	}
	e.push(seqRange{first: seq, last: last, offset: offset})
}

// expire removes producers whose newest record is older than before
// (unix ms), and returns how many it removed.
func (t *producerTable) expire(before int64) int {
	n := 0
	for id, e := range t.m {
		if e.lastTs < before {
			delete(t.m, id)
			n++
		}
	}
	return n
}

// applyPayload applies one stored record; a payload without producer
// fields changes nothing.
func (t *producerTable) applyPayload(payload []byte, offset, ts int64) error {
	id, epoch, seq, ok, err := PayloadProducer(payload)
	if err != nil || !ok {
		return err
	}
	t.apply(id, epoch, seq, 1, offset, ts)
	return nil
}

// PayloadProducer reads the producer fields of a stored payload (record.go);
// ok is false when the record is not from an idempotent batch.
func PayloadProducer(payload []byte) (id int64, epoch int32, seq int64, ok bool, err error) {
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return 0, 0, 0, false, protowire.ParseError(n)
		}
		payload = payload[n:]
		if typ == protowire.VarintType && num >= fieldProducerID && num <= fieldSequence {
			v, n := protowire.ConsumeVarint(payload)
			if n < 0 {
				return 0, 0, 0, false, protowire.ParseError(n)
			}
			payload = payload[n:]
			switch num {
			case fieldProducerID:
				id, ok = int64(v), true
			case fieldProducerEpoch:
				epoch = int32(v)
			case fieldSequence:
				seq = int64(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, payload)
		if n < 0 {
			return 0, 0, 0, false, protowire.ParseError(n)
		}
		payload = payload[n:]
	}
	return id, epoch, seq, ok && id != 0, nil
}

// FaultReason is why an idempotent batch was refused.
type FaultReason int

const (
	// FaultOutOfOrderSequence: the batch does not continue the producer's
	// sequence and is no duplicate of a remembered batch.
	FaultOutOfOrderSequence FaultReason = iota + 1
	// FaultProducerFenced: a newer epoch of the producer id wrote here.
	FaultProducerFenced
	// FaultUnknownProducerID: the cluster never handed the id out (the
	// broker checks before the partition sees the batch).
	FaultUnknownProducerID
)

var (
	// ErrOutOfOrderSequence: see ProducerFaultError.
	ErrOutOfOrderSequence = errors.New("partition: out of order sequence")
	// ErrProducerFenced: see ProducerFaultError.
	ErrProducerFenced = errors.New("partition: producer fenced")
	// ErrUnknownProducerID: see ProducerFaultError.
	ErrUnknownProducerID = errors.New("partition: unknown producer id")
)

// ProducerFaultError refuses an idempotent batch. errors.Is(err,
// ErrOutOfOrderSequence) or errors.Is(err, ErrProducerFenced) holds.
type ProducerFaultError struct {
	Reason       FaultReason
	ProducerID   int64
	Epoch        int32
	CurrentEpoch int32
	// Expected is the next sequence the partition expects, -1 if none;
	// Sequence the batch's first.
	Expected, Sequence int64
}

func (e *ProducerFaultError) Error() string {
	if e.Reason == FaultUnknownProducerID {
		return fmt.Sprintf("partition: unknown producer id %d: this cluster never issued it (a producer gets its id from InitProducer)", e.ProducerID)
	}
	if e.Reason == FaultProducerFenced {
		return fmt.Sprintf("partition: producer %d epoch %d is fenced: epoch %d of that id has written here (another producer instance took the id over)",
			e.ProducerID, e.Epoch, e.CurrentEpoch)
	}
	if e.Expected < 0 {
		return fmt.Sprintf("partition: out of order sequence: producer %d epoch %d sent sequence %d, which is neither next nor a remembered batch",
			e.ProducerID, e.Epoch, e.Sequence)
	}
	return fmt.Sprintf("partition: out of order sequence: producer %d epoch %d sent sequence %d, expected %d (an earlier batch is missing)",
		e.ProducerID, e.Epoch, e.Sequence, e.Expected)
}

// Is matches the reason's sentinel.
func (e *ProducerFaultError) Is(target error) bool {
	switch e.Reason {
	case FaultOutOfOrderSequence:
		return target == ErrOutOfOrderSequence
	case FaultProducerFenced:
		return target == ErrProducerFenced
	case FaultUnknownProducerID:
		return target == ErrUnknownProducerID
	}
	return false
}
