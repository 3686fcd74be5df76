package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// appendStreamInFlight bounds the appends one AppendStream runs at once.
// The replicator sends at most one request per partition it follows and
// waits for its answer, so this binds only when that many partitions
// append at the same moment; the stream then stops reading until one
// finishes, and gRPC's flow control holds the sender back.
const appendStreamInFlight = 256

// AppendStream is Append for every partition this node follows, on one
// long-lived stream (local_replica.proto). The caller is checked once,
// here, and by the interceptors when the stream opened; each request is
// then decoded without copying its frames out of the received message
// (rawAppendRequest), appended in a goroutine of its own so that a slow
// append (fsync=always) holds back no other partition, and answered with
// its request_id, or with the status the unary Append would fail with.
// The stream ends when the replicator closes its side or the broker stops.
func (s *localReplicaService) AppendStream(stream grpc.BidiStreamingServer[stratav1.AppendRequest, stratav1.AppendResponse]) error {
	ctx := stream.Context()
	if err := s.fromOwnReplicator(ctx); err != nil {
		return err
	}
	as := &appendStream{svc: s, stream: stream, ctx: ctx, sem: make(chan struct{}, appendStreamInFlight)}
	recvErr := make(chan error, 1)
	go func() { recvErr <- as.receive() }()
	var err error
	select {
	case err = <-recvErr:
	case <-s.shutdown:
		err = status.Error(codes.Unavailable, "broker shutting down")
	case <-ctx.Done():
		err = status.FromContextError(ctx.Err()).Err()
	}
	// Nothing may send once the handler returned: start no more appends
	// and wait for those running (each a bounded local write).
	as.close()
	if errors.Is(err, io.EOF) {
		return nil // the replicator closed its side
	}
	return err
}

// appendStream is one AppendStream being served.
type appendStream struct {
	svc    *localReplicaService
	stream grpc.BidiStreamingServer[stratav1.AppendRequest, stratav1.AppendResponse]
	ctx    context.Context
	sem    chan struct{} // one slot per running append

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup

	sendMu sync.Mutex // SendMsg is not safe from several goroutines
}

// receive reads requests and starts each one's append until the stream
// fails or ends (io.EOF).
func (as *appendStream) receive() error {
	for {
		req := new(rawAppendRequest)
		if err := as.stream.RecvMsg(req); err != nil {
			return err
		}
		select {
		case as.sem <- struct{}{}:
		case <-as.ctx.Done():
			req.release()
			return as.ctx.Err()
		}
		as.mu.Lock()
		if as.closed {
			as.mu.Unlock()
			req.release()
			<-as.sem
			return nil
		}
		as.wg.Add(1)
		as.mu.Unlock()
		go as.append(req)
	}
}

func (as *appendStream) close() {
	as.mu.Lock()
	as.closed = true
	as.mu.Unlock()
	as.wg.Wait()
}

// append runs one request and answers it.
func (as *appendStream) append(req *rawAppendRequest) {
	defer as.wg.Done()
	defer func() { <-as.sem }()
	leo, err := as.svc.appendRaw(as.ctx, req)
	id := req.requestID
	req.release() // the log copied the frames: the received buffer goes back to its pool
	resp := &stratav1.AppendResponse{RequestId: id, LogEndOffset: leo}
	if err != nil {
		resp = &stratav1.AppendResponse{RequestId: id, Error: appendError(err)}
	}
	as.sendMu.Lock()
	defer as.sendMu.Unlock()
	// A failed send means the stream is gone: the receiver sees it too
	// and ends the handler. The append itself stands, as a unary Append
	// whose caller went away.
	_ = as.stream.SendMsg(resp)
}

// appendRaw is Append's work for one decoded request: the same checks,
// the same epoch fencing (Partition.AppendReplicated), the same errors.
func (s *localReplicaService) appendRaw(ctx context.Context, req *rawAppendRequest) (int64, error) {
	p, err := s.cat.Partition(req.topic, req.partition)
	if err != nil {
		return 0, err
	}
	if s.tr != nil && req.traceParent != "" {
		if sc, ok := telemetry.ParseTraceParent(req.traceParent); ok && sc.IsSampled() {
			return s.tr.appendReplicated(trace.ContextWithRemoteSpanContext(ctx, sc), p, &stratav1.AppendRequest{
				Topic: req.topic, Partition: req.partition, LeaderEpoch: req.leaderEpoch, RecordsEpoch: req.recordsEpoch,
				Frames: req.frames, LeaderHighWatermark: req.leaderHW})
		}
	}
	return appendReplicated(p, req)
}

func appendReplicated(p *partition.Partition, req *rawAppendRequest) (int64, error) {
	return p.AppendReplicated(req.leaderEpoch, req.recordsEpoch, req.frames, req.leaderHW)
}

// appendError is the AppendError of a refused append: the status the
// unary Append returns for err (toStatus), code, message and details.
func appendError(err error) *stratav1.AppendError {
	st := status.Convert(toStatus(err)).Proto()
	return &stratav1.AppendError{Code: st.GetCode(), Message: st.GetMessage(), Details: st.GetDetails()}
}

// rawAppendRequest is an AppendRequest decoded by the server's codec
// without copying its frames: they alias the received message, held in
// one buffer from gRPC's pool (the received buffer itself when the
// message arrived in one piece, else one copy into a pooled buffer, not a
// fresh allocation as proto.Unmarshal makes) until release.
type rawAppendRequest struct {
	topic                     string
	partition                 int32
	leaderEpoch, recordsEpoch int32
	frames                    []byte
	leaderHW                  int64
	requestID                 uint64
	traceParent               string

	buf mem.Buffer // holds frames; nil when there are none
}

// GetTopic, GetFrames and GetRequestId read the request as the generated
// AppendRequest's getters do (tests observe the stream with them).
func (r *rawAppendRequest) GetTopic() string     { return r.topic }
func (r *rawAppendRequest) GetFrames() []byte    { return r.frames }
func (r *rawAppendRequest) GetRequestId() uint64 { return r.requestID }

// release gives the received buffer back; frames must not be used after.
func (r *rawAppendRequest) release() {
	if r.buf != nil {
		r.buf.Free()
		r.buf = nil
	}
	r.frames = nil
}

// AppendRequest field numbers (local_replica.proto).
const (
	appendTopic        protowire.Number = 1
	appendPartition    protowire.Number = 2
	appendLeaderEpoch  protowire.Number = 3
	appendRecordsEpoch protowire.Number = 4
	appendFrames       protowire.Number = 5
	appendLeaderHW     protowire.Number = 6
	appendRequestID    protowire.Number = 7
	appendTraceParent  protowire.Number = 8
)

// unmarshal decodes an AppendRequest in wire format as proto.Unmarshal
// would (fields in any order, the last of a repeated scalar winning,
// unknown fields skipped), keeping data's bytes for the frames.
func (r *rawAppendRequest) unmarshal(data mem.BufferSlice) error {
	*r = rawAppendRequest{}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	b := buf.ReadOnlyData()
	keep := false
	defer func() {
		if !keep {
			buf.Free()
		}
	}()
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("AppendRequest: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == appendTopic && typ == protowire.BytesType, num == appendTraceParent && typ == protowire.BytesType,
			num == appendFrames && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("AppendRequest field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case appendFrames:
				r.frames = v
			case appendTopic:
				if !utf8.Valid(v) {
					return errors.New("AppendRequest: topic is not valid UTF-8")
				}
				r.topic = string(v)
			default:
				if !utf8.Valid(v) {
					return errors.New("AppendRequest: trace_parent is not valid UTF-8")
				}
				r.traceParent = string(v)
			}
		case typ == protowire.VarintType && num >= appendPartition && num <= appendRequestID && num != appendFrames:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return fmt.Errorf("AppendRequest field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			switch num {
			case appendPartition:
				r.partition = int32(v)
			case appendLeaderEpoch:
				r.leaderEpoch = int32(v)
			case appendRecordsEpoch:
				r.recordsEpoch = int32(v)
			case appendLeaderHW:
				r.leaderHW = int64(v)
			case appendRequestID:
				r.requestID = v
			}
		case num >= appendTopic && num <= appendTraceParent:
			return fmt.Errorf("AppendRequest field %d: wrong wire type %d", num, typ)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("AppendRequest field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	if len(r.frames) > 0 {
		r.buf, keep = buf, true
	} else {
		r.frames = nil
	}
	return nil
}
