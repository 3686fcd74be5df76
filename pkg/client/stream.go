package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// errProtocol is a broker answer that does not match the request stream.
var errProtocol = errors.New("client: produce stream out of sync")

// brokerStreams carries one Producer's batches to one broker on a
// ProduceStream: every partition's pump puts its batches on the one stream
// and gets each answer back through a callback. Requests are answered in
// order, so pending calls are a FIFO. A broken stream fails every pending
// call; the next call opens a new one.
type brokerStreams struct {
	p    *Producer
	addr string
	// sem bounds the batches in flight to this broker.
	sem    chan struct{}
	sendMu sync.Mutex // orders Send with the FIFO; guards cur
	cur    *produceStream
	corr   atomic.Uint64
}

type produceStream struct {
	stream grpc.BidiStreamingClient[stratav1.ProduceRequest, stratav1.ProduceResponse]
	cancel context.CancelFunc
	done   chan struct{} // closed when recvLoop returns

	mu      sync.Mutex
	pending []*call
	dead    bool
}

type call struct {
	corr uint64
	// done receives the call's one result: from recvLoop with its answer,
	// or from fail when the stream ends first.
	done  func(callResult)
	timer *time.Timer // fails the stream when the answer is late
}

type callResult struct {
	resp *stratav1.ProduceResponse
	err  error
	// ambiguous is set when the batch may or may not have been appended.
	ambiguous bool
	// local is set when the request never left the client.
	local bool
}

// open starts a stream and its receiving goroutine. Caller holds sendMu.
func (b *brokerStreams) openLocked() (*produceStream, error) {
	cc, err := b.p.c.conn(b.addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(b.p.ctx)
	st, err := stratav1.NewLogClient(cc).ProduceStream(ctx)
	if err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	s := &produceStream{stream: st, cancel: cancel, done: make(chan struct{})}
	b.p.wg.Add(1)
	go func() {
		defer b.p.wg.Done()
		defer close(s.done)
		s.recvLoop()
	}()
	return s, nil
}

func (s *produceStream) recvLoop() {
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.fail(fromStatus(err))
			return
		}
		s.mu.Lock()
		if len(s.pending) == 0 {
			s.mu.Unlock()
			s.fail(fmt.Errorf("%w: answer without a request", errProtocol))
			return
		}
		cl := s.pending[0]
		if resp.GetCorrelationId() != 0 && resp.GetCorrelationId() != cl.corr {
			s.mu.Unlock()
			s.fail(fmt.Errorf("%w: answer for %d, expected %d", errProtocol, resp.GetCorrelationId(), cl.corr))
			return
		}
		s.pending[0] = nil
		s.pending = s.pending[1:]
		s.mu.Unlock()
		cl.done(callResult{resp: resp, err: fromWireError(resp.GetError())})
	}
}

// fail ends the stream: every pending call gets err, marked ambiguous.
func (s *produceStream) fail(err error) {
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		return
	}
	s.dead = true
	pend := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.cancel()
	for _, cl := range pend {
		cl.done(callResult{err: err, ambiguous: true})
	}
}

func (s *produceStream) isPending(cl *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		if p == cl {
			return true
		}
	}
	return false
}

func (s *produceStream) isDead() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// send puts req on the broker's stream and returns without waiting for
// the answer: done gets it (exactly once, from another goroutine), or the
// stream's failure if no answer comes within timeout. An error means req
// was not sent, and done is not called. A slot of sem is held from the
// send to the answer; waiting for one ends with ctx.
func (b *brokerStreams) send(ctx context.Context, req *stratav1.ProduceRequest, timeout time.Duration, done func(callResult)) error {
	select {
	case b.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	release := func() { <-b.sem }
	b.sendMu.Lock()
	s := b.cur
	if s == nil || s.isDead() {
		var err error
		s, err = b.openLocked()
		if err != nil {
			b.sendMu.Unlock()
			release()
			return err
		}
		b.cur = s
	}
	cl := &call{corr: b.corr.Add(1)}
	cl.done = func(r callResult) {
		cl.timer.Stop()
		release()
		done(r)
	}
	req.CorrelationId = cl.corr
	s.mu.Lock()
	if s.dead {
		s.mu.Unlock()
		b.sendMu.Unlock()
		release()
		return &BrokerError{Code: codes.Unavailable, Message: "produce stream closed"}
	}
	// Set before the call is pending, so that done always finds it.
	cl.timer = time.AfterFunc(timeout, func() {
		if s.isPending(cl) { // not answered just as the timer fired
			s.fail(fmt.Errorf("%w: no answer within %v", context.DeadlineExceeded, timeout))
		}
	})
	s.pending = append(s.pending, cl)
	s.mu.Unlock()
	err := s.stream.Send(req)
	b.sendMu.Unlock()
	if err != nil {
		// The real error, if any, comes from Recv; Send only says "broken".
		s.fail(&BrokerError{Code: codes.Unavailable, Message: "produce stream broken: " + err.Error()})
	}
	return nil
}

// closeSend ends the sending side of the broker's current stream, if it
// has one alive, and returns it; nil otherwise. The broker then ends the
// stream OK once it has answered everything, and recvLoop sees io.EOF.
func (b *brokerStreams) closeSend() *produceStream {
	b.sendMu.Lock()
	defer b.sendMu.Unlock()
	s := b.cur
	if s == nil || s.isDead() {
		return nil
	}
	if err := s.stream.CloseSend(); err != nil {
		return nil
	}
	b.cur = nil
	return s
}
