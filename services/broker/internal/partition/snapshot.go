package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// Producer state snapshots, as Kafka's .snapshot files: written in the
// partition's directory when the log rolls a segment and at Close, named
// by the offset they are taken at, zero-padded to 20 digits
// (00000000000000001234.snapshot): the state after every record below
// that offset. A broker opening the log loads the newest snapshot at or
// below its log end and scans the records after it.
//
// Layout, big-endian:
//
//	[4]  magic "SPS1"
//	[u32 crc32c of everything after it]
//	[u64 offset][u32 producer count]
//	per producer: [i64 id][i32 epoch][i64 last timestamp ms][u8 range count]
//	  per range:  [i64 first sequence][i64 last sequence][i64 first offset]
const (
	snapshotSuffix = ".snapshot"
	snapshotMagic  = "SPS1"
	// snapshotsKept is how many snapshots stay after a new one is written.
	snapshotsKept = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadSnapshot: a snapshot file that does not decode.
var errBadSnapshot = errors.New("partition: bad producer snapshot")

func snapshotName(offset int64) string { return fmt.Sprintf("%020d%s", offset, snapshotSuffix) }

// encodeSnapshot is the file content of t at offset.
func encodeSnapshot(t *producerTable, offset int64) []byte {
	ids := make([]int64, 0, len(t.m))
	for id := range t.m {
		ids = append(ids, id)
	}
	slices.Sort(ids) // one content per state
	b := make([]byte, 0, 20+len(ids)*(21+ProducerWindow*24))
	b = append(b, snapshotMagic...)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(offset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := t.m[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint32(b, uint32(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastTs))
		b = append(b, byte(e.n))
		for _, r := range e.ranges() {
			b = binary.BigEndian.AppendUint64(b, uint64(r.first))
			b = binary.BigEndian.AppendUint64(b, uint64(r.last))
			b = binary.BigEndian.AppendUint64(b, uint64(r.offset))
		}
	}
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

// decodeSnapshot parses a snapshot file; every length is checked against
// the bytes present before anything is allocated.
func decodeSnapshot(b []byte) (*producerTable, int64, error) {
	if len(b) < 20 || string(b[:4]) != snapshotMagic {
		return nil, 0, fmt.Errorf("%w: no header", errBadSnapshot)
	}
	if crc32.Checksum(b[8:], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, fmt.Errorf("%w: checksum mismatch", errBadSnapshot)
	}
	offset := int64(binary.BigEndian.Uint64(b[8:]))
	count := binary.BigEndian.Uint32(b[16:])
	rest := b[20:]
	if uint64(count)*21 > uint64(len(rest)) {
		return nil, 0, fmt.Errorf("%w: %d producers in %d bytes", errBadSnapshot, count, len(rest))
	}
	t := newProducerTable()
	for range count {
		if len(rest) < 21 {
			return nil, 0, fmt.Errorf("%w: truncated producer", errBadSnapshot)
		}
		id := int64(binary.BigEndian.Uint64(rest))
		e := &producerEntry{epoch: int32(binary.BigEndian.Uint32(rest[8:])), lastTs: int64(binary.BigEndian.Uint64(rest[12:]))}
		n := int(rest[20])
		rest = rest[21:]
		if n > ProducerWindow || len(rest) < n*24 {
			return nil, 0, fmt.Errorf("%w: producer %d: %d ranges", errBadSnapshot, id, n)
		}
		for range n {
			r := seqRange{first: int64(binary.BigEndian.Uint64(rest)), last: int64(binary.BigEndian.Uint64(rest[8:])), offset: int64(binary.BigEndian.Uint64(rest[16:]))}
			if r.last < r.first {
				return nil, 0, fmt.Errorf("%w: producer %d: range [%d, %d]", errBadSnapshot, id, r.first, r.last)
			}
			e.push(r)
			rest = rest[24:]
		}
		t.m[id] = e
	}
	if len(rest) != 0 {
		return nil, 0, fmt.Errorf("%w: %d trailing bytes", errBadSnapshot, len(rest))
	}
	return t, offset, nil
}

// listSnapshots returns the offsets of the snapshot files in dir, oldest first.
func listSnapshots(dir string) ([]int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var offs []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), snapshotSuffix)
		if !ok || e.IsDir() {
			continue
		}
		off, err := strconv.ParseInt(name, 10, 64)
		if err != nil || off < 0 {
			continue
		}
		offs = append(offs, off)
	}
	slices.Sort(offs)
	return offs, nil
}

// writeSnapshot writes t at offset (temp file, fsync, rename, fsync dir)
// and removes all but the newest snapshotsKept snapshots.
func writeSnapshot(dir string, t *producerTable, offset int64) error {
	if err := atomicfile.Write(filepath.Join(dir, snapshotName(offset)), encodeSnapshot(t, offset), 0o644); err != nil {
		return fmt.Errorf("write producer snapshot: %w", err)
	}
	offs, err := listSnapshots(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, off := range offs[:max(0, len(offs)-snapshotsKept)] {
		if err := os.Remove(filepath.Join(dir, snapshotName(off))); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeSnapshotsAfter removes the snapshots taken past offset (the log was
// truncated to it); every snapshot when offset < 0.
func removeSnapshotsAfter(dir string, offset int64) error {
	offs, err := listSnapshots(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, off := range offs {
		if off > offset || offset < 0 {
			if err := os.Remove(filepath.Join(dir, snapshotName(off))); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
