package grpcserver

import (
	"context"
	"errors"
	"strconv"
	"syscall"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// badRequest is InvalidArgument with a google.rpc.BadRequest naming the field.
func badRequest(field, desc string) error {
	return withDetails(codes.InvalidArgument, field+": "+desc, &errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}},
	})
}

func withDetails(c codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(c, msg)
	withD, err := st.WithDetails(details...)
	if err != nil {
		// Only a detail that cannot be marshaled gets here: keep the code and message.
		return st.Err()
	}
	return withD.Err()
}

// toStatus maps an error of the registry, partition or engine to a gRPC
// status with the details DESIGN.md section 3 names.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		tooLarge  *partition.RecordTooLargeError
		notLeader *partition.NotLeaderError
		oor       *logstore.OutOfRangeError
		fault     *partition.ProducerFaultError
	)
	switch {
	case errors.As(err, &fault):
		return withDetails(codes.FailedPrecondition, err.Error(), producerFaultDetail(fault))
	case errors.As(err, &tooLarge):
		return badRequest(recordField(tooLarge.Index), tooLarge.Error())
	case errors.As(err, &notLeader):
		return withDetails(codes.FailedPrecondition, err.Error(), notLeaderDetail(notLeader))
	case errors.As(err, &oor):
		return withDetails(codes.OutOfRange, err.Error(), offsetRangeDetail(oor))
	case errors.Is(err, partition.ErrEmptyBatch):
		return badRequest("records", "at least one record is required")
	case errors.Is(err, topicconfig.ErrInvalidName):
		return badRequest("name", err.Error())
	case errors.Is(err, topicconfig.ErrInvalid):
		return badRequest("config", err.Error())
	case errors.Is(err, logstore.ErrRecordTooLarge):
		return badRequest("records", err.Error())
	case errors.Is(err, topic.ErrNotFound), errors.Is(err, topic.ErrPartitionNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, topic.ErrExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, partition.ErrStaleEpoch),
		errors.Is(err, partition.ErrUnknownEpoch),
		errors.Is(err, partition.ErrNotFollower),
		errors.Is(err, partition.ErrNotReplica),
		errors.Is(err, logstore.ErrNotAtEnd):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, partition.ErrBadReplicaRequest), errors.Is(err, logstore.ErrBadBatch):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, partition.ErrNotEnoughReplicas),
		errors.Is(err, partition.ErrLeaseExpired),
		errors.Is(err, partition.ErrClosed),
		errors.Is(err, partition.ErrStopped),
		errors.Is(err, topic.ErrClosed),
		errors.Is(err, logstore.ErrClosed),
		errors.Is(err, logstore.ErrFailed):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, logstore.ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		// A full data directory: nothing was written, and retrying will not
		// help until space is freed, so clients fail the request at once.
		// The engine's NoSpaceError names the directory and the bytes free.
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, logstore.ErrCorrupt):
		return status.Error(codes.DataLoss, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// toProtoError is the per-request error of a ProduceStream response.
func toProtoError(err error) *stratav1.Error {
	st := status.Convert(toStatus(err))
	e := &stratav1.Error{Code: int32(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *stratav1.NotLeader:
			e.NotLeader = d
		case *stratav1.OffsetRange:
			e.OffsetRange = d
		case *stratav1.ProducerFault:
			e.ProducerFault = d
		}
	}
	return e
}

func notLeaderDetail(e *partition.NotLeaderError) *stratav1.NotLeader {
	return &stratav1.NotLeader{Topic: e.Topic, Partition: e.Partition, LeaderId: e.LeaderID, LeaderAddress: e.LeaderAddr, LeaderEpoch: e.Epoch}
}

func offsetRangeDetail(e *logstore.OutOfRangeError) *stratav1.OffsetRange {
	return &stratav1.OffsetRange{Requested: e.Offset, LogStartOffset: e.Start, EndOffset: e.End}
}

func recordField(i int) string { return "records[" + strconv.Itoa(i) + "]" }

func producerFaultDetail(e *partition.ProducerFaultError) *stratav1.ProducerFault {
	reason := stratav1.ProducerFault_REASON_OUT_OF_ORDER_SEQUENCE
	switch e.Reason {
	case partition.FaultProducerFenced:
		reason = stratav1.ProducerFault_REASON_PRODUCER_FENCED
	case partition.FaultUnknownProducerID:
		reason = stratav1.ProducerFault_REASON_UNKNOWN_PRODUCER_ID
	}
	return &stratav1.ProducerFault{Reason: reason, ProducerId: e.ProducerID, ProducerEpoch: e.Epoch,
		ExpectedSequence: e.Expected, BaseSequence: e.Sequence, CurrentEpoch: e.CurrentEpoch}
}
