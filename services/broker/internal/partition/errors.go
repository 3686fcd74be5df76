package partition

import (
	"errors"
	"fmt"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

var (
	// ErrClosed means the partition was closed (shutdown or topic deletion).
	ErrClosed = errors.New("partition: closed")
	// ErrNotLeader means this broker does not lead the partition; see NotLeaderError.
	ErrNotLeader = errors.New("partition: not the leader")
	// ErrRecordTooLarge means a record exceeds the topic's max record size; see RecordTooLargeError.
	ErrRecordTooLarge = errors.New("partition: record too large")
	// ErrEmptyBatch means a produce request carried no records.
	ErrEmptyBatch = errors.New("partition: empty batch")
)

// NotLeaderError tells the client where the leader is. errors.Is(err, ErrNotLeader) holds.
type NotLeaderError struct {
	Topic      string
	Partition  int32
	LeaderID   int32 // -1 when unknown
	LeaderAddr string
	Epoch      int32
}

func (e *NotLeaderError) Error() string {
	return fmt.Sprintf("partition: %s/%d is led by broker %d (%s) in epoch %d", e.Topic, e.Partition, e.LeaderID, e.LeaderAddr, e.Epoch)
}

// Is reports target == ErrNotLeader.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }

// RecordTooLargeError names the record of a batch that is too large.
// errors.Is(err, ErrRecordTooLarge) holds.
type RecordTooLargeError struct {
	Topic string
	Index int // position in the batch
	Size  int // encoded key, value and headers
	Max   int // the topic's max.record.bytes
}

// Error names the setting by the CLI's key and says how to raise it, as
// far as stratav1.MaxRecordBytes allows.
func (e *RecordTooLargeError) Error() string {
	msg := fmt.Sprintf("record %d is %d bytes, more than the max.record.bytes of topic %q (%d)", e.Index, e.Size, e.Topic, e.Max)
	if e.Size <= stratav1.MaxRecordBytes {
		return msg + fmt.Sprintf("; raise it with `strata topic alter %s --config max.record.bytes=%d` (at most %d)", e.Topic, e.Size, stratav1.MaxRecordBytes)
	}
	return msg + fmt.Sprintf(", and than any topic may accept (max.record.bytes is at most %d): split the record", stratav1.MaxRecordBytes)
}

// Is reports target == ErrRecordTooLarge.
func (e *RecordTooLargeError) Is(target error) bool { return target == ErrRecordTooLarge }

// ErrStopped means a wait ended because the caller's stop channel closed.
var ErrStopped = errors.New("partition: wait stopped")

// ErrNotEnoughReplicas means acks=ALL cannot be met; see NotEnoughReplicasError.
var ErrNotEnoughReplicas = errors.New("partition: not enough in-sync replicas")

// NotEnoughReplicasError: the ISR is smaller than min_insync_replicas.
// errors.Is(err, ErrNotEnoughReplicas) holds.
type NotEnoughReplicasError struct {
	ISR, MinISR int
	// AfterAppend: the records were appended but the ISR shrank below the
	// minimum before they were committed; they are not acknowledged.
	AfterAppend bool
}

func (e *NotEnoughReplicasError) Error() string {
	if e.AfterAppend {
		return fmt.Sprintf("partition: the in-sync replicas shrank to %d after the append, acks=ALL needs min_insync_replicas %d (not acknowledged; a retry may duplicate)", e.ISR, e.MinISR)
	}
	return fmt.Sprintf("partition: %d in-sync replicas, acks=ALL needs min_insync_replicas %d", e.ISR, e.MinISR)
}

// Is reports target == ErrNotEnoughReplicas.
func (e *NotEnoughReplicasError) Is(target error) bool { return target == ErrNotEnoughReplicas }

// ErrStaleEpoch means a partition state from an older leader epoch than the
// broker already has; see StaleEpochError.
var ErrStaleEpoch = errors.New("partition: stale leader epoch")

// StaleEpochError: a state or request carried an older leader epoch.
// errors.Is(err, ErrStaleEpoch) holds.
type StaleEpochError struct {
	Topic        string
	Partition    int32
	Got, Current int32
}

func (e *StaleEpochError) Error() string {
	return fmt.Sprintf("partition: %s/%d: leader epoch %d is older than the current %d", e.Topic, e.Partition, e.Got, e.Current)
}

// Is reports target == ErrStaleEpoch.
func (e *StaleEpochError) Is(target error) bool { return target == ErrStaleEpoch }

var (
	// ErrUnknownEpoch means a request named a leader epoch newer than this
	// broker knows: the controller's decision has not reached it yet.
	ErrUnknownEpoch = errors.New("partition: unknown leader epoch")
	// ErrNotFollower means a replicated write reached a broker that does not
	// follow the partition.
	ErrNotFollower = errors.New("partition: not a follower")
	// ErrNotReplica means a Fetch came from a broker that is not a follower
	// of the partition.
	ErrNotReplica = errors.New("partition: not a replica")
	// ErrBadReplicaRequest is a malformed replication request.
	ErrBadReplicaRequest = errors.New("partition: bad replication request")
)

// ErrLeaseExpired means this broker leads the partition as far as it knows,
// but its replicator has not confirmed that leadership within the leader
// lease: the controller may have moved it, so produce is refused; see
// LeaseExpiredError.
var ErrLeaseExpired = errors.New("partition: leader lease expired")

// LeaseExpiredError: a leader whose leadership was last confirmed longer
// than the lease ago. errors.Is(err, ErrLeaseExpired) holds.
type LeaseExpiredError struct {
	Topic     string
	Partition int32
	Epoch     int32
	// Since is the time since the last confirmation; Lease the bound.
	Since, Lease time.Duration
	// Revoked: the replicator named another leader or epoch since.
	Revoked bool
}

func (e *LeaseExpiredError) Error() string {
	if e.Revoked {
		return fmt.Sprintf("partition: %s/%d: this node's replicator no longer names this broker the leader in epoch %d (leadership moved; refresh metadata and retry)",
			e.Topic, e.Partition, e.Epoch)
	}
	return fmt.Sprintf("partition: %s/%d: leadership in epoch %d last confirmed %s ago, more than the leader lease %s (this node's replicator may be down and leadership may have moved; refresh metadata and retry)",
		e.Topic, e.Partition, e.Epoch, e.Since.Round(time.Millisecond), e.Lease)
}

// Is reports target == ErrLeaseExpired.
func (e *LeaseExpiredError) Is(target error) bool { return target == ErrLeaseExpired }
