// Package logstore is Strata's storage engine: the segmented, CRC-checked log of one partition.
//
// A Log is a directory of segments, each a store file of frames
// (frame.go) and an index of 12-byte entries (index.go), named by the
// segment's base offset. The last segment is active: written through its
// files, its index preallocated. Sealed segments are immutable and read
// through read-only memory mappings (golang.org/x/exp/mmap).
//
// One writer at a time (Append, AppendFrames, Truncate, retention) holds
// the Log's mutex; readers never take it. They load an immutable snapshot of
// the segment list atomically and pin the segment they read with a
// reference count, so retention and truncation can unpublish and delete a
// segment under a reader without unmapping it: the mapping goes away with
// the last reference, and the reader re-resolves its offset (getting
// ErrOffsetOutOfRange if the log no longer holds it).
//
// Durability follows the SyncPolicy (sync.go): never, on an interval from a
// goroutine the Log owns, or always, with group commit. Open recovers the
// directory (recover.go) using the recovery-point checkpoint to tell a
// crash (a torn tail past it: truncated) from corruption (a bad record
// below it: counted, logged, never served, never truncated). The
// leader-epoch checkpoint (epoch.go) answers OffsetForLeaderEpoch.
// Every file goes through the FS interface (fs.go) so tests inject faults.
package logstore
