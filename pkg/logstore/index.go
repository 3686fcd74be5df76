package logstore

import "encoding/binary"

// indexEntrySize is the size of one index entry.
const indexEntrySize = 12

// putIndexEntry encodes one index entry into b[:12].
//
// Entry layout, big-endian: [u32 offset - segment base][u64 store position].
// Offsets in a segment are consecutive from its base, so entry i describes
// offset base+i and a lookup is one 12-byte read at i*12; the relative offset
// is stored anyway so recovery can tell a real entry from preallocated zeros.
// A compacted segment's index is sparse (one entry per surviving record,
// relative offsets strictly increasing): see segment.searchSparse.
func putIndexEntry(b []byte, rel uint32, pos int64) {
	binary.BigEndian.PutUint32(b, rel)
	binary.BigEndian.PutUint64(b[4:], uint64(pos))
}

// appendIndexEntry appends one encoded entry to dst.
func appendIndexEntry(dst []byte, rel uint32, pos int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, rel)
	return binary.BigEndian.AppendUint64(dst, uint64(pos))
}

// parseIndexEntry decodes the entry in b[:12].
func parseIndexEntry(b []byte) (rel uint32, pos int64) {
	return binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:]))
}
