package logstore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// recoveryPointFileName is the recovery-point checkpoint in a log directory.
const recoveryPointFileName = "recovery-point"

const (
	// rpSlotSize is one slot of the checkpoint file.
	rpSlotSize = 20
	// rpFileSize is the checkpoint file: two slots.
	rpFileSize = 2 * rpSlotSize
	// rpLegacySize is the first format: one [u32 crc][u64 offset] record.
	rpLegacySize = 12
	// rpSyncEvery bounds how stale the checkpoint may be on stable storage
	// (after a power loss) while appends keep it current in the page cache
	// (after a process crash).
	rpSyncEvery = time.Second
)

// recoveryPoint is the recovery-point checkpoint: every offset below it is
// known to be on stable storage, so recovery may treat damage below it as
// corruption and only damage at or past it as a torn write (DESIGN §8).
//
// It follows every fsync of the log, so it is written in place, not
// replaced: the file holds two slots, and writes alternate between them.
// Slot layout, big-endian:
//
//	+--------+----------------+----------------+
//	|  crc   |    sequence    |     offset     |
//	|  u32   |      u64       |      u64       |
//	+--------+----------------+----------------+
//
// crc is the CRC-32C of the 16 bytes after it. The valid slot with the
// higher sequence wins, so a write torn by a crash damages only the slot it
// was writing and the other still holds the previous (lower, so safe) value.
// The write itself is not fsynced: a process crash keeps it (the page cache
// survives), and it is fsynced at most every rpSyncEvery and at every roll,
// Sync, Truncate and Close, which bounds how far a power loss can set it
// back. A value set back is still safe: it is lower than what was synced.
type recoveryPoint struct {
	f        File
	seq      uint64
	off      int64
	dirty    bool      // written since its last fsync
	lastSync time.Time // of the file
	buf      [rpSlotSize]byte
	// known says whether Open found a valid checkpoint; a missing or
	// damaged one leaves recovery without the line between crash and
	// corruption (recover.go).
	known bool
}

// openRecoveryPoint opens (creating it if missing) the checkpoint in dir
// and returns it with the offset it holds; a missing or unreadable one
// holds 0, which makes recovery check every segment as if it had crashed.
func openRecoveryPoint(fsys FS, dir string) (*recoveryPoint, error) {
	name := filepath.Join(dir, recoveryPointFileName)
	f, err := fsys.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if f, err = createFile(fsys, name); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	rp := &recoveryPoint{f: f}
	fi, err := f.Stat()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	b := make([]byte, min(fi.Size(), rpFileSize+1))
	if n, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return nil, errors.Join(err, f.Close())
	}
	var ok bool
	rp.seq, rp.off, ok = decodeRecoveryPoint(b)
	rp.known = ok
	if !ok || len(b) != rpFileSize {
		// Rewrite both slots, so that the next write, to one slot, leaves
		// the other valid.
		for i := 0; i < 2; i++ {
			if err := rp.write(rp.off, false); err != nil {
				return nil, errors.Join(err, f.Close())
			}
		}
		if err := errors.Join(f.Truncate(rpFileSize), rp.sync()); err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}
	rp.lastSync = time.Now()
	return rp, nil
}

// decodeRecoveryPoint returns the newest valid slot of a checkpoint file
// (or the legacy 12-byte record) and whether one was valid.
func decodeRecoveryPoint(b []byte) (seq uint64, off int64, ok bool) {
	if len(b) == rpLegacySize {
		if crc32.Checksum(b[4:], castagnoli) != binary.BigEndian.Uint32(b) {
			return 0, 0, false
		}
		off = int64(binary.BigEndian.Uint64(b[4:]))
		return 0, off, off >= 0
	}
	for i := 0; i+rpSlotSize <= len(b) && i < rpFileSize; i += rpSlotSize {
		s := b[i : i+rpSlotSize]
		if crc32.Checksum(s[4:], castagnoli) != binary.BigEndian.Uint32(s) {
			continue
		}
		sq, o := binary.BigEndian.Uint64(s[4:]), int64(binary.BigEndian.Uint64(s[12:]))
		if o < 0 || ok && sq <= seq {
			continue
		}
		seq, off, ok = sq, o, true
	}
	return seq, off, ok
}

// encodeRecoveryPointSlot renders one slot into b.
func encodeRecoveryPointSlot(b *[rpSlotSize]byte, seq uint64, off int64) []byte {
	binary.BigEndian.PutUint64(b[4:], seq)
	binary.BigEndian.PutUint64(b[12:], uint64(off))
	binary.BigEndian.PutUint32(b[:], crc32.Checksum(b[4:], castagnoli))
	return b[:]
}

// write stores off in the next slot, fsyncing the file if sync is set.
func (rp *recoveryPoint) write(off int64, sync bool) error {
	seq := rp.seq + 1
	if _, err := rp.f.WriteAt(encodeRecoveryPointSlot(&rp.buf, seq, off), int64(seq%2)*rpSlotSize); err != nil {
		return err
	}
	rp.seq, rp.off, rp.dirty = seq, off, true
	if sync {
		return rp.sync()
	}
	return nil
}

// sync fsyncs the checkpoint file.
func (rp *recoveryPoint) sync() error {
	if err := rp.f.Sync(); err != nil {
		return err
	}
	rp.dirty, rp.lastSync = false, time.Now()
	return nil
}

// syncDue says whether the checkpoint has waited long enough for an fsync.
func (rp *recoveryPoint) syncDue(now time.Time) bool {
	return rp.dirty && now.Sub(rp.lastSync) >= rpSyncEvery
}

func (rp *recoveryPoint) close() error { return rp.f.Close() }
