package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Producer is an asynchronous, batching producer. It is safe for
// concurrent use. Records of one partition are appended in the order
// Produce accepted them.
//
// By default it is idempotent: each partition's batches carry the
// producer id and epoch it got from the cluster (InitProducer) and the
// sequence of their first record, so a retry of a batch the leader already
// appended (its answer lost, a timeout, a leader change) is answered with
// the original offsets instead of being appended again. That lets up to
// ProducerOptions.MaxInFlight (default 5) batches per partition be in
// flight on the produce stream at once, as Kafka does (KIP-98): the
// partition leader appends a producer's batches only in sequence order, so
// a batch whose predecessor was not appended is refused (out of order
// sequence), never appended ahead of it. When a batch fails with a
// retriable error (not the leader, unavailable, the stream broke, no
// answer in time), the producer waits for the answers of the batches sent
// after it, then sends it and every one after it not yet acknowledged
// again, in order, with their original sequences; those the leader has
// already are answered with their offsets, and an out of order sequence
// answer to a batch whose predecessor is being resent is retried, not
// returned. Without idempotence one batch per partition is in flight, and
// a failed batch is retried before the next is sent.
//
// A batch that fails for good (a non-retriable error, or its delivery
// timeout) starts its partition over under a new producer id, so that the
// next batches are not refused for the gap it leaves. The batches sent
// after it under the old id are then settled as Kafka's idempotent
// producer settles them: one the leader refused (or that never reached a
// leader) is sent again under the new id after the failed one; one whose
// outcome is unknown while the failed batch's is unknown too fails with
// ErrPrecedingBatchFailed, as it may be in the log behind the failed
// batch: sending it under a new id could append it twice. An outcome is
// unknown when the stream broke or no answer came in time, and, with
// AcksAll, when the leader answered a retriable error, which may end the
// wait for the followers after the append. So a partition's records are
// never appended twice nor out of Produce order; a record whose Result is
// an error may still be in the log, in order.
type Producer struct {
	c  *Client
	o  ProducerOptions
	lg *zap.Logger

	ctx    context.Context // cancelled when the producer stops
	cancel context.CancelFunc
	wg     sync.WaitGroup // pump and stream-receive goroutines

	mu       sync.Mutex
	closed   bool // no new records
	stopped  bool // no new goroutines
	parts    map[topicPartition]*partitionQueue
	buffered int           // bytes accepted and not yet answered
	pending  int           // records accepted and not yet answered
	space    chan struct{} // closed and replaced when buffered shrinks
	idle     chan struct{} // closed and replaced when pending reaches 0
	flushing int           // Flush calls running: linger is ignored

	brokersMu sync.Mutex
	brokers   map[string]*brokerStreams

	// idempotent: batches carry producer ids and sequences.
	idempotent bool
	pidMu      sync.Mutex // held across InitProducer
	pid        int64      // the id partitions start with; 0 until asked
	pidEpoch   int32

	tracer   trace.Tracer          // nil: no spans (Config.TracerProvider unset)
	spanKind trace.SpanStartOption // built once: an option made per record allocates
}

type topicPartition struct {
	topic     string
	partition int32
}

// partitionQueue is one partition's batches: the open one, sealed ones
// waiting, and whether a pump goroutine sends them.
type partitionQueue struct {
	tp    topicPartition
	open  *batch
	ready []*batch
	timer *time.Timer

	// running: a pump goroutine (Producer.pump) is sending this
	// partition's batches; wake tells it more are ready (buffered 1).
	running bool
	wake    chan struct{}

	// Idempotence, guarded by Producer.mu: the partition's producer id
	// (0: not yet asked), epoch, and the sequence of its next batch;
	// fresh asks for a new id (the partition's sequence broke).
	pid     int64
	epoch   int32
	nextSeq int64
	fresh   bool
}

type batch struct {
	tp      topicPartition
	recs    []*stratav1.Record
	results []*Result
	times   []time.Time
	bytes   int
	created time.Time

	// The batch's producer id, epoch and first sequence once sequenced
	// (seqSet); a retry resends exactly these.
	pid    int64
	epoch  int32
	seq    int64
	seqSet bool

	// Sending state, owned by the partition's pump.
	req           *stratav1.ProduceRequest
	state         batchState
	gen           uint64     // the current attempt's number, to match its answer
	last          callResult // the last attempt's answer
	lastErr       error      // the last failed attempt's error worth reporting
	attempts      int        // attempts that failed
	clipped       bool       // the current attempt's answer timeout is cut by the delivery timeout
	maybeAppended bool       // an attempt under the current sequence may be in the log
	unanswered    bool       // an attempt under the current sequence had no answer (a subset of maybeAppended)
}

// batchState is where a batch in a partition's window is.
type batchState uint8

const (
	batchUnsent batchState = iota // to be sent (first time or again)
	batchSent                     // an attempt is on a stream, unanswered
	batchOK                       // acknowledged
	batchFailed                   // its last attempt failed; settled once no attempt is out
)

// errDeadlinePassed is an attempt not made: its batch's delivery timeout
// passed.
var errDeadlinePassed = errors.New("client: delivery deadline passed")

// ErrPrecedingBatchFailed fails an idempotent batch sent while an earlier
// batch of its partition was in flight, when that one failed for good, and
// both may be in the log: the batch may have been appended behind the
// failed one, so it is not sent again under a new producer id (it could be
// appended twice). It wraps the earlier batch's error.
var ErrPrecedingBatchFailed = errors.New("client: an earlier batch of the partition failed and this one may be in the log behind it")

// NewProducer returns a producer sending through c.
func (c *Client) NewProducer(o ProducerOptions) (*Producer, error) {
	o.setDefaults()
	ctx, cancel := context.WithCancel(c.ctx)
	p := &Producer{
		c:       c,
		o:       o,
		lg:      c.lg,
		ctx:     ctx,
		cancel:  cancel,
		parts:   make(map[topicPartition]*partitionQueue),
		space:   make(chan struct{}),
		idle:    make(chan struct{}),
		brokers: make(map[string]*brokerStreams),

		idempotent: !o.DisableIdempotence && o.Acks != AcksNone,
	}
	if p.idempotent && o.MaxInFlight > maxInFlightIdempotent {
		cancel()
		return nil, &ConfigError{Field: "MaxInFlight", Msg: fmt.Sprintf("at most %d with idempotence (the partitions' dedupe window), got %d", maxInFlightIdempotent, o.MaxInFlight)}
	}
	if tp := c.cfg.TracerProvider; tp != nil {
		p.tracer, p.spanKind = tp.Tracer(tracerName), trace.WithSpanKind(trace.SpanKindProducer)
	}
	if err := c.register(p); err != nil {
		cancel()
		return nil, err
	}
	return p, nil
}

// Produce queues rec for sending and returns its future result. It blocks
// only while MaxBufferedBytes are waiting (until ctx ends). The result's
// error is ErrTopicNotFound, ErrPartitionNotFound, a broker error, or
// ErrDeliveryTimeout wrapping the last retriable error.
func (p *Producer) Produce(ctx context.Context, rec *Record) *Result {
	res := newResult(nil)
	p.produce(ctx, rec, res)
	return res
}

// ProduceCallback is Produce with a callback instead of a future. The
// callback runs on the producer's goroutine and must not block.
func (p *Producer) ProduceCallback(ctx context.Context, rec *Record, cb func(RecordMetadata, error)) {
	p.produce(ctx, rec, newResult(cb))
}

// ProduceSync produces rec and waits for its result.
func (p *Producer) ProduceSync(ctx context.Context, rec *Record) (RecordMetadata, error) {
	res := p.Produce(ctx, rec)
	// Send now, ignoring linger, and wait for this record only.
	p.mu.Lock()
	p.flushing++
	for _, q := range p.parts {
		p.dispatchLocked(q)
	}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	return res.Wait(ctx)
}

func (p *Producer) produce(ctx context.Context, rec *Record, res *Result) {
	now := time.Now()
	fail := func(err error) {
		res.complete(RecordMetadata{Topic: rec.Topic, Partition: -1, Offset: -1, Produced: now, Acked: time.Now()}, err)
	}
	n, err := p.c.Partitions(ctx, rec.Topic)
	if err != nil {
		fail(err)
		return
	}
	part := rec.Partition
	if !rec.ExplicitPartition {
		part = p.o.Partitioner.Partition(rec, n)
	}
	if part < 0 || part >= n {
		fail(fmt.Errorf("%w: %s/%d (topic has %d)", ErrPartitionNotFound, rec.Topic, part, n))
		return
	}
	if n := rec.dataSize(); n > stratav1.MaxRecordBytes {
		// It could not be sent (the gRPC limits hold one record of
		// this size), and no topic would take it.
		fail(&RecordTooLargeError{Size: n, Max: stratav1.MaxRecordBytes})
		return
	}
	size := rec.size()
	pr := rec.toProto()
	if res.span = p.startProduceSpan(ctx, rec.Topic, part, size, pr); res.span != nil {
		size += traceHeaderSize
	}

	p.mu.Lock()
	for p.buffered > 0 && p.buffered+size > p.o.MaxBufferedBytes && !p.closed {
		space := p.space
		p.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			fail(ctx.Err())
			return
		case <-p.ctx.Done():
			fail(ErrClosed)
			return
		}
		p.mu.Lock()
	}
	if p.closed {
		p.mu.Unlock()
		fail(ErrClosed)
		return
	}
	tp := topicPartition{rec.Topic, part}
	q := p.parts[tp]
	if q == nil {
		q = &partitionQueue{tp: tp}
		p.parts[tp] = q
	}
	if q.open != nil && len(q.open.recs) > 0 && q.open.bytes+size > p.o.MaxBatchBytes {
		// A record that would take the batch past MaxBatchBytes starts
		// the next one: a batch is at most MaxBatchBytes, or one record,
		// and so always fits a gRPC message.
		p.sealLocked(q)
	}
	if q.open == nil {
		q.open = &batch{tp: tp, created: now}
		if p.o.Linger > 0 {
			b := q.open
			q.timer = time.AfterFunc(p.o.Linger, func() { p.lingerExpired(q, b) })
		}
	}
	b := q.open
	b.recs = append(b.recs, pr)
	b.results = append(b.results, res)
	b.times = append(b.times, now)
	b.bytes += size
	p.buffered += size
	p.pending++
	if b.bytes >= p.o.MaxBatchBytes || len(b.recs) >= p.o.MaxBatchRecords {
		p.sealLocked(q)
	}
	p.dispatchLocked(q)
	p.mu.Unlock()
}

func (p *Producer) sealLocked(q *partitionQueue) {
	if q.open == nil {
		return
	}
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	q.ready = append(q.ready, q.open)
	q.open = nil
}

// lingerExpired sends b if its partition has room in flight. Otherwise b
// stays open and keeps taking records until an answer makes room: sealing
// it now would queue one small batch per linger behind the full window,
// each then waiting a round trip of its own.
func (p *Producer) lingerExpired(q *partitionQueue, b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q.open == b {
		q.timer = nil
	}
	p.dispatchLocked(q)
}

// maxInFlight is how many batches of a partition may be in flight.
func (p *Producer) maxInFlight() int {
	if !p.idempotent {
		return 1 // without sequences a retry could land behind a later batch
	}
	return p.o.MaxInFlight
}

// dispatchLocked starts q's pump if q has a batch to send, or wakes the
// running one.
func (p *Producer) dispatchLocked(q *partitionQueue) {
	if p.stopped {
		return
	}
	if q.running {
		select {
		case q.wake <- struct{}{}:
		default:
		}
		return
	}
	if !p.sendableLocked(q) {
		return
	}
	q.running = true
	if q.wake == nil {
		q.wake = make(chan struct{}, 1)
	}
	p.wg.Add(1)
	go p.pump(q)
}

// sendableLocked reports whether q has a batch to send now: a sealed one,
// or an open one whose linger is over (or ignored).
func (p *Producer) sendableLocked(q *partitionQueue) bool {
	if len(q.ready) > 0 {
		return true
	}
	return q.open != nil && (p.o.Linger <= 0 || p.flushing > 0 || time.Since(q.open.created) >= p.o.Linger)
}

// takeLocked moves q's next batch to send (sealing the open one when its
// time has come) out of its queue; nil when there is none.
func (p *Producer) takeLocked(q *partitionQueue) *batch {
	if !p.sendableLocked(q) {
		return nil
	}
	if len(q.ready) == 0 {
		p.sealLocked(q)
	}
	b := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	return b
}

// attemptResult is one attempt's answer, for the pump of its partition.
type attemptResult struct {
	b   *batch
	gen uint64
	r   callResult
}

// pipeline is one run of a partition's pump: the window of batches taken
// from the queue and not yet finished, in Produce order.
type pipeline struct {
	p       *Producer
	q       *partitionQueue
	limit   int
	win     []*batch
	sent    int                // batches of win with an attempt out
	failed  bool               // a batch of win is batchFailed
	results chan attemptResult // every attempt's answer; room for limit
	backoff *time.Timer        // set while resending waits
	expire  bool               // the front fails with ErrDeliveryTimeout when backoff fires
}

// pump sends q's batches, up to maxInFlight at a time, and finishes them
// in order. It returns when q has nothing to send and nothing in flight
// (dispatchLocked starts it again), or when the producer stops.
//
// Sending: batches go out in window order, each attempt on the stream of
// the partition's leader as the metadata cache has it then. A failed
// answer stops the sending; once every attempt out is answered, the first
// failed batch decides (settle): resend it and all after it not yet
// acknowledged, in order, after a backoff; or start over under a new
// producer id (an out of order answer no attempt of the batch can explain);
// or fail it for good.
func (p *Producer) pump(q *partitionQueue) {
	defer p.wg.Done()
	pl := &pipeline{p: p, q: q, limit: p.maxInFlight()}
	pl.results = make(chan attemptResult, pl.limit)
	defer func() {
		if pl.backoff != nil {
			pl.backoff.Stop()
		}
	}()
	for {
		if p.ctx.Err() != nil {
			pl.close()
			return
		}
		pl.finishFront()
		if pl.failed && pl.sent == 0 && pl.backoff == nil {
			pl.settle()
			continue
		}
		if !pl.failed && pl.backoff == nil {
			pl.sendMore()
		}
		if len(pl.win) == 0 {
			p.mu.Lock()
			if !p.sendableLocked(q) || p.stopped {
				q.running = false
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
			continue
		}
		if pl.win[0].state == batchOK || (pl.failed && pl.sent == 0 && pl.backoff == nil) {
			continue // sendMore took answers in: finish or settle first
		}
		var backoff <-chan time.Time
		if pl.backoff != nil {
			backoff = pl.backoff.C
		}
		var wake <-chan struct{}
		if !pl.failed && pl.backoff == nil && len(pl.win) < pl.limit {
			wake = q.wake // room for more: a new batch is worth waking for
		}
		select {
		case ar := <-pl.results:
			pl.answered(ar)
		case <-wake:
		case <-backoff:
			pl.backoff = nil
			if pl.expire {
				pl.expire = false
				pl.failFront(fmt.Errorf("%w: %w", ErrDeliveryTimeout, pl.win[0].lastErr))
			}
		case <-p.ctx.Done():
		}
	}
}

// answered records an attempt's answer.
func (pl *pipeline) answered(ar attemptResult) {
	b := ar.b
	if b.state != batchSent || ar.gen != b.gen {
		return // cannot happen: one attempt per batch is out
	}
	pl.sent--
	b.last = ar.r
	if ar.r.err == nil {
		b.state = batchOK
		return
	}
	b.state = batchFailed
	b.attempts++
	// The error a delivery timeout reports: not the batch's own deadline
	// cutting an attempt short, but what made it retry until then.
	if b.lastErr == nil || !(errors.Is(ar.r.err, errDeadlinePassed) || ((!ar.r.ambiguous || b.clipped) && errors.Is(ar.r.err, context.DeadlineExceeded))) {
		b.lastErr = ar.r.err
	}
	// The batch may be in the log when its outcome is unknown, and, with
	// acks=all, when the leader answered a retriable error: the wait for
	// the high watermark after the append ends with those too (not the
	// leader any more, not enough replicas after the append), so the
	// error does not say the batch was not appended.
	b.maybeAppended = b.maybeAppended || ar.r.ambiguous ||
		(!ar.r.local && pl.p.o.Acks == AcksAll && pl.p.retriable(ar.r))
	b.unanswered = b.unanswered || ar.r.ambiguous
	pl.failed = true
	pl.p.lg.Debug("produce attempt failed", zap.String("topic", b.tp.topic), zap.Int32("partition", b.tp.partition),
		zap.Int64("sequence", b.seq), zap.Int("attempt", b.attempts), zap.Bool("ambiguous", ar.r.ambiguous), zap.Error(ar.r.err))
}

// drain records the answers already in, without waiting.
func (pl *pipeline) drain() {
	for {
		select {
		case ar := <-pl.results:
			pl.answered(ar)
		default:
			return
		}
	}
}

// finishFront completes the acknowledged batches at the front of the
// window: a partition's results complete in Produce order.
func (pl *pipeline) finishFront() {
	for len(pl.win) > 0 && pl.win[0].state == batchOK {
		b := pl.win[0]
		pl.win[0] = nil
		pl.win = pl.win[1:]
		pl.p.finish(b, b.last.resp, nil)
	}
}

// sendMore sends the window's unsent batches, then takes new ones from
// the queue while there is room, stopping at the first failure.
func (pl *pipeline) sendMore() {
	p, q := pl.p, pl.q
	for i := 0; ; i++ {
		pl.drain()
		if pl.failed || p.ctx.Err() != nil {
			return
		}
		if i == len(pl.win) {
			if len(pl.win) >= pl.limit {
				return
			}
			p.mu.Lock()
			b := p.takeLocked(q)
			p.mu.Unlock()
			if b == nil {
				return
			}
			p.o.Metrics.batchSent()
			b.state = batchUnsent
			pl.win = append(pl.win, b)
		}
		if b := pl.win[i]; b.state == batchUnsent {
			pl.send(b)
		}
	}
}

// send makes one attempt of b: its sequence, its leader, onto the stream.
// The answer comes to pl.results; a failure before the batch is on a
// stream is recorded at once.
func (pl *pipeline) send(b *batch) {
	p := pl.p
	deadline := b.created.Add(p.o.DeliveryTimeout)
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	if b.req == nil {
		b.req = &stratav1.ProduceRequest{
			Topic:     b.tp.topic,
			Partition: b.tp.partition,
			Records:   b.recs,
			Acks:      p.o.Acks.proto(),
		}
	}
	b.gen++
	b.state = batchSent
	pl.sent++
	ar := attemptResult{b: b, gen: b.gen}
	fail := func(err error) { // the batch did not leave the client
		ar.r = callResult{err: err, local: true}
		pl.answered(ar)
	}
	if p.idempotent {
		if err := p.sequence(ctx, pl.q, b, b.req); err != nil {
			fail(err)
			return
		}
	}
	addr, err := p.c.leader(ctx, b.tp.topic, b.tp.partition)
	if err != nil {
		fail(err)
		return
	}
	timeout := p.o.RequestTimeout
	b.clipped = false
	if d := time.Until(deadline); d < timeout {
		timeout, b.clipped = d, true
	}
	if timeout <= 0 {
		fail(errDeadlinePassed)
		return
	}
	results := pl.results
	if err := p.broker(addr).send(ctx, b.req, timeout, func(r callResult) {
		ar.r = r
		results <- ar // never blocks: room for every batch of the window
	}); err != nil {
		fail(err)
	}
}

// settle decides what the window's first failed batch (its front: the
// acknowledged ones before it are finished) does once no attempt is out.
func (pl *pipeline) settle() {
	p, q := pl.p, pl.q
	pl.failed = false
	b := pl.win[0]
	if b.state != batchFailed {
		// Cannot happen (sending stops at the first failure, so the
		// window's first unacknowledged batch is the first failed one);
		// resend rather than stall.
		for _, w := range pl.win {
			if w.state == batchFailed {
				w.state = batchUnsent
			}
		}
		return
	}
	r := b.last
	deadline := b.created.Add(p.o.DeliveryTimeout)
	expired := !time.Now().Before(deadline)
	resend := false
	switch {
	case p.ctx.Err() != nil:
		return // the loop closes the window
	case errors.Is(r.err, errDeadlinePassed),
		expired && (p.retriable(r) || errors.Is(r.err, context.DeadlineExceeded) || errors.Is(r.err, ErrOutOfOrderSequence)):
		pl.failFront(fmt.Errorf("%w: %w", ErrDeliveryTimeout, b.lastErr))
		return
	case (errors.Is(r.err, ErrOutOfOrderSequence) || errors.Is(r.err, ErrUnknownProducerID)) && !b.unanswered && b.seqSet && !pl.laterAcked():
		// The partition does not know this producer's sequence (its
		// state expired, or an earlier batch failed for good), or the
		// cluster does not know its id (a single node whose data
		// directory was replaced: refused before the append, as KIP-360's
		// UNKNOWN_PRODUCER_ID), and its answer says the batch is not in
		// its log: no attempt of it is left unanswered, and none behind it
		// was acknowledged. Neither is then any batch after it under this
		// id (a producer's batches are appended in sequence order): start
		// over under a new producer id.
		p.resetSequence(q)
		for _, w := range pl.win {
			if w.state != batchOK {
				w.seqSet, w.maybeAppended, w.unanswered = false, false, false
			}
		}
		resend = true
	case !p.retriable(r):
		pl.failFront(r.err)
		return
	default:
		resend = true
	}
	if !resend {
		return
	}
	// Resend the front and every batch after it not yet acknowledged, in
	// order: their attempts failed (often out of order sequence, as the
	// front was not appended) or were never made.
	for _, w := range pl.win {
		if w.state == batchFailed {
			w.state = batchUnsent
			p.o.Metrics.retry()
		}
	}
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	// A leader hint is used at once; without one the cache is known to
	// be stale, so the refresh is forced.
	var nl *NotLeaderError
	force := false
	if errors.As(r.err, &nl) {
		force = !p.c.applyLeaderHint(nl)
	}
	p.lg.Debug("produce retry", zap.String("topic", b.tp.topic), zap.Int32("partition", b.tp.partition),
		zap.Int("attempt", b.attempts), zap.Int("window", len(pl.win)), zap.Error(r.err))
	if err := p.c.refresh(ctx, force); err != nil && ctx.Err() == nil {
		p.lg.Debug("metadata refresh failed", zap.Error(err))
	}
	// A backoff that would pass the deadline ends at it, and the batch
	// then fails with ErrDeliveryTimeout rather than make an attempt with
	// next to no time for its answer.
	d, left := retryDelay(b.attempts-1, p.o.RetryBackoff, p.o.RetryBackoffMax), time.Until(deadline)
	if d >= left {
		d, pl.expire = max(left, 0), true
	}
	pl.backoff = time.NewTimer(d)
}

// laterAcked reports whether a batch behind the front was acknowledged:
// the front, which it follows in sequence, was then in the log.
func (pl *pipeline) laterAcked() bool {
	for _, w := range pl.win[1:] {
		if w.state == batchOK {
			return true
		}
	}
	return false
}

// failFront fails the window's front batch for good, and settles the
// batches behind it (see Producer): the partition starts over under a new
// producer id; a later batch whose attempts may have appended it behind
// the front, which may be in the log too, fails with
// ErrPrecedingBatchFailed; the others are sent again under the new id.
func (pl *pipeline) failFront(err error) {
	p := pl.p
	b := pl.win[0]
	pl.win[0] = nil
	pl.win = pl.win[1:]
	if b.seqSet {
		// The batch may or may not be in the log: the partition's next
		// batch would be refused for the gap, or be taken after it.
		p.resetSequence(pl.q)
	}
	kept := pl.win[:0]
	var failed []*batch
	for _, w := range pl.win {
		switch {
		case w.state == batchOK:
			kept = append(kept, w)
		case b.seqSet && b.maybeAppended && w.maybeAppended && w.seqSet && w.pid == b.pid:
			failed = append(failed, w)
		default:
			w.seqSet, w.maybeAppended, w.unanswered, w.state = false, false, false, batchUnsent
			kept = append(kept, w)
		}
	}
	clear(pl.win[len(kept):])
	pl.win = kept
	p.finish(b, nil, err)
	for _, w := range failed {
		p.finish(w, nil, fmt.Errorf("%w (%s/%d sequence %d): %w", ErrPrecedingBatchFailed, w.tp.topic, w.tp.partition, w.seq, err))
	}
}

// close fails the window's batches: the producer stopped. Answers still
// out land in pl.results, which has room for them.
func (pl *pipeline) close() {
	for _, b := range pl.win {
		pl.p.finish(b, nil, ErrClosed)
	}
	pl.win = nil
}

// finish completes b's records with its answer or err, and frees its
// place in the buffer.
func (p *Producer) finish(b *batch, resp *stratav1.ProduceResponse, err error) {
	acked := time.Now()
	p.o.Metrics.batchDone(len(b.recs), b.created, err)
	for i, res := range b.results {
		meta := RecordMetadata{Topic: b.tp.topic, Partition: b.tp.partition, Offset: -1, Produced: b.times[i], Acked: acked}
		if err == nil && p.o.Acks != AcksNone && resp.GetBaseOffset() >= 0 {
			meta.Offset = resp.GetBaseOffset() + int64(i)
		}
		res.complete(meta, err)
	}
	p.mu.Lock()
	p.buffered -= b.bytes
	p.pending -= len(b.recs)
	close(p.space)
	p.space = make(chan struct{})
	if p.pending == 0 {
		close(p.idle)
		p.idle = make(chan struct{})
	}
	p.mu.Unlock()
}

func (p *Producer) retriable(r callResult) bool {
	if errors.Is(r.err, ErrClosed) {
		return false
	}
	if r.ambiguous && !p.idempotent && (p.o.NoAmbiguousRetry || p.o.Acks == AcksNone) {
		return false
	}
	if errors.Is(r.err, context.DeadlineExceeded) {
		return r.ambiguous // an answer deadline, not the delivery deadline
	}
	if errors.Is(r.err, context.Canceled) {
		return r.ambiguous && p.ctx.Err() == nil // the broker cancelled the stream
	}
	return IsRetriable(r.err) || errors.Is(r.err, errProtocol)
}

func (p *Producer) broker(addr string) *brokerStreams {
	p.brokersMu.Lock()
	defer p.brokersMu.Unlock()
	bs, ok := p.brokers[addr]
	if !ok {
		bs = &brokerStreams{p: p, addr: addr, sem: make(chan struct{}, p.o.MaxInFlightPerBroker)}
		p.brokers[addr] = bs
	}
	return bs
}

// Flush sends every queued record now (ignoring linger) and waits until all
// records accepted before the call are answered, or ctx ends.
func (p *Producer) Flush(ctx context.Context) error {
	p.mu.Lock()
	p.flushing++
	for _, q := range p.parts {
		p.dispatchLocked(q)
	}
	defer func() {
		p.mu.Lock()
		p.flushing--
		p.mu.Unlock()
	}()
	for p.pending > 0 {
		idle := p.idle
		p.mu.Unlock()
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		case <-p.ctx.Done():
			return ErrClosed
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return nil
}

// Close stops accepting records, waits (until ctx ends) for the queued ones
// to be answered, then stops every goroutine. Records still unanswered fail
// with ErrClosed.
func (p *Producer) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.Flush(ctx)
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	if err == nil {
		p.closeStreams(ctx)
	}
	p.stop()
	p.c.unregister(p)
	return err
}

// closeStreams ends every produce stream from the client's side and waits
// (until ctx ends) for the brokers to end them: a stream cut by stop's
// cancel ends Canceled on the broker, and a normal close should not look
// like an aborted one there.
func (p *Producer) closeStreams(ctx context.Context) {
	p.brokersMu.Lock()
	var closing []*produceStream
	for _, bs := range p.brokers {
		if s := bs.closeSend(); s != nil {
			closing = append(closing, s)
		}
	}
	p.brokersMu.Unlock()
	for _, s := range closing {
		select {
		case <-s.done:
		case <-ctx.Done():
			return
		}
	}
}

func (p *Producer) closeFromClient() { p.stop() }

// stop cancels everything in flight, waits for the goroutines and fails
// what is left.
func (p *Producer) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.stopped = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	var left []*batch
	for _, q := range p.parts {
		if q.timer != nil {
			q.timer.Stop()
		}
		left = append(left, q.ready...)
		if q.open != nil {
			left = append(left, q.open)
		}
		q.ready, q.open = nil, nil
	}
	p.mu.Unlock()
	now := time.Now()
	for _, b := range left {
		for i, res := range b.results {
			res.complete(RecordMetadata{Topic: b.tp.topic, Partition: b.tp.partition, Offset: -1, Produced: b.times[i], Acked: now}, ErrClosed)
		}
	}
	p.mu.Lock()
	p.pending = 0
	p.buffered = 0
	close(p.idle)
	p.idle = make(chan struct{})
	p.mu.Unlock()
}

// sequence gives b its partition's producer id, epoch and sequences the
// first time it is sent (asking the cluster for an id when the partition
// has none) and puts them on req.
func (p *Producer) sequence(ctx context.Context, q *partitionQueue, b *batch, req *stratav1.ProduceRequest) error {
	p.mu.Lock()
	if !b.seqSet && q.pid == 0 {
		fresh := q.fresh
		p.mu.Unlock()
		id, epoch, err := p.producerID(ctx, b.tp.topic, fresh)
		if err != nil {
			return err
		}
		p.mu.Lock()
		if q.pid == 0 {
			q.pid, q.epoch, q.nextSeq, q.fresh = id, epoch, 0, false
		}
	}
	if !b.seqSet {
		b.pid, b.epoch, b.seq, b.seqSet = q.pid, q.epoch, q.nextSeq, true
		q.nextSeq += int64(len(b.recs))
	}
	p.mu.Unlock()
	req.ProducerId, req.ProducerEpoch, req.BaseSequence = b.pid, b.epoch, b.seq
	return nil
}

// resetSequence makes q's next batch start over at sequence 0 under a new
// producer id.
func (p *Producer) resetSequence(q *partitionQueue) {
	p.mu.Lock()
	q.pid, q.nextSeq, q.fresh = 0, 0, true
	p.mu.Unlock()
}

// producerID is the producer's id and epoch (asked of the cluster once),
// or with fresh a new id of its own.
func (p *Producer) producerID(ctx context.Context, topic string, fresh bool) (int64, int32, error) {
	p.pidMu.Lock()
	defer p.pidMu.Unlock()
	if !fresh && p.pid != 0 {
		return p.pid, p.pidEpoch, nil
	}
	var resp *stratav1.InitProducerResponse
	err := p.c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewLogClient(cc).InitProducer(ctx, &stratav1.InitProducerRequest{Topic: topic})
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("client: init producer: %w", err)
	}
	if !fresh {
		p.pid, p.pidEpoch = resp.GetProducerId(), resp.GetProducerEpoch()
	}
	p.lg.Debug("producer id", zap.Int64("producer_id", resp.GetProducerId()), zap.Int32("epoch", resp.GetProducerEpoch()), zap.Bool("fresh", fresh))
	return resp.GetProducerId(), resp.GetProducerEpoch(), nil
}
