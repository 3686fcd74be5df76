package logstore

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// recoveryPointFileName is the recovery-point checkpoint in a log directory.
const recoveryPointFileName = "recovery-point"

// encodeRecoveryPoint renders the checkpoint: [u32 crc32c of the rest][u64
// offset], big-endian. Every offset below it is known to be on stable
// storage.
func encodeRecoveryPoint(off int64) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b[4:], uint64(off))
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	return b
}

func decodeRecoveryPoint(b []byte) (int64, error) {
	if len(b) != 12 {
		return 0, errors.New("logstore: recovery point: bad size")
	}
	if crc32.Checksum(b[4:], castagnoli) != binary.BigEndian.Uint32(b) {
		return 0, errors.New("logstore: recovery point: checksum mismatch")
	}
	off := int64(binary.BigEndian.Uint64(b[4:]))
	if off < 0 {
		return 0, errors.New("logstore: recovery point: negative")
	}
	return off, nil
}
