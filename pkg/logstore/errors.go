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
	// ErrNoSpace is returned by a write that failed because the file system
	// is full (ENOSPC, EDQUOT). Unlike other write failures it is not
	// sticky: the partial bytes are cut off, nothing of the batch became
	// visible, and the next write tries again, so the log resumes by itself
	// once space returns. See NoSpaceError.
	ErrNoSpace = errors.New("logstore: no space left on device")
	// ErrCompactConflict is returned by Compact when retention, a
	// truncation or a reset changed the segments it was cleaning: nothing
	// was swapped in; the next clean starts over.
	ErrCompactConflict = errors.New("logstore: log changed during compaction; nothing compacted")
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
// record should have carried (-1 when unknown). End, when above Offset+1, is
// the end of a damaged range of offsets that share the damaged bytes (a
// Reader moves past all of them at once); 0 means Offset+1.
type CorruptError struct {
	Segment  string
	Position int64
	Offset   int64
	End      int64
	Reason   string
}

func (e *CorruptError) Error() string {
	if e.End > e.Offset+1 {
		return fmt.Sprintf("logstore: corrupt records at offsets %d..%d (%s position %d): %s",
			e.Offset, e.End-1, e.Segment, e.Position, e.Reason)
	}
	return fmt.Sprintf("logstore: corrupt record at offset %d (%s position %d): %s",
		e.Offset, e.Segment, e.Position, e.Reason)
}

// next is the first offset after the damaged range.
func (e *CorruptError) next() int64 { return max(e.End, e.Offset+1) }

// Is reports whether target is ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// failedError is the sticky error of a log whose write or fsync failed.
func failedError(cause error) error {
	return fmt.Errorf("%w: %w", ErrFailed, cause)
}

// NoSpaceError is a write refused for lack of space; errors.Is(err,
// ErrNoSpace) holds, and errors.Unwrap gives the file system's error. Free
// is the bytes free in Dir when the write failed, -1 if unknown.
type NoSpaceError struct {
	Dir  string
	Free int64
	Err  error
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("logstore: no space left in %s (%d bytes free): %v", e.Dir, e.Free, e.Err)
}

// Is reports whether target is ErrNoSpace.
func (e *NoSpaceError) Is(target error) bool { return target == ErrNoSpace }

// Unwrap returns the file system's error.
func (e *NoSpaceError) Unwrap() error { return e.Err }
