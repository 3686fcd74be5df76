package logstore

import "sync/atomic"

// counters are the Log's monotonic counters.
type counters struct {
	fsyncs          atomic.Uint64
	corruptRecords  atomic.Uint64
	indexRebuilds   atomic.Uint64
	truncatedBytes  atomic.Int64
	rolls           atomic.Uint64
	truncations     atomic.Uint64
	deletedSegments atomic.Uint64
	noSpaceErrors   atomic.Uint64
	compactions     atomic.Uint64
	compactedBytes  atomic.Int64
}

// Stats is a point-in-time view of a Log for metrics.
type Stats struct {
	LogStartOffset int64
	LogEndOffset   int64
	Segments       int
	Bytes          int64 // bytes of all stores
	// Counters since Open.
	Fsyncs                 uint64 // store fsyncs
	CorruptRecords         uint64 // corrupt records found by recovery or reads
	IndexRebuilds          uint64 // indexes rebuilt from their store at Open
	RecoveryTruncatedBytes int64  // torn tail bytes cut at Open
	Rolls                  uint64
	Truncations            uint64
	DeletedSegments        uint64 // by retention or DeleteBefore
	NoSpaceErrors          uint64 // writes refused for lack of space
	Compactions            uint64 // cleans that swapped segments in (Compact)
	CompactedBytes         int64  // store bytes those cleans removed
}

// Stats returns the log's current figures.
func (l *Log) Stats() Stats {
	return Stats{
		LogStartOffset:         l.LogStartOffset(),
		LogEndOffset:           l.LogEndOffset(),
		Segments:               len(l.segs.Load().segs),
		Bytes:                  l.Size(),
		Fsyncs:                 l.stats.fsyncs.Load(),
		CorruptRecords:         l.stats.corruptRecords.Load(),
		IndexRebuilds:          l.stats.indexRebuilds.Load(),
		RecoveryTruncatedBytes: l.stats.truncatedBytes.Load(),
		Rolls:                  l.stats.rolls.Load(),
		Truncations:            l.stats.truncations.Load(),
		DeletedSegments:        l.stats.deletedSegments.Load(),
		NoSpaceErrors:          l.stats.noSpaceErrors.Load(),
		Compactions:            l.stats.compactions.Load(),
		CompactedBytes:         l.stats.compactedBytes.Load(),
	}
}
