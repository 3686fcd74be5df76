package logstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Branch on them with errors.Is; the typed errors below wrap
// them and carry the data a caller needs.
var (
	ErrOffsetOutOfRange = errors.New("logstore: offset out of range")
	ErrCorrupt          = errors.New("logstore: corrupt record")
	ErrRecordTooLarge   = errors.New("logstore: record too large")
	ErrClosed           = errors.New("logstore: log closed")
	ErrNotAtEnd         = errors.New("logstore: first offset is not the log end offset")
	ErrFailed           = errors.New("logstore: log failed; reopen to recover")
	// ErrStaleEpoch is returned by Append and AppendFrames when the epoch is
	// negative or older than the latest leader epoch of the log.
	ErrStaleEpoch = errors.New("logstore: leader epoch older than the latest one")
	// ErrBadBatch is returned by AppendFrames for a batch that is not a
	// sequence of whole frames with consecutive offsets.
	ErrBadBatch = errors.New("logstore: malformed frame batch")
)

// OutOfRangeError carries the valid range [Start, End); errors.Is(err,
// ErrOffsetOutOfRange) holds.
type OutOfRangeError struct {
	Offset, Start, End int64
}

func (e *OutOfRangeError) Error() string {
	return fmt.Sprintf("logstore: offset %d out of range [%d, %d)", e.Offset, e.Start, e.End)
}

// Is reports whether target is ErrOffsetOutOfRange.
func (e *OutOfRangeError) Is(target error) bool { return target == ErrOffsetOutOfRange }

// CorruptError names where a record failed its checks; errors.Is(err,
// ErrCorrupt) holds. Segment is the store file name ("" for frames handed to
// AppendFrames), Position the byte position in it and Offset the offset the
// record should have carried (-1 when unknown).
type CorruptError struct {
	Segment  string
	Position int64
	Offset   int64
	Reason   string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("logstore: corrupt record at offset %d (%s position %d): %s",
		e.Offset, e.Segment, e.Position, e.Reason)
}

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// failedError is the sticky error of a log whose write or fsync failed.
func failedError(cause error) error {
	return fmt.Errorf("%w: %w", ErrFailed, cause)
}
