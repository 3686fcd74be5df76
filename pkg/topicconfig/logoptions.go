package topicconfig

import (
	"fmt"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
)

// engineMaxRecordBytes is the storage engine's per-record limit for every
// topic. The broker enforces the topic's (alterable) max.record.bytes
// itself; the engine's limit stays fixed because it also bounds length
// prefixes read from disk, and a record written under a larger limit must
// never read back as corruption. The slack is room for what the broker may
// add to a record (producer id and sequence once idempotence lands).
const engineMaxRecordBytes = MaxRecordBytesLimit + 4096

// LogOptions translates a resolved, valid config into the storage
// engine's options for each of the topic's partition logs.
func (c Config) LogOptions() (logstore.Options, error) {
	sync, err := logstore.ParseSyncPolicy(c.Fsync)
	if err != nil {
		return logstore.Options{}, fmt.Errorf("%w: fsync %q: %w", ErrInvalid, c.Fsync, err)
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
	if c.CleanupPolicy == CleanupCompact {
		// Compaction alone decides what goes: retention deletes nothing.
		opts.RetentionBytes, opts.RetentionAge = -1, 0
	}
	return opts, nil
}
