package grpcserver

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/quota"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// logService implements strata.v1.Log.
type logService struct {
	stratav1.UnimplementedLogServer
	cfg      Config
	cat      Catalog
	admin    TopicAdmin
	rec      Recorder
	timer    BatchTimer
	lg       *zap.Logger
	shutdown <-chan struct{}
	quotas   Quotas  // nil: no quotas
	tr       *tracer // nil: tracing off
}

// lookup validates a topic and partition from a request and finds it.
func (s *logService) lookup(name string, id int32) (*partition.Partition, error) {
	if name == "" {
		return nil, badRequest("topic", "must be set")
	}
	if id < 0 {
		return nil, badRequest("partition", "must be >= 0, got "+strconv.Itoa(int(id)))
	}
	p, err := s.cat.Partition(name, id)
	if err != nil {
		if s.cfg.Cluster != nil && (errors.Is(err, topic.ErrNotFound) || errors.Is(err, topic.ErrPartitionNotFound)) {
			// The controller's state reaches this broker a moment after the
			// topic exists: answer "not the leader, leader unknown", which
			// clients retry after refreshing metadata, rather than a final
			// NotFound. A topic that does not exist at all is reported by
			// the metadata the client refreshes.
			return nil, toStatus(&partition.NotLeaderError{Topic: name, Partition: id, LeaderID: -1})
		}
		return nil, toStatus(err)
	}
	return p, nil
}

// lookupLeader is lookup for reads, which only the partition's leader
// serves: a follower's log may hold records past the high watermark that a
// new leader truncates.
func (s *logService) lookupLeader(name string, id int32) (*partition.Partition, error) {
	p, err := s.lookup(name, id)
	if err != nil {
		return nil, err
	}
	if err := p.NotLeader(); err != nil {
		return nil, toStatus(err)
	}
	return p, nil
}

// lookupForProduce is lookup that creates a missing topic when
// auto-create is on.
func (s *logService) lookupForProduce(ctx context.Context, name string, id int32) (*partition.Partition, error) {
	p, err := s.lookup(name, id)
	if err == nil || !s.cfg.AutoCreateTopics {
		return p, err
	}
	if _, gerr := s.cat.Get(name); !errors.Is(gerr, topic.ErrNotFound) {
		return nil, err
	}
	if _, cerr := s.admin.Create(ctx, name, topicconfig.Config{}); cerr != nil && !errors.Is(cerr, topic.ErrExists) {
		return nil, toStatus(cerr)
	}
	s.lg.Info("topic auto-created", zap.String("topic", name))
	return s.lookup(name, id)
}

// produce validates and appends one request and waits for its
// acknowledgement; errors are gRPC statuses. Each call is one batch of the
// latency histogram and error counts.
func (s *logService) produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	return s.finishBatch(ctx, s.appendBatch(ctx, req))
}

// acksLabel is the acks of a batch as the metrics name it.
func acksLabel(a stratav1.Acks) string {
	switch a {
	case stratav1.Acks_ACKS_NONE:
		return "none"
	case stratav1.Acks_ACKS_ALL:
		return "all"
	case stratav1.Acks_ACKS_LEADER, stratav1.Acks_ACKS_UNSPECIFIED:
		return "leader"
	}
	return "invalid"
}

// appendedBatch is a request past its append (or refused before it),
// waiting for its acknowledgement.
type appendedBatch struct {
	req   *stratav1.ProduceRequest
	start time.Time
	bytes int
	res   partition.ProduceResult
	// err is the request's refusal or the append's error (a status): the
	// batch is answered with it.
	err error
	// wait waits for the acknowledgement acks asks for (acks=all: the
	// high watermark past the batch); nil when there is nothing to wait for.
	wait func(context.Context) error
}

// appendBatch is a produce's first half: it validates req, throttles it,
// and appends it to its partition's log, in the caller's order.
func (s *logService) appendBatch(ctx context.Context, req *stratav1.ProduceRequest) *appendedBatch {
	b := &appendedBatch{req: req, start: time.Now()}
	b.err = s.appendStage(ctx, b)
	return b
}

func (s *logService) appendStage(ctx context.Context, b *appendedBatch) error {
	req := b.req
	switch req.GetAcks() {
	case stratav1.Acks_ACKS_UNSPECIFIED, stratav1.Acks_ACKS_NONE, stratav1.Acks_ACKS_LEADER, stratav1.Acks_ACKS_ALL:
	default:
		return badRequest("acks", "unknown value "+strconv.Itoa(int(req.GetAcks())))
	}
	if len(req.GetRecords()) == 0 {
		return badRequest("records", "at least one record is required")
	}
	p, err := s.lookupForProduce(ctx, req.GetTopic(), req.GetPartition())
	if err != nil {
		return err
	}
	for _, r := range req.GetRecords() {
		b.bytes += len(r.GetKey()) + len(r.GetValue())
	}
	// Throttled before the append, so a wait cut short appends nothing.
	if err := s.throttle(ctx, quota.Produce, b.bytes); err != nil {
		return err
	}
	pb, err := producerBatch(req)
	if err != nil {
		return err
	}
	if err := s.checkIssued(ctx, pb); err != nil {
		return err
	}
	if s.tr != nil {
		b.res, b.wait, err = s.tr.append(ctx, p, req, pb, b.bytes)
	} else {
		b.res, err = p.Append(ctx, req.GetRecords(), req.GetAcks(), pb)
		res, acks := b.res, req.GetAcks()
		b.wait = func(ctx context.Context) error { return p.AwaitAcks(ctx, res, acks) }
	}
	if err != nil {
		b.wait = nil
		return toStatus(err)
	}
	if req.GetAcks() != stratav1.Acks_ACKS_ALL {
		b.wait = nil // AwaitAcks waits only for acks=all
	}
	return nil
}

// finishBatch is a produce's second half: it waits for b's
// acknowledgement and makes its answer (an error is a status). It is where
// the batch is counted, with its time from receipt to answer.
func (s *logService) finishBatch(ctx context.Context, b *appendedBatch) (*stratav1.ProduceResponse, error) {
	req, err := b.req, b.err
	if err == nil && b.wait != nil {
		err = toStatus(b.wait(ctx))
	}
	s.timer.ProduceBatch(acksLabel(req.GetAcks()), status.Code(err), time.Since(b.start))
	if err != nil {
		return nil, err
	}
	res := b.res
	if !res.Duplicate {
		s.rec.Produced(req.GetTopic(), len(req.GetRecords()), b.bytes)
	}
	resp := &stratav1.ProduceResponse{
		Topic:         req.GetTopic(),
		Partition:     req.GetPartition(),
		BaseOffset:    res.Base,
		LastOffset:    res.Last,
		LeaderEpoch:   res.Epoch,
		CorrelationId: req.GetCorrelationId(),
		Duplicate:     res.Duplicate,
	}
	if req.GetAcks() == stratav1.Acks_ACKS_NONE {
		// The append happened; ACKS_NONE promises no offsets.
		resp.BaseOffset, resp.LastOffset = -1, -1
	}
	return resp, nil
}

// Produce appends one batch to one partition.
func (s *logService) Produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	return s.produce(ctx, req)
}

// ProduceStream pipelines batches. One goroutine receives them and
// appends each to its partition in the order received, so a partition's
// batches from one stream are appended in stream order; another waits for
// each batch's acknowledgement (acks=all: the high watermark past it) and
// sends the answers in the same order, each with its request's
// correlation id. Receiving does not wait for acknowledgements: while the
// first batch waits for its followers the next ones are appended behind
// it, as Kafka does with a producer's several requests in flight. At most
// ProduceStreamInFlight batches are received and not yet answered; past
// that, receiving waits (and HTTP/2 flow control pushes back on the
// client). A failed batch is answered with its error and the stream goes
// on; the batches after it are appended all the same (an idempotent
// producer's next batch is then refused for the gap, OutOfOrderSequence,
// which the client resends after the failed one). When the server shuts
// down the stream ends with Unavailable, its unanswered batches the
// client's to retry, so a client that keeps its stream open does not hold
// the graceful stop.
//
// A client that closes its send side ends the stream OK once every answer
// is sent; one that cancels the stream (typically after its last answer)
// ends it Canceled. Every end is a status: a bare context error would be
// counted as Unknown.
func (s *logService) ProduceStream(stream grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	inFlight := max(s.cfg.ProduceStreamInFlight, 1)
	// slots holds one token per batch received and not yet answered;
	// appended carries them, in order, to the answering goroutine.
	slots := make(chan struct{}, inFlight)
	appended := make(chan *appendedBatch, inFlight)
	sendErr := make(chan error, 1)
	go func() { sendErr <- s.answerBatches(ctx, cancel, stream, appended, slots) }()
	recvErr := make(chan error, 1)
	go func() {
		defer close(appended)
		recvErr <- s.receiveBatches(ctx, stream, appended, slots)
	}()
	var err error
	select {
	case err = <-recvErr:
	case <-s.shutdown:
		return s.stopProduceStream(cancel, sendErr)
	}
	// Every batch is received; the last ones may still wait for their
	// acknowledgements.
	select {
	case serr := <-sendErr:
		if serr != nil {
			err = serr
		}
		return toStatus(err)
	case <-s.shutdown:
		return s.stopProduceStream(cancel, sendErr)
	}
}

// stopProduceStream ends a ProduceStream when the server shuts down.
func (s *logService) stopProduceStream(cancel context.CancelFunc, sendErr <-chan error) error {
	cancel()
	<-sendErr // no Send after the handler returns
	// The receiver is in Recv, which ends when this handler returns.
	return status.Error(codes.Unavailable, "broker shutting down")
}

// receiveBatches is ProduceStream's receive loop: it takes a slot, receives
// a batch, appends it and passes it on, in order.
func (s *logService) receiveBatches(ctx context.Context, stream grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse], appended chan<- *appendedBatch, slots chan struct{}) error {
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		// appended never blocks: it holds as many batches as there are slots.
		appended <- s.appendBatch(ctx, req)
	}
}

// answerBatches is ProduceStream's answering loop: for each appended batch,
// in order, it waits for the acknowledgement and sends the answer, then
// frees the batch's slot. It returns the first failed Send's error, or the
// context's when the stream ends with batches unanswered.
func (s *logService) answerBatches(ctx context.Context, cancel context.CancelFunc, stream grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse], appended <-chan *appendedBatch, slots <-chan struct{}) error {
	var err error // the first failed Send
	for {
		var b *appendedBatch
		select {
		case next, ok := <-appended:
			if !ok {
				return err
			}
			b = next
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err() // the client went away or the server stops: answers may be unsent
			}
			return err
		}
		if err == nil {
			resp, perr := s.finishBatch(ctx, b)
			switch {
			case ctx.Err() != nil:
				// The stream is ending: a wait cut short is not the batch's
				// answer. The client retries what it was not answered.
				err = ctx.Err()
			default:
				if perr != nil {
					resp = &stratav1.ProduceResponse{
						Topic:         b.req.GetTopic(),
						Partition:     b.req.GetPartition(),
						BaseOffset:    -1,
						LastOffset:    -1,
						CorrelationId: b.req.GetCorrelationId(),
						Error:         toProtoError(perr),
					}
				}
				if err = stream.Send(resp); err != nil {
					cancel()
				}
			}
		}
		<-slots
	}
}

// ProduceBulk appends every batch of a client stream and answers once with
// the offset range written per partition. The first failing batch ends the
// stream with its status; batches before it stay written.
func (s *logService) ProduceBulk(stream grpc.ClientStreamingServer[stratav1.ProduceRequest, stratav1.ProduceBulkResponse]) error {
	ctx := stream.Context()
	type key struct {
		topic string
		part  int32
	}
	var (
		ranges []*stratav1.PartitionRange
		index  = make(map[key]int)
		total  int64
	)
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&stratav1.ProduceBulkResponse{Ranges: ranges, RecordCount: total})
		}
		if err != nil {
			return err
		}
		if req.GetAcks() == stratav1.Acks_ACKS_NONE {
			req.Acks = stratav1.Acks_ACKS_LEADER // ranges need offsets
		}
		resp, err := s.produce(ctx, req)
		if err != nil {
			return err
		}
		n := int64(len(req.GetRecords()))
		total += n
		k := key{req.GetTopic(), req.GetPartition()}
		i, ok := index[k]
		if !ok {
			index[k] = len(ranges)
			ranges = append(ranges, &stratav1.PartitionRange{Topic: k.topic, Partition: k.part, BaseOffset: resp.BaseOffset, LastOffset: resp.LastOffset, RecordCount: n})
			continue
		}
		r := ranges[i]
		r.LastOffset = resp.LastOffset
		r.RecordCount += n
	}
}
