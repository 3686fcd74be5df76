package topicconfig

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Config is one topic's settings. In a request, a zero field means "the
// default" (create) or "unchanged" (alter); Default().Merge(c) resolves
// one. A topic's stored config is resolved when it is created, on a
// single broker (topic.json) and by the controller alike, so a later
// change of the defaults does not silently change existing topics. The
// JSON form is the one the cluster metadata and topic.json keep.
type Config struct {
	// Partitions is the number of partitions, fixed at creation.
	Partitions int32 `json:"partitions"`
	// ReplicationFactor is the number of replicas of each partition, fixed
	// at creation.
	ReplicationFactor int32 `json:"replication_factor"`
	// RetentionBytes (retention.bytes) deletes a partition's oldest
	// segments while it holds more; -1 = unlimited.
	RetentionBytes int64 `json:"retention_bytes,omitempty"`
	// RetentionMs (retention.ms) deletes segments older than this; -1 =
	// unlimited.
	RetentionMs int64 `json:"retention_ms,omitempty"`
	// SegmentBytes (segment.bytes) rolls the active segment at this size.
	SegmentBytes int64 `json:"segment_bytes,omitempty"`
	// SegmentMs (segment.ms) rolls a non-empty active segment older than this.
	SegmentMs int64 `json:"segment_ms,omitempty"`
	// MaxRecordBytes (max.record.bytes) is the largest encoded record (key,
	// value, headers) a partition accepts.
	MaxRecordBytes int32 `json:"max_record_bytes,omitempty"`
	// Fsync (fsync) is "always", "never" or "interval:<duration>".
	Fsync string `json:"fsync,omitempty"`
	// MinInsyncReplicas (min.insync.replicas) is the smallest ISR that
	// acknowledges acks=ALL.
	MinInsyncReplicas int32 `json:"min_insync_replicas,omitempty"`
	// UncleanLeaderElection (unclean.leader.election) lets a replica out of
	// the ISR lead when no ISR member is alive, losing acknowledged records.
	UncleanLeaderElection bool `json:"unclean_leader_election,omitempty"`
	// CleanupPolicy (cleanup.policy) is "delete" (retention deletes old
	// segments), "compact" (the latest record of each key is kept, older
	// ones removed; retention off) or "compact,delete" (both).
	CleanupPolicy string `json:"cleanup_policy,omitempty"`
	// DeleteRetentionMs (delete.retention.ms) is how long compaction keeps
	// a tombstone, so that a consumer reading from the start sees the
	// deletion.
	DeleteRetentionMs int64 `json:"delete_retention_ms,omitempty"`
}

// Cleanup policies.
const (
	CleanupDelete        = "delete"
	CleanupCompact       = "compact"
	CleanupCompactDelete = "compact,delete"
)

// Compacted reports whether the policy compacts the topic's partitions.
func (c Config) Compacted() bool {
	return c.CleanupPolicy == CleanupCompact || c.CleanupPolicy == CleanupCompactDelete
}

// Limits of the settings that are not simply "at least 1".
const (
	// MaxPartitions bounds a topic's partitions (each is a directory of
	// open files on every replica).
	MaxPartitions = 10000
	// MinSegmentBytes is the smallest segment.bytes.
	MinSegmentBytes = 1024
	// MaxRecordBytesLimit is the largest max.record.bytes.
	MaxRecordBytesLimit = 64 << 20
	// MaxMs is the largest retention.ms and segment.ms: the longest
	// duration (about 292 years) the storage engine can represent.
	MaxMs = int64(1<<63-1) / int64(time.Millisecond)
	// ClusterReplicationFactor is the replication factor of a topic the
	// controller creates without one, when at least that many brokers are
	// alive (see DefaultReplicationFactor).
	ClusterReplicationFactor = 3
)

// Default returns the built-in defaults: a single broker's topic defaults
// (its --default-* flags start from them) and what the controller fills in
// for a cluster topic, whose replication factor is DefaultReplicationFactor.
func Default() Config {
	week := (7 * 24 * time.Hour).Milliseconds()
	return Config{
		Partitions:        1,
		ReplicationFactor: 1,
		RetentionBytes:    -1,
		RetentionMs:       week,
		SegmentBytes:      256 << 20,
		SegmentMs:         week,
		MaxRecordBytes:    1 << 20,
		Fsync:             "interval:1s",
		MinInsyncReplicas: 1,
		CleanupPolicy:     CleanupDelete,
		DeleteRetentionMs: (24 * time.Hour).Milliseconds(),
	}
}

// DefaultReplicationFactor is the replication factor the controller gives
// a topic created without one: ClusterReplicationFactor, or every live
// broker when fewer are alive (and 1 when none is).
func DefaultReplicationFactor(liveBrokers int) int32 {
	return int32(min(ClusterReplicationFactor, max(liveBrokers, 1)))
}

// Merge returns c with every non-zero field of o replacing c's (a false
// UncleanLeaderElection leaves c's).
func (c Config) Merge(o Config) Config {
	setIf(&c.Partitions, o.Partitions)
	setIf(&c.ReplicationFactor, o.ReplicationFactor)
	setIf(&c.RetentionBytes, o.RetentionBytes)
	setIf(&c.RetentionMs, o.RetentionMs)
	setIf(&c.SegmentBytes, o.SegmentBytes)
	setIf(&c.SegmentMs, o.SegmentMs)
	setIf(&c.MaxRecordBytes, o.MaxRecordBytes)
	setIf(&c.Fsync, o.Fsync)
	setIf(&c.MinInsyncReplicas, o.MinInsyncReplicas)
	setIf(&c.UncleanLeaderElection, o.UncleanLeaderElection)
	setIf(&c.CleanupPolicy, o.CleanupPolicy)
	setIf(&c.DeleteRetentionMs, o.DeleteRetentionMs)
	return c
}

func setIf[T comparable](dst *T, v T) {
	var zero T
	if v != zero {
		*dst = v
	}
}

// Alter returns c with the non-zero fields of change applied, after
// checking the result as Validate does (fields c leaves zero count as
// their defaults). Partitions and the replication factor are fixed: a
// change naming other values is refused.
func (c Config) Alter(change Config) (Config, error) {
	var problems []string
	if change.Partitions != 0 && change.Partitions != c.Partitions {
		problems = append(problems, fmt.Sprintf("partitions cannot be changed (%d, asked %d)", c.Partitions, change.Partitions))
	}
	if change.ReplicationFactor != 0 && change.ReplicationFactor != c.ReplicationFactor {
		problems = append(problems, fmt.Sprintf("replication.factor cannot be changed (%d, asked %d)", c.ReplicationFactor, change.ReplicationFactor))
	}
	if len(problems) > 0 {
		return Config{}, invalid(problems)
	}
	next := c.Merge(change)
	if err := Default().Merge(next).Validate(); err != nil {
		return Config{}, err
	}
	return next, nil
}

// Validate checks a resolved config (every field set) and reports every
// setting out of its allowed range, by key, with the range.
func (c Config) Validate() error {
	var problems []string
	if p := (valueRange{min: 1, max: MaxPartitions}).problem("partitions", int64(c.Partitions)); p != "" {
		problems = append(problems, p)
	}
	if p := (valueRange{min: 1, max: math.MaxInt32}).problem("replication.factor", int64(c.ReplicationFactor)); p != "" {
		problems = append(problems, p)
	}
	for _, s := range settings() {
		if p := s.check(c); p != "" {
			problems = append(problems, p)
		}
	}
	// Relations, once each side is in range.
	if c.MaxRecordBytes >= 1 && c.MaxRecordBytes <= MaxRecordBytesLimit && c.SegmentBytes >= MinSegmentBytes &&
		int64(c.MaxRecordBytes) > c.SegmentBytes {
		problems = append(problems, fmt.Sprintf("max.record.bytes (%d) must not exceed segment.bytes (%d)", c.MaxRecordBytes, c.SegmentBytes))
	}
	if c.MinInsyncReplicas >= 1 && c.ReplicationFactor >= 1 && c.MinInsyncReplicas > c.ReplicationFactor {
		problems = append(problems, fmt.Sprintf("min.insync.replicas (%d) must not exceed replication.factor (%d)", c.MinInsyncReplicas, c.ReplicationFactor))
	}
	if len(problems) > 0 {
		return invalid(problems)
	}
	return nil
}

func invalid(problems []string) error {
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
}
