package metadata

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// ValidateTopicName checks a topic name: 1-249 of [a-zA-Z0-9._-], not "." or "..".
func ValidateTopicName(name string) error {
	if !topicNameRE.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w: topic name %q must be 1-249 characters of [a-zA-Z0-9._-]", ErrInvalidConfig, name)
	}
	return nil
}

// Validate checks a complete topic config (partitions and replication
// factor set).
func (c TopicConfig) Validate() error {
	switch {
	case c.Partitions < 1:
		return fmt.Errorf("%w: partitions must be >= 1, got %d", ErrInvalidConfig, c.Partitions)
	case c.ReplicationFactor < 1:
		return fmt.Errorf("%w: replication_factor must be >= 1, got %d", ErrInvalidConfig, c.ReplicationFactor)
	case c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > c.ReplicationFactor:
		return fmt.Errorf("%w: min_insync_replicas must be in [0, replication_factor=%d], got %d",
			ErrInvalidConfig, c.ReplicationFactor, c.MinInsyncReplicas)
	case c.RetentionBytes < -1 || c.RetentionMs < -1:
		return fmt.Errorf("%w: retention must be >= -1", ErrInvalidConfig)
	case c.SegmentBytes < 0 || c.SegmentMs < 0 || c.MaxRecordBytes < 0:
		return fmt.Errorf("%w: segment_bytes, segment_ms and max_record_bytes must be >= 0", ErrInvalidConfig)
	}
	return validateFsync(c.Fsync)
}

func validateFsync(s string) error {
	switch {
	case s == "", s == "always", s == "never":
		return nil
	case strings.HasPrefix(s, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval:"))
		if err != nil || d <= 0 {
			return fmt.Errorf("%w: fsync %q: interval must be a positive duration", ErrInvalidConfig, s)
		}
		return nil
	default:
		return fmt.Errorf("%w: fsync %q must be always, never or interval:<duration>", ErrInvalidConfig, s)
	}
}

// validateReplicaSet checks that ids are distinct registered brokers.
func (s *State) validateReplicaSet(ids []int32) error {
	for i, id := range ids {
		if _, ok := s.Brokers[id]; !ok {
			return fmt.Errorf("%w: broker %d", ErrBrokerNotFound, id)
		}
		if slices.Contains(ids[:i], id) {
			return fmt.Errorf("%w: broker %d listed twice", ErrInvalidAssignment, id)
		}
	}
	return nil
}

// subsetOf reports whether every id of a is in b.
func subsetOf(a, b []int32) bool {
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

func hasDuplicates(ids []int32) bool {
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return true
		}
	}
	return false
}
