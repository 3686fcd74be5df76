package fetcher

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// appender writes fetched frames into the local broker over one
// LocalReplica.AppendStream that every fetcher of this node shares.
//
// Why one stream for the node and not one per fetcher: a stream per
// partition would hold one HTTP/2 stream per partition this node follows
// for as long as it follows it, all on the one connection to the local
// broker, where the broker allows max-concurrent-streams (1000) and an
// identity max-streams-per-identity (2048) at once: past those a
// fetcher's stream would wait for a slot that never frees, or be refused.
// One stream costs the broker one identity check and one handler for the
// node, whatever the partition count. The broker appends the requests of
// different partitions concurrently and answers each by its request_id,
// so a slow partition (fsync=always) holds no other back; each fetcher
// has at most one request in flight, so a partition's appends stay in
// order.
//
// The stream is opened on first use and again after it failed (the
// broker restarted: the requests in flight fail Unavailable, and their
// fetchers retry as after any failed append). A broker that predates
// AppendStream answers Unimplemented; the appender then says so (unary),
// and the caller uses the unary Append from then on.
type appender struct {
	client stratav1.LocalReplicaClient
	nextID atomic.Uint64
	unary  atomic.Bool // the broker has no AppendStream

	mu     sync.Mutex
	cur    *appendConn // nil or failed: open a new one
	closed bool
}

// errAppenderClosed: Close was called.
var errAppenderClosed = status.Error(codes.Canceled, "fetcher: local append stream closed")

// appendQueue bounds the requests waiting to be sent on the stream; a
// fetcher waits (within its own deadline) for room.
const appendQueue = 64

func newAppender(client stratav1.LocalReplicaClient) *appender {
	return &appender{client: client}
}

// appendConn is one AppendStream and the requests waiting for answers.
type appendConn struct {
	ready   chan struct{} // closed once the stream is open (or failed to open)
	stream  grpc.BidiStreamingClient[stratav1.AppendRequest, stratav1.AppendResponse]
	cancel  context.CancelFunc
	sendq   chan *rawAppendRequest
	done    chan struct{} // closed when the stream failed; err says why
	mu      sync.Mutex
	err     error
	waiting map[uint64]chan appendResult
}

type appendResult struct {
	leo int64
	err error
}

// append sends req (which it does not keep: it takes references of its
// own on the frames) and waits for its answer until ctx ends.
func (a *appender) append(ctx context.Context, req *rawAppendRequest) (int64, error) {
	c, err := a.conn(ctx)
	if err != nil {
		return 0, err
	}
	id := a.nextID.Add(1)
	ch := make(chan appendResult, 1)
	if err := c.register(id, ch); err != nil {
		return 0, err
	}
	r := *req
	r.requestID = id
	r.frames.Ref() // the sender's, freed once sent: ctx may end before that
	select {
	case c.sendq <- &r:
	case <-c.done:
		r.frames.Free()
		c.unregister(id)
		return 0, c.failure()
	case <-ctx.Done():
		r.frames.Free()
		c.unregister(id)
		return 0, status.FromContextError(ctx.Err()).Err()
	}
	select {
	case res := <-ch:
		return res.leo, res.err
	case <-ctx.Done():
		// The request may still be sent and appended: the frames start at
		// the log end they were fetched for, so a late append lands
		// exactly there or is refused, as a cancelled unary Append does.
		c.unregister(id)
		return 0, status.FromContextError(ctx.Err()).Err()
	}
}

// conn returns the open stream, opening one if there is none; it waits
// for the opening within ctx.
func (a *appender) conn(ctx context.Context) (*appendConn, error) {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, errAppenderClosed
	}
	c := a.cur
	if c == nil || c.failed() {
		sctx, cancel := context.WithCancel(context.Background())
		c = &appendConn{ready: make(chan struct{}), cancel: cancel, sendq: make(chan *rawAppendRequest, appendQueue),
			done: make(chan struct{}), waiting: map[uint64]chan appendResult{}}
		a.cur = c
		go a.open(sctx, c)
	}
	a.mu.Unlock()
	select {
	case <-c.ready:
		if c.stream == nil {
			return nil, c.failure()
		}
		return c, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

// open opens c's stream and runs its sender and receiver.
func (a *appender) open(ctx context.Context, c *appendConn) {
	stream, err := a.client.AppendStream(ctx, rawCallOption)
	if err != nil {
		c.fail(err)
		close(c.ready)
		c.cancel()
		return
	}
	c.stream = stream
	close(c.ready)
	go c.send()
	c.receive(a)
}

// send writes the queued requests, one at a time, until the stream fails.
func (c *appendConn) send() {
	for {
		select {
		case r := <-c.sendq:
			err := c.stream.SendMsg(r)
			r.frames.Free()
			switch {
			case err == nil:
			case errors.Is(err, io.EOF):
				// The stream ended: its status comes from the receiver,
				// which fails every waiting request.
			default:
				// Refused before it left (too large): this request only.
				c.answer(r.requestID, appendResult{err: err})
			}
		case <-c.done:
			for { // free what is left; its waiters got the failure
				select {
				case r := <-c.sendq:
					r.frames.Free()
				default:
					return
				}
			}
		}
	}
}

// receive hands each answer to its waiter until the stream fails, then
// fails every waiting request with the stream's status.
func (c *appendConn) receive(a *appender) {
	for {
		resp := new(stratav1.AppendResponse)
		if err := c.stream.RecvMsg(resp); err != nil {
			if errors.Is(err, io.EOF) { // the broker ended the stream without a status
				err = status.Error(codes.Unavailable, "fetcher: the local broker ended the append stream")
			}
			if status.Code(err) == codes.Unimplemented {
				a.unary.Store(true)
			}
			c.fail(err)
			c.cancel()
			return
		}
		res := appendResult{leo: resp.GetLogEndOffset()}
		if e := resp.GetError(); e != nil {
			res = appendResult{err: appendErrorStatus(e)}
		}
		c.answer(resp.GetRequestId(), res)
	}
}

// appendErrorStatus is the status an AppendError carries: what the unary
// Append would have failed with, details (OffsetRange, ...) included.
func appendErrorStatus(e *stratav1.AppendError) error {
	st := status.FromProto(&spb.Status{Code: e.GetCode(), Message: e.GetMessage(), Details: e.GetDetails()})
	if st.Code() == codes.OK { // a broker bug: an error without a code
		return status.Error(codes.Unknown, "fetcher: append refused without a code: "+st.Message())
	}
	return st.Err()
}

func (c *appendConn) register(id uint64, ch chan appendResult) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.waiting[id] = ch
	return nil
}

func (c *appendConn) unregister(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.waiting, id)
}

// answer delivers res to the request id's waiter, if it still waits.
func (c *appendConn) answer(id uint64, res appendResult) {
	c.mu.Lock()
	ch, ok := c.waiting[id]
	delete(c.waiting, id)
	c.mu.Unlock()
	if ok {
		ch <- res // buffered: never blocks
	}
}

// fail ends the stream for its waiters with err (once).
func (c *appendConn) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return
	}
	c.err = err
	for id, ch := range c.waiting {
		ch <- appendResult{err: err}
		delete(c.waiting, id)
	}
	close(c.done)
}

func (c *appendConn) failed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *appendConn) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close ends the stream; appends after it fail.
func (a *appender) close() {
	a.mu.Lock()
	a.closed = true
	c := a.cur
	a.mu.Unlock()
	if c != nil {
		c.cancel()
	}
}
