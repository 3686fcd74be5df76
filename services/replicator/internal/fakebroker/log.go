package fakebroker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Record is one record of a fake log: the epoch it was written in and its
// value (the frame payload).
type Record struct {
	Epoch int32
	Value string
}

// EpochEntry says that leader epoch Epoch wrote its first record at Start.
type EpochEntry struct {
	Epoch int32
	Start int64
}

// plog is one partition's log: records from start, and the leader-epoch
// cache with logstore's semantics (pkg/logstore/epoch.go).
type plog struct {
	start  int64
	recs   []Record
	epochs []EpochEntry
}

func (l *plog) leo() int64 { return l.start + int64(len(l.recs)) }

func (l *plog) latestEpoch() int32 {
	if len(l.epochs) == 0 {
		return -1
	}
	return l.epochs[len(l.epochs)-1].Epoch
}

func (l *plog) append(recs ...Record) {
	for _, r := range recs {
		if r.Epoch > l.latestEpoch() {
			l.epochs = append(l.epochs, EpochEntry{Epoch: r.Epoch, Start: l.leo()})
		}
		l.recs = append(l.recs, r)
	}
}

// endOffsetFor is OffsetForLeaderEpoch on this log: the largest epoch <= e
// and where it ends (the next epoch's start, or the log end for the latest).
func (l *plog) endOffsetFor(e int32) (int32, int64) {
	i := len(l.epochs) - 1
	for i >= 0 && l.epochs[i].Epoch > e {
		i--
	}
	switch {
	case i < 0:
		return -1, -1
	case i == len(l.epochs)-1:
		return l.epochs[i].Epoch, l.leo()
	default:
		return l.epochs[i].Epoch, l.epochs[i+1].Start
	}
}

// truncate removes offsets >= off; at or below the start it empties the
// log and restarts it at off, as logstore does.
func (l *plog) truncate(off int64) {
	if off >= l.leo() {
		return
	}
	if off <= l.start {
		l.reset(off)
		return
	}
	l.recs = l.recs[:off-l.start]
	l.epochs = slices.DeleteFunc(l.epochs, func(e EpochEntry) bool { return e.Start >= off })
}

func (l *plog) reset(off int64) {
	l.start, l.recs, l.epochs = off, nil, nil
}

// frames encodes up to max records from off, all of one epoch, in the
// store's frame layout: [u32 len][u32 crc32c][u64 offset][i64 ts][payload].
func (l *plog) frames(off int64, max int) (frames []byte, n int, epoch int32) {
	i := int(off - l.start)
	if i >= len(l.recs) {
		return nil, 0, -1
	}
	epoch = l.recs[i].Epoch
	for ; i < len(l.recs) && n < max && l.recs[i].Epoch == epoch; i++ {
		frames = appendFrame(frames, l.start+int64(i), l.recs[i].Value)
		n++
	}
	return frames, n, epoch
}

func appendFrame(dst []byte, offset int64, value string) []byte {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, uint32(20+len(value)))
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint64(dst, uint64(offset))
	dst = binary.BigEndian.AppendUint64(dst, 0)
	dst = append(dst, value...)
	binary.BigEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+8:], castagnoli))
	return dst
}

type frame struct {
	offset int64
	value  string
}

var errBadFrame = errors.New("fakebroker: bad frame")

func decodeFrames(b []byte) ([]frame, error) {
	var out []frame
	for len(b) > 0 {
		if len(b) < 24 {
			return nil, fmt.Errorf("%w: %d trailing bytes", errBadFrame, len(b))
		}
		n := int(binary.BigEndian.Uint32(b))
		if n < 20 || 4+n > len(b) {
			return nil, fmt.Errorf("%w: length %d", errBadFrame, n)
		}
		if crc32.Checksum(b[8:4+n], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
			return nil, fmt.Errorf("%w: crc", errBadFrame)
		}
		out = append(out, frame{offset: int64(binary.BigEndian.Uint64(b[8:])), value: string(b[24 : 4+n])})
		b = b[4+n:]
	}
	return out, nil
}
