package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrClosed is returned by calls on a closed Client, Producer or Consumer.
	ErrClosed = errors.New("client: closed")
	// ErrTopicNotFound is returned when the cluster does not know a topic.
	ErrTopicNotFound = errors.New("client: topic not found")
	// ErrPartitionNotFound is returned for a partition the topic does not have.
	ErrPartitionNotFound = errors.New("client: partition not found")
	// ErrNoLeader is returned when a partition has no leader (it is offline).
	ErrNoLeader = errors.New("client: partition has no leader")
	// ErrNoBrokers is returned when no bootstrap broker answered.
	ErrNoBrokers = errors.New("client: no broker reachable")
	// ErrDeliveryTimeout is returned for a record not acknowledged within
	// ProducerOptions.DeliveryTimeout.
	ErrDeliveryTimeout = errors.New("client: delivery timeout")
	// ErrGroupNotFound is returned for a consumer group its coordinator
	// has no record of.
	ErrGroupNotFound = errors.New("client: group not found")
	// ErrFenced ends a GroupConsumer whose static membership was taken
	// over by another process joining with the same InstanceID.
	ErrFenced = errors.New("client: fenced: another member joined the group with the same instance id")
)

// ConfigError reports an invalid option.
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "client: " + e.Field + ": " + e.Msg }

// NotLeaderError is a broker's answer "not the leader" with its leader hint.
type NotLeaderError struct {
	Topic         string
	Partition     int32
	LeaderID      int32
	LeaderAddress string
	LeaderEpoch   int32
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("client: %s/%d: broker is not the leader (leader %d at %q, epoch %d)",
		e.Topic, e.Partition, e.LeaderID, e.LeaderAddress, e.LeaderEpoch)
}

// NotCoordinatorError is a broker's answer that it does not coordinate a
// consumer group, naming the broker that does (CoordinatorID -1 while the
// group's offsets partition has no leader, or the offsets topic is being
// created).
type NotCoordinatorError struct {
	CoordinatorID      int32
	CoordinatorAddress string
	// Message is the broker's message.
	Message string
}

func (e *NotCoordinatorError) Error() string { return "client: " + e.Message }

// OffsetRangeError is a broker's answer OutOfRange with the valid range.
type OffsetRangeError struct {
	Requested      int64
	LogStartOffset int64
	// EndOffset is one past the last readable offset.
	EndOffset int64
}

func (e *OffsetRangeError) Error() string {
	return fmt.Sprintf("client: offset %d out of range [%d, %d)", e.Requested, e.LogStartOffset, e.EndOffset)
}

// PermissionError is a broker's PermissionDenied for a call its ACL policy
// denies: Identity may not do Action on Object (a topic, or "cluster").
type PermissionError struct {
	Identity string
	Action   string
	Object   string
	// Message is the broker's message.
	Message string
}

func (e *PermissionError) Error() string { return "client: " + e.Message }

// The ErrorInfo a broker's ACL denial carries (pkg/acl ErrorDomain and
// ReasonDenied; this package does not import pkg/acl).
const (
	aclErrorDomain  = "acl.strata"
	aclReasonDenied = "ACL_DENIED"
)

// RecordTooLargeError is a record larger than any topic accepts
// (stratav1.MaxRecordBytes, the most max.record.bytes may be), refused
// before it is sent. A record within that limit but above its topic's
// max.record.bytes is refused by the broker (InvalidArgument, naming the
// setting).
type RecordTooLargeError struct {
	// Size is the record's key, value and headers in bytes.
	Size int
	// Max is stratav1.MaxRecordBytes.
	Max int
}

func (e *RecordTooLargeError) Error() string {
	return fmt.Sprintf("client: record of %d bytes is larger than any topic accepts (max.record.bytes is at most %d)", e.Size, e.Max)
}

// BrokerError is any other error a broker answered with.
type BrokerError struct {
	Code    codes.Code
	Message string
}

func (e *BrokerError) Error() string { return "client: " + e.Code.String() + ": " + e.Message }

// fromStatus converts a gRPC error into the package's typed errors, keeping
// the status reachable with status.FromError through Unwrap where possible.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return fromCode(st.Code(), st.Message(), st.Details(), err)
}

func fromWireError(e *stratav1.Error) error {
	if e == nil || codes.Code(e.GetCode()) == codes.OK {
		return nil
	}
	var details []any
	if e.GetNotLeader() != nil {
		details = append(details, e.GetNotLeader())
	}
	if e.GetOffsetRange() != nil {
		details = append(details, e.GetOffsetRange())
	}
	if e.GetProducerFault() != nil {
		details = append(details, e.GetProducerFault())
	}
	return fromCode(codes.Code(e.GetCode()), e.GetMessage(), details, nil)
}

func fromCode(code codes.Code, msg string, details []any, orig error) error {
	for _, d := range details {
		switch d := d.(type) {
		case *stratav1.NotLeader:
			return &NotLeaderError{Topic: d.GetTopic(), Partition: d.GetPartition(), LeaderID: d.GetLeaderId(),
				LeaderAddress: d.GetLeaderAddress(), LeaderEpoch: d.GetLeaderEpoch()}
		case *stratav1.OffsetRange:
			return &OffsetRangeError{Requested: d.GetRequested(), LogStartOffset: d.GetLogStartOffset(), EndOffset: d.GetEndOffset()}
		case *stratav1.ProducerFault:
			return &ProducerFaultError{Reason: d.GetReason(), Expected: d.GetExpectedSequence(), Sequence: d.GetBaseSequence(), Message: msg}
		case *stratav1.NotCoordinator:
			return &NotCoordinatorError{CoordinatorID: d.GetCoordinatorId(), CoordinatorAddress: d.GetCoordinatorAddress(), Message: msg}
		case *errdetails.ErrorInfo:
			if code == codes.PermissionDenied && d.GetDomain() == aclErrorDomain && d.GetReason() == aclReasonDenied {
				m := d.GetMetadata()
				return &PermissionError{Identity: m["identity"], Action: m["action"], Object: m["object"], Message: msg}
			}
		}
	}
	switch code {
	case codes.NotFound:
		return fmt.Errorf("%w: %s", ErrTopicNotFound, msg)
	case codes.Canceled:
		if orig != nil {
			return fmt.Errorf("%w (%s)", context.Canceled, msg)
		}
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w (%s)", context.DeadlineExceeded, msg)
	}
	return &BrokerError{Code: code, Message: msg}
}

// Code returns the gRPC code behind a client error (codes.Unknown when none).
func Code(err error) codes.Code {
	var be *BrokerError
	var nl *NotLeaderError
	var or *OffsetRangeError
	var pe *PermissionError
	var nc *NotCoordinatorError
	switch {
	case err == nil:
		return codes.OK
	case errors.As(err, &pe):
		return codes.PermissionDenied
	case errors.As(err, &nc), errors.Is(err, ErrFenced), errors.As(err, new(*ProducerFaultError)):
		return codes.FailedPrecondition
	case errors.As(err, new(*RecordTooLargeError)):
		return codes.InvalidArgument
	case errors.As(err, &nl):
		return codes.FailedPrecondition
	case errors.As(err, &or):
		return codes.OutOfRange
	case errors.Is(err, ErrTopicNotFound), errors.Is(err, ErrPartitionNotFound), errors.Is(err, ErrGroupNotFound):
		return codes.NotFound
	case errors.As(err, &be):
		return be.Code
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	}
	return codes.Unknown
}

// IsRetriable reports whether err is transient: Unavailable, not the leader,
// no leader, not the group's coordinator, or a lost connection.
// DeadlineExceeded is not included: whether it may be retried depends on
// the caller (a produce may have been applied).
func IsRetriable(err error) bool {
	var nl *NotLeaderError
	var nc *NotCoordinatorError
	if errors.As(err, &nl) || errors.Is(err, ErrNoLeader) || errors.As(err, &nc) {
		return true
	}
	var be *BrokerError
	if errors.As(err, &be) {
		return be.Code == codes.Unavailable || be.Code == codes.Aborted
	}
	return false
}

// refused reports whether err is a broker's answer that another broker
// would give as well: the caller's identity is not allowed, or not known.
// Such an answer is not a broker being unreachable.
func refused(err error) bool {
	c := Code(err)
	return c == codes.PermissionDenied || c == codes.Unauthenticated
}

func quote(s string) string { return strconv.Quote(s) }

var (
	// ErrOutOfOrderSequence: a partition refused an idempotent batch that
	// does not continue its producer's sequence; see ProducerFaultError.
	ErrOutOfOrderSequence = errors.New("client: out of order sequence")
	// ErrProducerFenced: a newer epoch of the producer id wrote to the
	// partition; see ProducerFaultError.
	ErrProducerFenced = errors.New("client: producer fenced")
	// ErrUnknownProducerID: the cluster never issued the producer id (a
	// single node whose data directory was replaced hands ids out anew);
	// see ProducerFaultError.
	ErrUnknownProducerID = errors.New("client: unknown producer id")
)

// ProducerFaultError is a partition's refusal of an idempotent batch.
// errors.Is(err, ErrOutOfOrderSequence), errors.Is(err, ErrProducerFenced)
// or errors.Is(err, ErrUnknownProducerID) holds.
type ProducerFaultError struct {
	Reason stratav1.ProducerFault_Reason
	// Expected is the sequence the partition expected (-1 if unknown),
	// Sequence the batch's first.
	Expected, Sequence int64
	Message            string
}

func (e *ProducerFaultError) Error() string { return "client: " + e.Message }

// Is matches the reason's sentinel.
func (e *ProducerFaultError) Is(target error) bool {
	switch e.Reason {
	case stratav1.ProducerFault_REASON_OUT_OF_ORDER_SEQUENCE:
		return target == ErrOutOfOrderSequence
	case stratav1.ProducerFault_REASON_PRODUCER_FENCED:
		return target == ErrProducerFenced
	case stratav1.ProducerFault_REASON_UNKNOWN_PRODUCER_ID:
		return target == ErrUnknownProducerID
	}
	return false
}
