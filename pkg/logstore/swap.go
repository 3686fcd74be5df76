package logstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
)

const (
	// descSuffix names a compacted segment's descriptor.
	descSuffix = ".compacted"
	// cleanedSuffix marks a file of a compacted segment being written:
	// not part of the log until renamed (swapIn).
	cleanedSuffix = ".cleaned"
	// swapSuffix marks a file of a compacted segment whose swap committed:
	// recovery finishes installing it.
	swapSuffix = ".swap"

	descSize  = 40
	descMagic = 0x53434d31 // "SCM1"
)

func descName(base int64) string { return fmt.Sprintf("%020d%s", base, descSuffix) }

// segmentFiles are a segment's file names in the order a swap renames
// them: the descriptor last, so that while a descriptor is still under its
// .swap name the swap of that segment is unfinished.
func segmentFiles(base int64) [3]string {
	return [3]string{indexName(base), storeName(base), descName(base)}
}

// segDesc is a compacted segment's descriptor, <base>.compacted. A store
// with a descriptor is a compacted segment: offsets [base, end) of which
// only some are present, records frames in bytes bytes, in increasing
// offset order. Recovery accepts gaps between its frames (never in a
// segment without one) and checks it holds what the descriptor says.
//
// Layout, 40 bytes, big-endian:
//
//	 0        4        8                16               24               32               40
//	+--------+--------+----------------+----------------+----------------+----------------+
//	| magic  |  crc   |      base      |      end       |     bytes      |    records     |
//	|  u32   |  u32   |      u64       |      u64       |      u64       |      u64       |
//	+--------+--------+----------------+----------------+----------------+----------------+
//
// magic is "SCM1"; crc is the CRC-32C of the 32 bytes after it.
type segDesc struct {
	base, end, bytes, records int64
}

func (d segDesc) encode() []byte {
	b := make([]byte, descSize)
	binary.BigEndian.PutUint32(b, descMagic)
	binary.BigEndian.PutUint64(b[8:], uint64(d.base))
	binary.BigEndian.PutUint64(b[16:], uint64(d.end))
	binary.BigEndian.PutUint64(b[24:], uint64(d.bytes))
	binary.BigEndian.PutUint64(b[32:], uint64(d.records))
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

// decodeDesc checks and decodes a descriptor of the segment at base.
func decodeDesc(b []byte, base int64) (segDesc, error) {
	if len(b) != descSize || binary.BigEndian.Uint32(b) != descMagic {
		return segDesc{}, errors.New("not a compacted-segment descriptor")
	}
	if crc32.Checksum(b[8:], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return segDesc{}, errors.New("descriptor checksum mismatch")
	}
	d := segDesc{
		base:    int64(binary.BigEndian.Uint64(b[8:])),
		end:     int64(binary.BigEndian.Uint64(b[16:])),
		bytes:   int64(binary.BigEndian.Uint64(b[24:])),
		records: int64(binary.BigEndian.Uint64(b[32:])),
	}
	if d.base != base || d.end <= d.base || d.bytes < 0 || d.records < 0 || d.records > d.end-d.base {
		return segDesc{}, fmt.Errorf("descriptor out of range: base %d, end %d, %d bytes, %d records", d.base, d.end, d.bytes, d.records)
	}
	return d, nil
}

func readDesc(fsys FS, name string, base int64) (segDesc, error) {
	b, err := readFile(fsys, name, descSize+1)
	if err != nil {
		return segDesc{}, err
	}
	return decodeDesc(b, base)
}

// cleanedWriter writes one compacted segment under its .cleaned names:
// frames go to the store through a buffer, index entries and the
// descriptor are written by finish, which fsyncs all three files. The
// directory is synced by the caller once every segment of a swap is
// written.
type cleanedWriter struct {
	fsys  FS
	dir   string
	desc  segDesc
	old   []*segment // the segments it replaces, oldest first; old[0].base == desc.base
	maxTs int64

	store   File
	buf     []byte // store bytes not written yet, from position desc.bytes-len(buf)
	entries []byte
	done    bool
}

func cleanedPath(dir, name string) string { return filepath.Join(dir, name+cleanedSuffix) }

// newCleanedWriter creates the store of a compacted segment covering
// offsets [base, end). A leftover file of that name (from a clean that
// failed and could not remove it) is replaced.
func newCleanedWriter(fsys FS, dir string, base, end int64, old []*segment) (*cleanedWriter, error) {
	w := &cleanedWriter{fsys: fsys, dir: dir, desc: segDesc{base: base, end: end}, old: old, maxTs: math.MinInt64}
	f, err := createExcl(fsys, cleanedPath(dir, storeName(base)))
	if err != nil {
		return nil, err
	}
	w.store = f
	return w, nil
}

// createExcl creates name, removing a leftover of that name first.
func createExcl(fsys FS, name string) (File, error) {
	if err := fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
}

const cleanedBufSize = 1 << 20

// add appends one frame (its raw bytes) carrying offset off.
func (w *cleanedWriter) add(raw []byte, off, ts int64) error {
	w.entries = appendIndexEntry(w.entries, uint32(off-w.desc.base), w.desc.bytes)
	w.buf = append(w.buf, raw...)
	w.desc.bytes += int64(len(raw))
	w.desc.records++
	w.maxTs = max(w.maxTs, ts)
	if len(w.buf) >= cleanedBufSize {
		return w.flush()
	}
	return nil
}

func (w *cleanedWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if _, err := w.store.WriteAt(w.buf, w.desc.bytes-int64(len(w.buf))); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

// copyFrom fills the store with the first n bytes of src, whose index
// entries and good frames are given (a compacted segment cut short).
func (w *cleanedWriter) copyFrom(src io.ReaderAt, n int64, entries []byte, records int64) error {
	buf := make([]byte, min(n, cleanedBufSize))
	for p := int64(0); p < n; {
		m := int(min(int64(len(buf)), n-p))
		if _, err := src.ReadAt(buf[:m], p); err != nil {
			return err
		}
		if _, err := w.store.WriteAt(buf[:m], p); err != nil {
			return err
		}
		p += int64(m)
	}
	w.entries, w.desc.bytes, w.desc.records = entries, n, records
	return w.finish()
}

// finish writes the rest of the store, the index and the descriptor, and
// fsyncs and closes them.
func (w *cleanedWriter) finish() error {
	if err := w.flush(); err != nil {
		return err
	}
	err := errors.Join(w.store.Sync(), w.store.Close())
	w.store, w.done = nil, true
	if err != nil {
		return err
	}
	if err := writeSynced(w.fsys, cleanedPath(w.dir, indexName(w.desc.base)), w.entries); err != nil {
		return err
	}
	return writeSynced(w.fsys, cleanedPath(w.dir, descName(w.desc.base)), w.desc.encode())
}

// abort closes what is open and removes the .cleaned files.
func (w *cleanedWriter) abort() error {
	var errs []error
	if w.store != nil {
		errs = append(errs, w.store.Close())
		w.store = nil
	}
	for _, name := range segmentFiles(w.desc.base) {
		if err := w.fsys.Remove(cleanedPath(w.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// writeSynced creates name with data and fsyncs it.
func writeSynced(fsys FS, name string, data []byte) error {
	f, err := createExcl(fsys, name)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return errors.Join(err, f.Close())
	}
	return errors.Join(f.Sync(), f.Close())
}

// swapIn installs compacted segments, each written and fsynced under its
// .cleaned names with the directory synced after, in place of the
// segments they replace. It is the swap protocol of doc.go:
//
//  1. commit: every .cleaned file is renamed to .swap, and the directory
//     synced. From the first rename on, recovery finishes the swap
//     (recoverSwap); before it, recovery removes the .cleaned files.
//  2. per compacted segment: the replaced segments other than the one at
//     its base are removed (store first), then its index, store and
//     descriptor are renamed over the final names (the descriptor last);
//     then the directory is synced.
//
// Readers keep the replaced segments' mappings until they let go: a
// rename or removal never changes a mapped file.
func swapIn(fsys FS, dir string, segs []*cleanedWriter) error {
	for _, s := range segs {
		for _, name := range segmentFiles(s.desc.base) {
			if err := fsys.Rename(cleanedPath(dir, name), filepath.Join(dir, name+swapSuffix)); err != nil {
				return err
			}
		}
	}
	if err := fsys.SyncDir(dir); err != nil {
		return err
	}
	for _, s := range segs {
		for _, o := range s.old[1:] {
			if err := removeSegmentFiles(fsys, dir, o.base); err != nil {
				return err
			}
		}
		for _, name := range segmentFiles(s.desc.base) {
			if err := fsys.Rename(filepath.Join(dir, name+swapSuffix), filepath.Join(dir, name)); err != nil {
				return err
			}
		}
	}
	return fsys.SyncDir(dir)
}

// recoverSwap runs first at Open: it finishes a swap that committed (a
// .swap file exists: every .cleaned file left is complete, fsynced before
// the commit began) and removes the files of one that did not (.cleaned
// files only). Each step is idempotent, so a crash during recovery is
// recovered again.
func (l *Log) recoverSwap() error {
	fsys, lg := l.fs, l.lg
	ents, err := fsys.ReadDir(l.dir)
	if err != nil {
		return err
	}
	var cleaned, swapped []string
	finals := map[int64][]string{} // base -> final segment file names
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, cleanedSuffix):
			cleaned = append(cleaned, name)
		case strings.HasSuffix(name, swapSuffix):
			swapped = append(swapped, name)
		default:
			if base, ok := segmentFileBase(name); ok {
				finals[base] = append(finals[base], name)
			}
		}
	}
	if len(swapped) == 0 {
		for _, name := range cleaned {
			lg.Info("removing the file of an unfinished compaction", zap.String("file", name))
			if err := fsys.Remove(filepath.Join(l.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	}
	for _, name := range cleaned {
		to := strings.TrimSuffix(name, cleanedSuffix) + swapSuffix
		if err := fsys.Rename(filepath.Join(l.dir, name), filepath.Join(l.dir, to)); err != nil {
			return err
		}
		swapped = append(swapped, to)
	}
	bases := map[int64]bool{}
	for _, name := range swapped {
		if base, ok := segmentFileBase(strings.TrimSuffix(name, swapSuffix)); ok {
			bases[base] = true
		}
	}
	for _, base := range slices.Sorted(maps.Keys(bases)) {
		d, err := readDesc(fsys, filepath.Join(l.dir, descName(base)+swapSuffix), base)
		if err != nil {
			d, err = readDesc(fsys, filepath.Join(l.dir, descName(base)), base)
		}
		end := base + 1
		if err == nil {
			end = d.end
		} else {
			// The descriptor was fsynced before the commit: this is damage.
			// Replace only the segment at base.
			lg.Error("compacted segment's descriptor unreadable; replacing only the segment at its base",
				zap.String("segment", storeName(base)), zap.Error(err))
		}
		lg.Warn("finishing the swap of a compacted segment", zap.String("segment", storeName(base)), zap.Int64("end", end))
		for _, b := range slices.Sorted(maps.Keys(finals)) {
			if b > base && b < end {
				if err := removeSegmentFiles(fsys, l.dir, b); err != nil {
					return err
				}
			}
		}
		for _, name := range segmentFiles(base) {
			err := fsys.Rename(filepath.Join(l.dir, name+swapSuffix), filepath.Join(l.dir, name))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return fsys.SyncDir(l.dir)
}

// segmentFileBase parses the base of a store, index or descriptor name.
func segmentFileBase(name string) (int64, bool) {
	for _, suffix := range []string{storeSuffix, indexSuffix, descSuffix} {
		if strings.HasSuffix(name, suffix) {
			return parseBase(name, suffix)
		}
	}
	return 0, false
}
