package client

import (
	"context"
	"fmt"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The fake cluster's idempotent producers and pipelined produce streams.
//
// Dedupe: a partition keeps, per producer id, the sequence ranges of its
// last five batches with their offsets, as the broker's partition does
// (services/broker/internal/partition/producers.go): a batch a range covers
// is a duplicate, answered with its original offsets; a batch that does not
// continue the newest range is refused (out of order sequence); a new id
// (or epoch) starts at sequence 0; an older epoch is fenced. The state is
// the partition's, shared by every broker, as a replicated log's is.
//
// Pipelining: with fakeCluster.streamFault or holdFirst set, ProduceStream
// works as the broker's: one goroutine receives, the handler appends in
// order, another sends the answers in order, so a client may have many
// batches in flight on it. holdFirst holds every append until that many
// requests were received (so that a client's whole window is in flight),
// and streamFault injects a fault at any request.

// fakeWindow is how many batches per producer a partition remembers.
const fakeWindow = 5

type fakeProducer struct {
	epoch  int32
	ranges []fakeSeqRange // oldest first, at most fakeWindow
}

// fakeSeqRange is sequences [first, last] at offsets [offset, ...].
type fakeSeqRange struct{ first, last, offset int64 }

// dedupeLocked decides an idempotent batch: it reports true when resp is
// its final answer (a duplicate's offsets, or a refusal) and nothing is to
// be appended.
func (c *fakeCluster) dedupeLocked(p *fakePartition, req *stratav1.ProduceRequest, resp *stratav1.ProduceResponse) bool {
	id := req.GetProducerId()
	if id == 0 {
		return false
	}
	n := int64(len(req.GetRecords()))
	first, last := req.GetBaseSequence(), req.GetBaseSequence()+n-1
	e := p.producers[id]
	refuse := func(reason stratav1.ProducerFault_Reason, expected int64) bool {
		resp.Error = &stratav1.Error{Code: int32(codes.FailedPrecondition),
			Message: fmt.Sprintf("producer %d: %v: expected sequence %d, got %d", id, reason, expected, first),
			ProducerFault: &stratav1.ProducerFault{Reason: reason, ProducerId: id, ProducerEpoch: req.GetProducerEpoch(),
				ExpectedSequence: expected, BaseSequence: first}}
		return true
	}
	if e != nil && req.GetProducerEpoch() < e.epoch {
		return refuse(stratav1.ProducerFault_REASON_PRODUCER_FENCED, -1)
	}
	if e == nil || len(e.ranges) == 0 || req.GetProducerEpoch() > e.epoch {
		if first != 0 {
			return refuse(stratav1.ProducerFault_REASON_OUT_OF_ORDER_SEQUENCE, 0)
		}
		return false
	}
	for _, r := range e.ranges {
		if r.first <= first && last <= r.last {
			resp.BaseOffset = r.offset + first - r.first
			resp.LastOffset = resp.BaseOffset + n - 1
			resp.Duplicate = true
			return true
		}
	}
	tail := e.ranges[len(e.ranges)-1]
	if first == tail.last+1 {
		return false
	}
	return refuse(stratav1.ProducerFault_REASON_OUT_OF_ORDER_SEQUENCE, tail.last+1)
}

// applySequenceLocked records an appended idempotent batch at base.
func (c *fakeCluster) applySequenceLocked(p *fakePartition, req *stratav1.ProduceRequest, base int64) {
	id := req.GetProducerId()
	if id == 0 {
		return
	}
	if p.producers == nil {
		p.producers = make(map[int64]*fakeProducer)
	}
	e := p.producers[id]
	if e == nil || req.GetProducerEpoch() > e.epoch {
		e = &fakeProducer{epoch: req.GetProducerEpoch()}
		p.producers[id] = e
	}
	seq, last := req.GetBaseSequence(), req.GetBaseSequence()+int64(len(req.GetRecords()))-1
	if k := len(e.ranges); k > 0 {
		t := &e.ranges[k-1]
		if seq == t.last+1 && base == t.offset+t.last-t.first+1 {
			t.last = last
			return
		}
	}
	if len(e.ranges) == fakeWindow {
		e.ranges = append(e.ranges[:0], e.ranges[1:]...)
	}
	e.ranges = append(e.ranges, fakeSeqRange{first: seq, last: last, offset: base})
}

// fakeFault is what a pipelined stream does with one request.
type fakeFault int

const (
	faultNone           fakeFault = iota
	faultUnavailable              // refused Unavailable (the batches behind it: out of order sequence)
	faultFatal                    // refused InvalidArgument, which is not retried
	faultLeaderMove               // leadership moves to the next broker first: refused "not the leader", as is every later one here
	faultBreakBefore              // the stream breaks before the batch is appended
	faultBreakAfter               // the batch is appended, then the stream breaks: its answer is lost
	faultStall                    // the batch is appended, and no answer goes out any more: the client times out
	faultAppendThenMove           // the batch is appended, leadership moves, the stream breaks
	faultForget                   // the partition forgets the batch's producer id first (as when its state expired)
	faultUnknownID                // the cluster no longer knows the batch's producer id (a single node's data directory replaced): refused UNKNOWN_PRODUCER_ID from here on
)

func (f fakeFault) String() string {
	return [...]string{"none", "unavailable", "fatal", "leader-move", "break-before", "break-after", "stall", "append-then-move", "forget", "unknown-id"}[f]
}

// fakePipeState counts the pipelined streams' requests.
type fakePipeState struct {
	received  int            // requests received
	processed int            // requests handled (the n streamFault gets)
	gate      chan struct{}  // closed once holdFirst requests are received
	held      []int64        // the base sequences of those requests
	unknown   map[int64]bool // producer ids refused UNKNOWN_PRODUCER_ID (faultUnknownID)
}

func (c *fakeCluster) gateLocked() chan struct{} {
	if c.pipe.gate == nil {
		c.pipe.gate = make(chan struct{})
		if c.pipe.received >= c.holdFirst {
			close(c.pipe.gate)
		}
	}
	return c.pipe.gate
}

func (c *fakeCluster) moveLeaderLocked(req *stratav1.ProduceRequest) {
	p := c.topics[req.GetTopic()][req.GetPartition()]
	p.leader = (p.leader + 1) % len(c.brokers)
}

func (b *fakeBroker) pipelinedStream(st grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse]) error {
	c := b.c
	ctx, cancel := context.WithCancel(st.Context())
	defer cancel()
	type received struct {
		req *stratav1.ProduceRequest
		err error
	}
	reqs := make(chan received, 256)
	go func() {
		for {
			req, err := st.Recv()
			if err == nil {
				c.mu.Lock()
				c.pipe.received++
				if c.pipe.received <= c.holdFirst {
					c.pipe.held = append(c.pipe.held, req.GetBaseSequence())
				}
				if gate := c.gateLocked(); c.pipe.received == c.holdFirst {
					close(gate)
				}
				c.mu.Unlock()
			}
			select {
			case reqs <- received{req, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	type answer struct {
		resp  *stratav1.ProduceResponse
		stall bool
	}
	answers := make(chan answer, 256)
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for a := range answers {
			if a.stall {
				<-ctx.Done()
				return
			}
			if ctx.Err() != nil {
				return
			}
			if err := st.Send(a.resp); err != nil {
				cancel()
				return
			}
		}
	}()
	// broken ends the stream at once: answers not yet sent are lost.
	broken := func() error {
		cancel()
		close(answers)
		<-sent
		return status.Error(codes.Unavailable, "injected stream break")
	}
	c.mu.Lock()
	gate := c.gateLocked()
	c.mu.Unlock()
	for {
		var r received
		select {
		case r = <-reqs:
		case <-ctx.Done():
			return broken()
		}
		if r.err != nil {
			c.mu.Lock()
			c.streamEnds = append(c.streamEnds, r.err)
			c.mu.Unlock()
			close(answers) // the answers queued still go out
			<-sent
			return nil
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return broken()
		}
		c.mu.Lock()
		n := c.pipe.processed
		c.pipe.processed++
		fault := faultNone
		if c.streamFault != nil {
			fault = c.streamFault(b, r.req, n)
		}
		switch fault {
		case faultLeaderMove:
			c.moveLeaderLocked(r.req)
		case faultForget:
			delete(c.topics[r.req.GetTopic()][r.req.GetPartition()].producers, r.req.GetProducerId())
		case faultUnknownID:
			delete(c.topics[r.req.GetTopic()][r.req.GetPartition()].producers, r.req.GetProducerId())
			if c.pipe.unknown == nil {
				c.pipe.unknown = map[int64]bool{}
			}
			c.pipe.unknown[r.req.GetProducerId()] = true
		}
		unknownID := c.pipe.unknown[r.req.GetProducerId()]
		c.mu.Unlock()
		var resp *stratav1.ProduceResponse
		refused := func(code codes.Code) *stratav1.ProduceResponse {
			return &stratav1.ProduceResponse{Topic: r.req.GetTopic(), Partition: r.req.GetPartition(), CorrelationId: r.req.GetCorrelationId(),
				BaseOffset: -1, LastOffset: -1, Error: &stratav1.Error{Code: int32(code), Message: "injected " + fault.String()}}
		}
		switch {
		case fault == faultBreakBefore:
			return broken()
		case fault == faultUnavailable:
			resp = refused(codes.Unavailable)
		case fault == faultFatal:
			resp = refused(codes.InvalidArgument)
		case unknownID:
			// The broker refuses an id it never issued before the append.
			resp = refused(codes.FailedPrecondition)
			resp.Error.ProducerFault = &stratav1.ProducerFault{Reason: stratav1.ProducerFault_REASON_UNKNOWN_PRODUCER_ID,
				ProducerId: r.req.GetProducerId(), ProducerEpoch: r.req.GetProducerEpoch(), ExpectedSequence: -1, BaseSequence: r.req.GetBaseSequence()}
		default:
			resp = b.produce(r.req)
		}
		switch fault {
		case faultBreakAfter:
			return broken()
		case faultAppendThenMove:
			c.mu.Lock()
			c.moveLeaderLocked(r.req)
			c.mu.Unlock()
			return broken()
		case faultStall:
			resp = nil
		}
		select {
		case answers <- answer{resp: resp, stall: resp == nil}:
		case <-ctx.Done():
			return broken()
		}
	}
}
