package partition

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
)

// compactor is the log's optional compaction; *logstore.Log has it.
type compactor interface {
	Compact(ctx context.Context, opts logstore.CompactOptions) (logstore.CompactStats, error)
}

// ErrNoCompaction: the partition's log cannot compact.
var ErrNoCompaction = errors.New("partition: the log does not support compaction")

// Compact cleans the partition's log below its high watermark (records
// above it may still be truncated, and must never supersede one that
// stays): the latest record of each key stays, older ones go, and
// tombstones older than deleteRetention go too. Offsets do not change;
// readers see gaps. Every replica compacts its own log.
func (p *Partition) Compact(ctx context.Context, deleteRetention time.Duration) (logstore.CompactStats, error) {
	c, ok := p.log.(compactor)
	if !ok {
		return logstore.CompactStats{}, ErrNoCompaction
	}
	st, err := c.Compact(ctx, logstore.CompactOptions{KeyOf: PayloadKey, DeleteRetention: deleteRetention, UpTo: p.HighWatermark()})
	if err != nil {
		return st, fmt.Errorf("partition %s/%d: compact: %w", p.topic, p.id, err)
	}
	return st, nil
}
