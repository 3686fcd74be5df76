package logstore

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// castagnoli is the CRC-32C table; it is never written after creation.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	// frameHeaderSize is the bytes of a frame before its payload.
	frameHeaderSize = 24
	// frameLenSize is the size of the length prefix; the length counts the
	// bytes after it.
	frameLenSize = 4
	// frameMinLen is the smallest valid length prefix (an empty payload).
	frameMinLen = frameHeaderSize - frameLenSize
)

// Record is one record given to Append. Payload is opaque (the broker stores
// a protobuf-encoded record there). Timestamp is unix milliseconds.
type Record struct {
	Timestamp int64
	Payload   []byte
}

// Frame is one stored record as read back. Payload and Raw alias a buffer
// owned by the caller or the reader; valid until the next call on the reader.
type Frame struct {
	Offset    int64
	Timestamp int64
	Payload   []byte
	Raw       []byte // the whole on-disk frame: [len][crc][offset][ts][payload]
}

// FrameSize is the on-disk size of a frame carrying payloadLen bytes.
func FrameSize(payloadLen int) int { return frameHeaderSize + payloadLen }

// AppendFrame encodes one frame onto dst and returns the extended slice.
//
// Frame layout, big-endian, 24 header bytes then the payload:
//
//	 0        4        8                16               24
//	+--------+--------+----------------+----------------+-------------+
//	| length |  crc   |     offset     |   timestamp    |   payload   |
//	|  u32   |  u32   |      u64       |   i64 (ms)     |   opaque    |
//	+--------+--------+----------------+----------------+-------------+
//
// length counts the bytes after itself (20 + len(payload)); crc is the
// CRC-32C (Castagnoli) of every byte after itself (offset, timestamp,
// payload). A zero-filled region decodes as length 0, which is invalid, so
// preallocated or torn zeros never read as records.
func AppendFrame(dst []byte, offset, timestamp int64, payload []byte) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameMinLen+len(payload)))
	dst = append(dst, 0, 0, 0, 0) // crc, filled below
	dst = binary.BigEndian.AppendUint64(dst, uint64(offset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(timestamp))
	dst = append(dst, payload...)
	crc := crc32.Checksum(dst[start+8:], castagnoli)
	binary.BigEndian.PutUint32(dst[start+4:], crc)
	return dst
}

// frameLen validates a length prefix against maxPayload before anything is
// allocated and returns the whole frame size.
func frameLen(prefix uint32, maxPayload int) (int, error) {
	if prefix < frameMinLen {
		return 0, fmt.Errorf("length prefix %d below the %d-byte minimum", prefix, frameMinLen)
	}
	if uint64(prefix) > uint64(frameMinLen)+uint64(maxPayload) {
		return 0, fmt.Errorf("length prefix %d above the %d-byte maximum: %w", prefix, frameMinLen+maxPayload, ErrRecordTooLarge)
	}
	return frameLenSize + int(prefix), nil
}

// DecodeFrame decodes the frame at the start of b, whose payload may be at
// most maxPayload bytes, and returns it (aliasing b) and its size. A b too
// short for the frame gives io.ErrUnexpectedEOF; a length out of range or a
// checksum mismatch gives an error wrapping ErrCorrupt.
func DecodeFrame(b []byte, maxPayload int) (Frame, int, error) {
	if len(b) < frameHeaderSize {
		return Frame{}, 0, io.ErrUnexpectedEOF
	}
	n, err := frameLen(binary.BigEndian.Uint32(b), maxPayload)
	if err != nil {
		return Frame{}, 0, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if len(b) < n {
		return Frame{}, 0, io.ErrUnexpectedEOF
	}
	raw := b[:n:n]
	if crc32.Checksum(raw[8:], castagnoli) != binary.BigEndian.Uint32(raw[4:]) {
		return Frame{}, 0, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return Frame{
		Offset:    int64(binary.BigEndian.Uint64(raw[8:])),
		Timestamp: int64(binary.BigEndian.Uint64(raw[16:])),
		Payload:   raw[frameHeaderSize:],
		Raw:       raw,
	}, n, nil
}
