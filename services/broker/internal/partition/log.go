package partition

import "github.com/strata-log/strata/pkg/logstore"

// Log is what a partition needs from its storage; *logstore.Log satisfies it.
// It is declared here, by its consumer, so the partition can be tested and
// reasoned about without the engine's other capabilities.
type Log interface {
	// Append writes recs under the leader epoch and returns the first offset.
	Append(epoch int32, recs []logstore.Record) (base int64, err error)
	// AppendFrames writes a leader's raw frames at their own offsets (follower).
	AppendFrames(epoch int32, frames []byte) (last int64, err error)
	// Truncate removes offsets >= offset; Reset empties the log at offset.
	Truncate(offset int64) error
	Reset(offset int64) error
	// EndOffsetForEpoch is the largest epoch <= e and where it ends.
	EndOffsetForEpoch(e int32) (epoch int32, end int64)
	// Dir is the log's directory (the HW checkpoint lives there).
	Dir() string
	// NewReader reads from offset; Next returns io.EOF at the log end.
	NewReader(offset int64) (*logstore.Reader, error)
	// Changed is closed on the next change of the log end offset or on Close.
	Changed() <-chan struct{}
	LogStartOffset() int64
	LogEndOffset() int64
	// OffsetForTime is the first offset with a timestamp >= ts (LogEndOffset if none).
	OffsetForTime(tsMillis int64) (int64, error)
	// Epochs lists (epoch, start offset) pairs, oldest first.
	Epochs() []logstore.EpochEntry
	ApplyRetention() error
	Healthy() error
	Sync() error
	Close() error
}

// Compile-time proof that the engine satisfies the interface.
var _ Log = (*logstore.Log)(nil)
