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
//
// # Compaction
//
// Log.Compact (compact.go) keeps the last record of every key, as Kafka's
// log cleaner does. It reads the records below a bound the caller gives
// (the high watermark) into a map from key to latest offset, then rewrites
// the sealed segments below the bound without the records a later one of
// their key superseded and without tombstones older than the delete
// retention (by frame timestamp), merging small neighbours while the
// result fits a segment. Payloads stay opaque: the caller's KeyOf reads a
// record's key and tombstone flag. Keyless records are kept. The active
// segment is never rewritten, and a segment holding a corrupt record stops
// the clean before it.
//
// A compacted segment covers the offsets of the segments it replaced,
// [base, end), with base the first one's, and holds only the frames that
// survived, byte for byte (offset, timestamp, CRC): offsets, timestamps
// and leader epochs do not change, and readers see gaps. Besides its store
// and index it has a descriptor, <base>.compacted (swap.go: base, end,
// store bytes, record count, CRC). Recovery accepts gaps between frames
// only in a store with a descriptor, and checks the store against it
// (records missing at its end are corruption, not gaps); a compacted
// segment was fsynced before it was swapped in, so nothing in it is ever a
// torn write. Its index is sparse: one entry per record, relative offsets
// strictly increasing. A lookup of offset base+rel takes entry rel when it
// is for rel (no gap before), and otherwise binary-searches the entries for
// the first at or after rel; a read of a removed offset returns the next
// record (its frame carries its own offset), a Reader walks from frame to
// frame across gaps, and Read returns io.EOF when no record is left below
// the log end. A compacted segment is always sealed: Truncate into one
// swaps in its prefix and starts a new active segment at the truncation
// point (after a crash between the two, Open starts it). A follower
// copying a compacted range from its leader gets frames with gaps:
// AppendCompactedFrames writes such a batch as a compacted segment of its
// own, swapped in the same way, and the follower's own clean merges them.
//
// The swap of one clean's segments is atomic across a crash:
//
//  1. Each new segment is written as <name>.cleaned (store, index,
//     descriptor), each file fsynced, then the directory fsynced.
//  2. Commit: the writer's lock is taken, the log fsynced (the records
//     that superseded removed ones are durable before anything goes),
//     every .cleaned file renamed to .swap, the directory fsynced.
//  3. Per new segment: the segments it replaces, other than the one at its
//     base, are removed (store first, descriptor last), then its index,
//     store and descriptor are renamed over the final names (descriptor
//     last); then the directory is fsynced and the new segment list
//     published.
//
// Open (recoverSwap) finishes a swap if any .swap file exists (every
// .cleaned file is then complete: step 1 ended before step 2 began),
// reading each new segment's end from its descriptor to remove what it
// replaces; otherwise it removes the .cleaned files. Every step of that
// is idempotent, so a crash at any step, of the clean or of the recovery,
// leaves every old segment or every new one, never a mix. Readers in a
// replaced segment keep its mapping (renames and removals do not change a
// mapped file) until they move on, then find the new segment list.
package logstore
