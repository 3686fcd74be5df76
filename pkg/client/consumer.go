package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.uber.org/zap"
)

// Position is where a consumer starts reading.
type Position struct {
	kind   positionKind
	offset int64
	time   time.Time
}

type positionKind int

const (
	posEarliest positionKind = iota
	posLatest
	posOffset
	posTime
)

// Earliest is the first offset still in the log.
func Earliest() Position { return Position{kind: posEarliest} }

// Latest is the end of the log: only records produced from now on.
func Latest() Position { return Position{kind: posLatest} }

// AtOffset is an explicit offset.
func AtOffset(off int64) Position { return Position{kind: posOffset, offset: off} }

// AtTime is the first record with a timestamp at or after t.
func AtTime(t time.Time) Position { return Position{kind: posTime, time: t} }

// String describes the position.
func (p Position) String() string {
	switch p.kind {
	case posLatest:
		return "latest"
	case posOffset:
		return fmt.Sprintf("offset %d", p.offset)
	case posTime:
		return "time " + p.time.Format(time.RFC3339Nano)
	}
	return "earliest"
}

// ConsumerOptions configures a Consumer.
type ConsumerOptions struct {
	Topic     string
	Partition int32
	// Start is where to begin; the zero value is Earliest.
	Start Position
	// MaxBatchRecords and MaxBatchBytes size the broker's stream messages;
	// zero means the broker defaults (500 records, 1 MiB).
	MaxBatchRecords int32
	MaxBatchBytes   int32
	// Buffer is how many received messages may wait for Next; default 8.
	Buffer int
	// RetryBackoff and RetryBackoffMax pace reconnects; defaults 50ms, 2s.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
}

// Consumer reads one partition in offset order. After a stream break (a
// broker restart, a leader change) it reconnects and resumes at the offset
// after the last record it received, so records are neither skipped nor
// repeated. Next and Poll must not be called concurrently.
type Consumer struct {
	c   *Client
	o   ConsumerOptions
	lg  *zap.Logger
	msg chan consumerMsg

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	buf  []Record
	err  error // sticky terminal error
	once sync.Once
}

type consumerMsg struct {
	recs []Record
	err  error
}

// NewConsumer starts a consumer of one partition.
func (c *Client) NewConsumer(ctx context.Context, o ConsumerOptions) (*Consumer, error) {
	if o.Buffer <= 0 {
		o.Buffer = 8
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 50 * time.Millisecond
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = 2 * time.Second
	}
	n, err := c.Partitions(ctx, o.Topic)
	if err != nil {
		return nil, err
	}
	if o.Partition < 0 || o.Partition >= n {
		return nil, fmt.Errorf("%w: %s/%d (topic has %d)", ErrPartitionNotFound, o.Topic, o.Partition, n)
	}
	cctx, cancel := context.WithCancel(c.ctx)
	cs := &Consumer{c: c, o: o, lg: c.lg, msg: make(chan consumerMsg, o.Buffer), ctx: cctx, cancel: cancel}
	if err := c.register(cs); err != nil {
		cancel()
		return nil, err
	}
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		cs.run()
	}()
	return cs, nil
}

// Next returns the next record, waiting for one until ctx ends.
func (cs *Consumer) Next(ctx context.Context) (Record, error) {
	for len(cs.buf) == 0 {
		if err := cs.fill(ctx); err != nil {
			return Record{}, err
		}
	}
	r := cs.buf[0]
	cs.buf = cs.buf[1:]
	return r, nil
}

// Poll returns the records available now, waiting for at least one until
// ctx ends.
func (cs *Consumer) Poll(ctx context.Context) ([]Record, error) {
	for len(cs.buf) == 0 {
		if err := cs.fill(ctx); err != nil {
			return nil, err
		}
	}
	out := cs.buf
	cs.buf = nil
	return out, nil
}

func (cs *Consumer) fill(ctx context.Context) error {
	if cs.err != nil {
		return cs.err
	}
	select {
	case m, ok := <-cs.msg:
		if !ok {
			cs.err = ErrClosed
			return cs.err
		}
		if m.err != nil {
			cs.err = m.err
			return m.err
		}
		cs.buf = m.recs
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the consumer.
func (cs *Consumer) Close() error {
	cs.closeFromClient()
	cs.c.unregister(cs)
	return nil
}

func (cs *Consumer) closeFromClient() {
	cs.once.Do(func() {
		cs.cancel()
		cs.wg.Wait()
	})
}

// run owns the stream: it reads, hands records to Next, and reconnects.
func (cs *Consumer) run() {
	defer close(cs.msg)
	next := int64(-1) // the next offset to deliver, once known
	attempt := 0
	for {
		err := cs.stream(&next, &attempt)
		if cs.ctx.Err() != nil {
			return
		}
		if !cs.retriable(err) {
			select {
			case cs.msg <- consumerMsg{err: err}:
			case <-cs.ctx.Done():
			}
			return
		}
		var nl *NotLeaderError
		force := false
		if errors.As(err, &nl) {
			force = !cs.c.applyLeaderHint(nl)
		}
		cs.lg.Debug("consume stream broken; resuming", zap.String("topic", cs.o.Topic),
			zap.Int32("partition", cs.o.Partition), zap.Int64("next", next), zap.Error(err))
		if rerr := cs.c.refresh(cs.ctx, force); rerr != nil && cs.ctx.Err() == nil {
			cs.lg.Debug("metadata refresh failed", zap.Error(rerr))
		}
		t := time.NewTimer(retryDelay(attempt, cs.o.RetryBackoff, cs.o.RetryBackoffMax))
		select {
		case <-t.C:
		case <-cs.ctx.Done():
			t.Stop()
			return
		}
		attempt++
	}
}

func (cs *Consumer) retriable(err error) bool {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) {
		return true // the broker ended the stream: reconnect
	}
	// Our own cancellation was checked by the caller; a broker that
	// cancelled the stream (shutting down) is retried.
	return IsRetriable(err) || errors.Is(err, context.Canceled)
}

// stream reads one ConsumeStream until it breaks. next is the offset after
// the last record handed to Next (-1 until the first answer).
func (cs *Consumer) stream(next *int64, attempt *int) error {
	addr, err := cs.c.leader(cs.ctx, cs.o.Topic, cs.o.Partition)
	if err != nil {
		return err
	}
	cc, err := cs.c.conn(addr)
	if err != nil {
		return err
	}
	req := &stratav1.ConsumeStreamRequest{
		Topic:           cs.o.Topic,
		Partition:       cs.o.Partition,
		MaxBatchRecords: cs.o.MaxBatchRecords,
		MaxBatchBytes:   cs.o.MaxBatchBytes,
	}
	switch {
	case *next >= 0:
		req.Start = &stratav1.ConsumeStreamRequest_Offset{Offset: *next}
	case cs.o.Start.kind == posOffset:
		req.Start = &stratav1.ConsumeStreamRequest_Offset{Offset: cs.o.Start.offset}
	case cs.o.Start.kind == posLatest:
		req.Start = &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_LATEST}
	case cs.o.Start.kind == posTime:
		req.Start = &stratav1.ConsumeStreamRequest_TimestampMs{TimestampMs: cs.o.Start.time.UnixMilli()}
	default:
		req.Start = &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_EARLIEST}
	}
	ctx, cancel := context.WithCancel(cs.ctx)
	defer cancel()
	st, err := stratav1.NewLogClient(cc).ConsumeStream(ctx, req)
	if err != nil {
		return fromStatus(err)
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return fromStatus(err)
		}
		*attempt = 0
		recs := make([]Record, 0, len(resp.GetRecords()))
		for _, pr := range resp.GetRecords() {
			// Never repeat: skip anything before the next undelivered offset.
			if *next >= 0 && pr.GetOffset() < *next {
				continue
			}
			recs = append(recs, recordFromProto(cs.o.Topic, cs.o.Partition, pr))
			*next = pr.GetOffset() + 1
		}
		if *next < 0 && len(resp.GetRecords()) == 0 && resp.GetNextOffset() > 0 {
			// An empty first answer still pins a Latest or time position.
			*next = resp.GetNextOffset()
		}
		if len(recs) == 0 {
			continue
		}
		select {
		case cs.msg <- consumerMsg{recs: recs}:
		case <-cs.ctx.Done():
			return cs.ctx.Err()
		}
	}
}
