package topic

import (
	"errors"
	"fmt"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
)

// Config is one topic's settings as persisted in its topic.json. Every field
// is resolved (no zero-means-default) once a topic exists: the broker's
// defaults in force at creation time are written down, so a later change of
// the broker defaults does not silently change existing topics.
type Config struct {
	// Partitions is the number of partitions, fixed at creation.
	Partitions int32 `json:"partitions"`
	// ReplicationFactor is kept for the cluster issue; a single node holds one replica.
	ReplicationFactor int32 `json:"replication_factor"`
	// RetentionBytes deletes old segments while a partition exceeds it; -1 = unlimited.
	RetentionBytes int64 `json:"retention_bytes"`
	// RetentionMs deletes segments older than this; -1 = unlimited.
	RetentionMs int64 `json:"retention_ms"`
	// SegmentBytes rolls the active segment at this size.
	SegmentBytes int64 `json:"segment_bytes"`
	// SegmentMs rolls a non-empty active segment older than this.
	SegmentMs int64 `json:"segment_ms"`
	// MaxRecordBytes is the largest encoded record (key, value, headers) accepted.
	MaxRecordBytes int32 `json:"max_record_bytes"`
	// Fsync is "always", "never" or "interval:<duration>".
	Fsync string `json:"fsync"`
	// MinInsyncReplicas is checked by acks=ALL once replication lands.
	MinInsyncReplicas int32 `json:"min_insync_replicas"`
	// UncleanLeaderElection is kept for the cluster issue.
	UncleanLeaderElection bool `json:"unclean_leader_election"`
}

// Merge returns c with every non-zero field of o replacing c's.
func (c Config) Merge(o Config) Config {
	if o.Partitions != 0 {
		c.Partitions = o.Partitions
	}
	if o.ReplicationFactor != 0 {
		c.ReplicationFactor = o.ReplicationFactor
	}
	if o.RetentionBytes != 0 {
		c.RetentionBytes = o.RetentionBytes
	}
	if o.RetentionMs != 0 {
		c.RetentionMs = o.RetentionMs
	}
	if o.SegmentBytes != 0 {
		c.SegmentBytes = o.SegmentBytes
	}
	if o.SegmentMs != 0 {
		c.SegmentMs = o.SegmentMs
	}
	if o.MaxRecordBytes != 0 {
		c.MaxRecordBytes = o.MaxRecordBytes
	}
	if o.Fsync != "" {
		c.Fsync = o.Fsync
	}
	if o.MinInsyncReplicas != 0 {
		c.MinInsyncReplicas = o.MinInsyncReplicas
	}
	if o.UncleanLeaderElection {
		c.UncleanLeaderElection = true
	}
	return c
}

// MaxPartitions bounds a topic's partition count (each is a directory of
// open files).
const MaxPartitions = 10000

// Validate reports every setting that is out of range, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.Partitions < 1 || c.Partitions > MaxPartitions {
		errs = append(errs, fmt.Errorf("partitions must be in [1, %d], got %d", MaxPartitions, c.Partitions))
	}
	if c.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("replication_factor must be >= 1, got %d", c.ReplicationFactor))
	}
	if c.RetentionBytes < -1 || c.RetentionBytes == 0 {
		errs = append(errs, fmt.Errorf("retention_bytes must be -1 (unlimited) or > 0, got %d", c.RetentionBytes))
	}
	if c.RetentionMs < -1 || c.RetentionMs == 0 {
		errs = append(errs, fmt.Errorf("retention_ms must be -1 (unlimited) or > 0, got %d", c.RetentionMs))
	}
	if c.SegmentBytes < 1024 {
		errs = append(errs, fmt.Errorf("segment_bytes must be >= 1024, got %d", c.SegmentBytes))
	}
	if c.SegmentMs < 1 {
		errs = append(errs, fmt.Errorf("segment_ms must be > 0, got %d", c.SegmentMs))
	}
	if c.MaxRecordBytes < 1 || c.MaxRecordBytes > MaxRecordBytesLimit {
		errs = append(errs, fmt.Errorf("max_record_bytes must be in [1, %d], got %d", MaxRecordBytesLimit, c.MaxRecordBytes))
	} else if c.SegmentBytes >= 1024 && int64(c.MaxRecordBytes) > c.SegmentBytes {
		errs = append(errs, fmt.Errorf("max_record_bytes (%d) must not exceed segment_bytes (%d)", c.MaxRecordBytes, c.SegmentBytes))
	}
	if _, err := logstore.ParseSyncPolicy(c.Fsync); err != nil {
		errs = append(errs, fmt.Errorf("fsync must be \"always\", \"never\" or \"interval:<duration>\", got %q", c.Fsync))
	}
	if c.MinInsyncReplicas < 1 {
		errs = append(errs, fmt.Errorf("min_insync_replicas must be >= 1, got %d", c.MinInsyncReplicas))
	} else if c.ReplicationFactor >= 1 && c.MinInsyncReplicas > c.ReplicationFactor {
		errs = append(errs, fmt.Errorf("min_insync_replicas (%d) must not exceed replication_factor (%d)", c.MinInsyncReplicas, c.ReplicationFactor))
	}
	return errors.Join(errs...)
}

// MaxRecordBytesLimit is the largest max_record_bytes a topic may have.
const MaxRecordBytesLimit = 64 << 20

// engineMaxRecordBytes is the storage engine's per-record limit for every
// topic. The broker enforces the topic's (alterable) max_record_bytes
// itself; the engine's limit stays fixed because it also bounds length
// prefixes read from disk, and a record written under a larger limit must
// never read back as corruption. The slack is room for what the broker may
// add to a record (producer id and sequence once idempotence lands).
const engineMaxRecordBytes = MaxRecordBytesLimit + 4096

// LogOptions translates c into the storage engine's options.
func (c Config) LogOptions() (logstore.Options, error) {
	sync, err := logstore.ParseSyncPolicy(c.Fsync)
	if err != nil {
		return logstore.Options{}, fmt.Errorf("topic: fsync %q: %w", c.Fsync, err)
	}
	opts := logstore.Options{
		MaxSegmentBytes: c.SegmentBytes,
		SegmentMaxAge:   time.Duration(c.SegmentMs) * time.Millisecond,
		RetentionBytes:  c.RetentionBytes,
		MaxRecordBytes:  engineMaxRecordBytes,
		Sync:            sync,
	}
	if c.RetentionMs > 0 {
		opts.RetentionAge = time.Duration(c.RetentionMs) * time.Millisecond
	}
	return opts, nil
}
