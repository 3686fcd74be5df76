package grpcserver

import (
	"context"
	"errors"
	"strconv"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/producerid"
)

// producerBatch is a produce request's idempotence fields, validated.
func producerBatch(req *stratav1.ProduceRequest) (partition.ProducerBatch, error) {
	pb := partition.ProducerBatch{ID: req.GetProducerId(), Epoch: req.GetProducerEpoch(), Sequence: req.GetBaseSequence()}
	switch {
	case pb.ID < 0:
		return pb, badRequest("producer_id", "must be >= 0, got "+strconv.FormatInt(pb.ID, 10))
	case pb.ID == 0 && (pb.Epoch != 0 || pb.Sequence != 0):
		return pb, badRequest("producer_id", "producer_epoch and base_sequence need a producer_id")
	case pb.Epoch < 0:
		return pb, badRequest("producer_epoch", "must be >= 0, got "+strconv.Itoa(int(pb.Epoch)))
	case pb.Sequence < 0:
		return pb, badRequest("base_sequence", "must be >= 0, got "+strconv.FormatInt(pb.Sequence, 10))
	}
	return pb, nil
}

// checkIssued refuses a batch whose producer id the cluster never handed
// out (FailedPrecondition, ProducerFault UNKNOWN_PRODUCER_ID): ids are
// unique forever only if nobody makes one up. An id the broker cannot
// check now (its replicator unreachable) is Unavailable, which a client
// retries.
func (s *logService) checkIssued(ctx context.Context, pb partition.ProducerBatch) error {
	if !pb.Idempotent() || s.cfg.ProducerIDs == nil {
		return nil
	}
	err := s.cfg.ProducerIDs.Issued(ctx, pb.ID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, producerid.ErrNeverIssued):
		return toStatus(&partition.ProducerFaultError{Reason: partition.FaultUnknownProducerID, ProducerID: pb.ID, Epoch: pb.Epoch,
			CurrentEpoch: pb.Epoch, Expected: -1, Sequence: pb.Sequence})
	}
	return status.Error(codes.Unavailable, err.Error())
}

// InitProducer gives a producer a new id (epoch 0), or the next epoch of
// the id it holds: batches of the older epoch are fenced in every
// partition the newer one writes to.
func (s *logService) InitProducer(ctx context.Context, req *stratav1.InitProducerRequest) (*stratav1.InitProducerResponse, error) {
	if req.GetTopic() == "" {
		return nil, badRequest("topic", "must be set (the caller needs produce on it)")
	}
	switch id, epoch := req.GetProducerId(), req.GetProducerEpoch(); {
	case id < 0:
		return nil, badRequest("producer_id", "must be >= 0, got "+strconv.FormatInt(id, 10))
	case id > 0:
		if epoch < 0 || epoch == 1<<31-1 {
			return nil, badRequest("producer_epoch", "must be in [0, 2^31-2], got "+strconv.Itoa(int(epoch)))
		}
		if err := s.checkIssued(ctx, partition.ProducerBatch{ID: id, Epoch: epoch}); err != nil {
			return nil, err
		}
		return &stratav1.InitProducerResponse{ProducerId: id, ProducerEpoch: epoch + 1}, nil
	}
	if s.cfg.ProducerIDs == nil {
		return nil, status.Error(codes.Unimplemented, "this broker does not hand out producer ids")
	}
	id, err := s.cfg.ProducerIDs.Next(ctx)
	if err != nil {
		if _, ok := status.FromError(err); !ok {
			err = status.Error(codes.Unavailable, err.Error())
		}
		s.lg.Warn("producer id allocation failed", zap.Error(err))
		return nil, err
	}
	return &stratav1.InitProducerResponse{ProducerId: id}, nil
}
