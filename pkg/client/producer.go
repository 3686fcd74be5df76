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
// Produce accepted them: at most one batch per partition is in flight, and a
// failed batch is retried before the next one is sent.
//
// By default it is idempotent: each partition's batches carry the
// producer id and epoch it got from the cluster (InitProducer) and the
// sequence of their first record, so a retry of a batch the leader already
// appended (its answer lost, a timeout, a leader change) is answered with
// the original offsets instead of being appended again. A batch that fails
// for good starts its partition over under a new producer id, so that the
// next batches are not refused for the gap it leaves.
type Producer struct {
	c  *Client
	o  ProducerOptions
	lg *zap.Logger

	ctx    context.Context // cancelled when the producer stops
	cancel context.CancelFunc
	wg     sync.WaitGroup // send and stream-receive goroutines

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
// waiting, and whether one is in flight.
type partitionQueue struct {
	tp       topicPartition
	open     *batch
	ready    []*batch
	inFlight bool
	timer    *time.Timer

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
}

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

// lingerExpired sends b if its partition has nothing in flight. Otherwise
// b stays open and keeps taking records until the batch in flight is
// answered: sealing it now would queue one small batch per linger behind
// the one in flight, each then waiting a round trip of its own.
func (p *Producer) lingerExpired(q *partitionQueue, b *batch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if q.open == b {
		q.timer = nil
	}
	p.dispatchLocked(q)
}

// dispatchLocked starts sending q's next batch if none is in flight.
func (p *Producer) dispatchLocked(q *partitionQueue) {
	if q.inFlight || p.stopped {
		return
	}
	if len(q.ready) == 0 {
		if q.open == nil {
			return
		}
		if p.o.Linger > 0 && p.flushing == 0 && time.Since(q.open.created) < p.o.Linger {
			return // the linger timer will seal it
		}
		p.sealLocked(q)
	}
	b := q.ready[0]
	q.ready[0] = nil
	q.ready = q.ready[1:]
	q.inFlight = true
	p.o.Metrics.batchSent()
	p.wg.Add(1)
	go p.send(q, b)
}

// send delivers one batch (with retries), completes its records and starts
// the partition's next batch.
func (p *Producer) send(q *partitionQueue, b *batch) {
	defer p.wg.Done()
	resp, err := p.deliver(q, b)
	if err != nil && b.seqSet {
		// The batch may or may not be in the log: the partition's next
		// batch would be refused for the gap, or be taken after it.
		// Start the partition over under a new producer id.
		p.resetSequence(q)
	}
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
	q.inFlight = false
	p.buffered -= b.bytes
	p.pending -= len(b.recs)
	close(p.space)
	p.space = make(chan struct{})
	if p.pending == 0 {
		close(p.idle)
		p.idle = make(chan struct{})
	}
	p.dispatchLocked(q)
	p.mu.Unlock()
}

// deliver sends b to its partition's leader until it is answered, a
// non-retriable error occurs, or the delivery timeout passes.
func (p *Producer) deliver(q *partitionQueue, b *batch) (*stratav1.ProduceResponse, error) {
	deadline := b.created.Add(p.o.DeliveryTimeout)
	ctx, cancel := context.WithDeadline(p.ctx, deadline)
	defer cancel()
	req := &stratav1.ProduceRequest{
		Topic:     b.tp.topic,
		Partition: b.tp.partition,
		Records:   b.recs,
		Acks:      p.o.Acks.proto(),
	}
	var lastErr error
	maybeAppended := false // an earlier attempt's outcome is unknown
	for attempt := 0; ; attempt++ {
		var r callResult
		if p.idempotent {
			r.err = p.sequence(ctx, q, b, req)
		}
		if r.err == nil {
			r = p.attempt(ctx, req)
		}
		if r.err == nil {
			return r.resp, nil
		}
		if p.ctx.Err() != nil {
			return nil, ErrClosed
		}
		lastErr = r.err
		maybeAppended = maybeAppended || r.ambiguous
		switch {
		case errors.Is(r.err, ErrOutOfOrderSequence) && !maybeAppended && b.seqSet:
			// The partition does not know this producer's sequence (its
			// state expired, or an earlier batch failed for good) and no
			// attempt of this batch can be in the log: start over under a
			// new producer id and send it again.
			p.resetSequence(q)
			b.seqSet = false
		case !p.retriable(r):
			return nil, r.err
		}
		// A leader hint is used at once; without one the cache is known to
		// be stale, so the refresh is forced.
		var nl *NotLeaderError
		force := false
		if errors.As(r.err, &nl) {
			force = !p.c.applyLeaderHint(nl)
		}
		p.o.Metrics.retry()
		p.lg.Debug("produce retry", zap.String("topic", b.tp.topic), zap.Int32("partition", b.tp.partition),
			zap.Int("attempt", attempt), zap.Error(r.err))
		if err := p.c.refresh(ctx, force); err != nil && ctx.Err() == nil {
			p.lg.Debug("metadata refresh failed", zap.Error(err))
		}
		t := time.NewTimer(retryDelay(attempt, p.o.RetryBackoff, p.o.RetryBackoffMax))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if p.ctx.Err() != nil {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("%w: %w", ErrDeliveryTimeout, lastErr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w: %w", ErrDeliveryTimeout, lastErr)
		}
	}
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

// attempt sends req once to the partition's current leader.
func (p *Producer) attempt(ctx context.Context, req *stratav1.ProduceRequest) callResult {
	addr, err := p.c.leader(ctx, req.Topic, req.Partition)
	if err != nil {
		return callResult{err: err}
	}
	bs := p.broker(addr)
	select {
	case bs.sem <- struct{}{}:
	case <-ctx.Done():
		return callResult{err: ctx.Err()}
	}
	defer func() { <-bs.sem }()
	timeout := p.o.RequestTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	return bs.produce(req, timeout)
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
