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

// produce validates and appends one request; errors are gRPC statuses.
// Each call is one batch of the latency histogram and error counts.
func (s *logService) produce(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	start := time.Now()
	resp, err := s.produceBatch(ctx, req)
	s.timer.ProduceBatch(acksLabel(req.GetAcks()), status.Code(err), time.Since(start))
	return resp, err
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

func (s *logService) produceBatch(ctx context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	switch req.GetAcks() {
	case stratav1.Acks_ACKS_UNSPECIFIED, stratav1.Acks_ACKS_NONE, stratav1.Acks_ACKS_LEADER, stratav1.Acks_ACKS_ALL:
	default:
		return nil, badRequest("acks", "unknown value "+strconv.Itoa(int(req.GetAcks())))
	}
	if len(req.GetRecords()) == 0 {
		return nil, badRequest("records", "at least one record is required")
	}
	p, err := s.lookupForProduce(ctx, req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	bytes := 0
	for _, r := range req.GetRecords() {
		bytes += len(r.GetKey()) + len(r.GetValue())
	}
	// Throttled before the append, so a wait cut short appends nothing.
	if err := s.throttle(ctx, quota.Produce, bytes); err != nil {
		return nil, err
	}
	pb, err := producerBatch(req)
	if err != nil {
		return nil, err
	}
	if err := s.checkIssued(ctx, pb); err != nil {
		return nil, err
	}
	var res partition.ProduceResult
	if s.tr != nil {
		res, err = s.tr.produce(ctx, p, req, pb, bytes)
	} else {
		res, err = p.ProduceBatch(ctx, req.GetRecords(), req.GetAcks(), pb)
	}
	if err != nil {
		return nil, toStatus(err)
	}
	if !res.Duplicate {
		s.rec.Produced(req.GetTopic(), len(req.GetRecords()), bytes)
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

// ProduceStream pipelines batches: one goroutine receives and appends in
// request order, another sends the answers in the same order. At most
// ProduceStreamInFlight answers wait to be sent; past that, receiving waits
// (and HTTP/2 flow control pushes back on the client). A failed batch is
// answered with its error and the stream goes on. When the server shuts
// down the stream ends with Unavailable between batches, so a client that
// keeps its stream open does not hold the graceful stop; batches not yet
// answered are the client's to retry.
//
// A client that closes its send side ends the stream OK once every answer
// is sent; one that cancels the stream (typically after its last answer)
// ends it Canceled. Every end is a status: a bare context error would be
// counted as Unknown.
func (s *logService) ProduceStream(stream grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	answers := make(chan *stratav1.ProduceResponse, max(s.cfg.ProduceStreamInFlight, 1))
	sendErr := make(chan error, 1)
	go func() {
		var err error // the first failed Send
		for {
			select {
			case resp, ok := <-answers:
				if !ok {
					sendErr <- err
					return
				}
				if err != nil {
					continue // drain so the receiver never blocks
				}
				if err = stream.Send(resp); err != nil {
					cancel()
				}
			case <-ctx.Done():
				if err == nil {
					err = ctx.Err() // the client went away: answers may be unsent
				}
				sendErr <- err
				return
			}
		}
	}()
	recvErr := make(chan error, 1)
	go func() {
		defer close(answers)
		recvErr <- s.receiveBatches(ctx, stream, answers)
	}()
	select {
	case err := <-recvErr:
		if serr := <-sendErr; serr != nil {
			err = serr
		}
		return toStatus(err)
	case <-s.shutdown:
		cancel()
		<-sendErr // no Send after the handler returns
		// The receiver is in Recv, which ends when this handler returns.
		return status.Error(codes.Unavailable, "broker shutting down")
	}
}

// receiveBatches is ProduceStream's receive loop: each batch is appended
// and its answer queued in order.
func (s *logService) receiveBatches(ctx context.Context, stream grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse], answers chan<- *stratav1.ProduceResponse) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.produce(ctx, req)
		if err != nil {
			resp = &stratav1.ProduceResponse{
				Topic:         req.GetTopic(),
				Partition:     req.GetPartition(),
				BaseOffset:    -1,
				LastOffset:    -1,
				CorrelationId: req.GetCorrelationId(),
				Error:         toProtoError(err),
			}
		}
		select {
		case answers <- resp:
		case <-ctx.Done():
			return ctx.Err()
		}
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
