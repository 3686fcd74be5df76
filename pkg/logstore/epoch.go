package logstore

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
)

// epochFileName is the leader-epoch checkpoint in a log directory.
const epochFileName = "leader-epoch-checkpoint"

// epochFileMagic is the first line of the leader-epoch checkpoint; the
// first format (version 1) had no checksum line and is still read.
const (
	epochFileMagic   = "strata-leader-epochs 2"
	epochFileMagicV1 = "strata-leader-epochs 1"
)

// maxEpochFileBytes bounds what Open reads of the leader-epoch checkpoint.
const maxEpochFileBytes = 4 << 20

// EpochEntry says that leader epoch Epoch wrote its first record at
// StartOffset.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// epochs is the leader-epoch cache: entries with strictly increasing epochs
// and non-decreasing start offsets. Its owner persists it.
type epochs struct {
	entries []EpochEntry
}

func (c *epochs) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].Epoch
}

// assign records that epoch starts at start; it reports whether the cache
// changed. The caller has checked that epoch >= latest.
func (c *epochs) assign(epoch int32, start int64) bool {
	if epoch <= c.latest() {
		return false
	}
	c.entries = append(c.entries, EpochEntry{Epoch: epoch, StartOffset: start})
	return true
}

// truncateFrom drops the entries starting at or after off (the log was
// truncated to off).
func (c *epochs) truncateFrom(off int64) bool {
	i := len(c.entries)
	for i > 0 && c.entries[i-1].StartOffset >= off {
		i--
	}
	changed := i != len(c.entries)
	c.entries = c.entries[:i]
	return changed
}

// truncateBefore drops epochs that ended before start (the log now begins at
// start) and moves the first remaining entry's start up to start.
func (c *epochs) truncateBefore(start int64) bool {
	changed := false
	for len(c.entries) > 1 && c.entries[1].StartOffset <= start {
		c.entries = c.entries[1:]
		changed = true
	}
	if len(c.entries) > 0 && c.entries[0].StartOffset < start {
		c.entries[0].StartOffset = start
		changed = true
	}
	return changed
}

// endOffsetFor answers OffsetForLeaderEpoch (KIP-101/279): the largest epoch
// <= e and where it ends (the next epoch's start, or leo for the latest).
func (c *epochs) endOffsetFor(e int32, leo int64) (int32, int64) {
	i, found := slices.BinarySearchFunc(c.entries, e, func(en EpochEntry, t int32) int {
		switch {
		case en.Epoch < t:
			return -1
		case en.Epoch > t:
			return 1
		}
		return 0
	})
	if !found {
		i-- // the largest epoch below e
	}
	if i < 0 {
		return -1, -1
	}
	if i == len(c.entries)-1 {
		return c.entries[i].Epoch, leo
	}
	return c.entries[i].Epoch, c.entries[i+1].StartOffset
}

// encode renders the checkpoint file: the magic line, the count, one
// "epoch start" line per entry, and "crc32c <hex>" of every byte before it,
// so that a flipped digit is found rather than read as another epoch.
func (c *epochs) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n%d\n", epochFileMagic, len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	fmt.Fprintf(&b, "crc32c %08x\n", crc32.Checksum(b.Bytes(), castagnoli))
	return b.Bytes()
}

// decodeEpochs parses a checkpoint file, checking its checksum and that
// epochs increase and start offsets do not decrease.
func decodeEpochs(data []byte) ([]EpochEntry, error) {
	if bytes.HasPrefix(data, []byte(epochFileMagic+"\n")) {
		body, sum, ok := cutChecksumLine(data)
		if !ok || crc32.Checksum(body, castagnoli) != sum {
			return nil, fmt.Errorf("logstore: %s: checksum mismatch", epochFileName)
		}
		data = body
	} else if !bytes.HasPrefix(data, []byte(epochFileMagicV1+"\n")) {
		return nil, fmt.Errorf("logstore: %s: bad header", epochFileName)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Scan() // the magic line, checked above
	if !sc.Scan() {
		return nil, fmt.Errorf("logstore: %s: missing count", epochFileName)
	}
	n, err := strconv.Atoi(sc.Text())
	if err != nil || n < 0 || n > len(data) {
		return nil, fmt.Errorf("logstore: %s: bad count %q", epochFileName, sc.Text())
	}
	out := make([]EpochEntry, 0, n)
	for range n {
		if !sc.Scan() {
			return nil, fmt.Errorf("logstore: %s: %d entries, want %d", epochFileName, len(out), n)
		}
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			return nil, fmt.Errorf("logstore: %s: bad entry %q", epochFileName, sc.Text())
		}
		ep, err1 := strconv.ParseInt(f[0], 10, 32)
		start, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || ep < 0 || start < 0 {
			return nil, fmt.Errorf("logstore: %s: bad entry %q", epochFileName, sc.Text())
		}
		if k := len(out); k > 0 && (int32(ep) <= out[k-1].Epoch || start < out[k-1].StartOffset) {
			return nil, fmt.Errorf("logstore: %s: entry %q out of order", epochFileName, sc.Text())
		}
		out = append(out, EpochEntry{Epoch: int32(ep), StartOffset: start})
	}
	if sc.Scan() {
		return nil, fmt.Errorf("logstore: %s: trailing data", epochFileName)
	}
	return out, nil
}

// cutChecksumLine splits the "crc32c <hex>\n" last line off a checkpoint.
func cutChecksumLine(data []byte) (body []byte, sum uint32, ok bool) {
	const prefix, line = "crc32c ", len("crc32c 01234567\n")
	if len(data) < line || data[len(data)-1] != '\n' {
		return nil, 0, false
	}
	last := data[len(data)-line:]
	if !bytes.HasPrefix(last, []byte(prefix)) {
		return nil, 0, false
	}
	v, err := strconv.ParseUint(string(last[len(prefix):line-1]), 16, 32)
	if err != nil {
		return nil, 0, false
	}
	return data[:len(data)-line], uint32(v), true
}
