package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// flipMiddleRecord flips one payload byte of the middle record of a sealed
// segment in the middle of partition directory dir (neither the first
// segment nor the active one) and returns the segment's file name and the
// record's offset.
func flipMiddleRecord(tb testing.TB, dir string) (string, int64) {
	tb.Helper()
	// Frame layout (pkg/logstore/frame.go): u32 length of what follows,
	// u32 crc, u64 offset, i64 timestamp, payload.
	const headerSize, lenSize = 24, 4
	stores, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		tb.Fatal(err)
	}
	slices.Sort(stores)
	if len(stores) < 4 {
		tb.Fatalf("%d segments in %s, want at least 4", len(stores), dir)
	}
	name := stores[(len(stores)-1)/2]
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	var frames []int64
	for pos := int64(0); pos+headerSize <= int64(len(b)); {
		n := int64(binary.BigEndian.Uint32(b[pos:]))
		if n == 0 {
			break
		}
		frames = append(frames, pos)
		pos += lenSize + n
	}
	if len(frames) < 3 {
		tb.Fatalf("%d frames in %s, want at least 3", len(frames), name)
	}
	pos := frames[len(frames)/2]
	b[pos+headerSize+3] ^= 0x10
	if err := os.WriteFile(name, b, 0o644); err != nil {
		tb.Fatal(err)
	}
	return filepath.Base(name), int64(binary.BigEndian.Uint64(b[pos+8:]))
}

// TestConsumeAroundACorruptRecord is the CLI side of reproduction 3 of the
// storage-faults issue: with one record of a sealed segment in the middle of
// the log damaged, `strata consume --from 0 -n 1` prints offset 0, a full
// consume prints every record before the damage and then fails naming the
// damaged file, and a consume from the next offset reads to the end.
func TestConsumeAroundACorruptRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real broker")
	}
	data, addr := t.TempDir(), freeAddr(t)
	brokerArgs := []string{"--data-dir", data, "--listen", addr, "--log-level", "error", "--metrics-listen", "", "--insecure-no-auth"}
	ctxFile := filepath.Join(t.TempDir(), "ctx.json")
	run := func(args ...string) (string, string, int) {
		return cliWith(t, ctxFile, "", append([]string{"--brokers", addr, "--insecure"}, args...)...)
	}
	value := func(off int64) string { return fmt.Sprintf("%06d-%s", off, strings.Repeat("x", 100)) }
	lines := func(from, to int64) string {
		var s strings.Builder
		for off := from; off < to; off++ {
			s.WriteString(value(off) + "\n")
		}
		return s.String()
	}
	const total, batch = 200, 10

	b := startProc(t, "strata-broker", addr, brokerBin, brokerArgs...)
	mustCLI(t, ctxFile, "", "--brokers", addr, "--insecure", "topic", "create", "flip", "--partitions", "1",
		"--config", "segment.bytes=4096", "--config", "max.record.bytes=1024", "--config", "fsync=never")
	// Small produces: the segments roll between batches.
	for base := int64(0); base < total; base += batch {
		mustCLI(t, ctxFile, lines(base, base+batch), "--brokers", addr, "--insecure", "produce", "flip", "--partition", "0")
	}
	b.stop(t)
	file, damaged := flipMiddleRecord(t, filepath.Join(data, "topics", "flip", "0"))
	startProc(t, "strata-broker", addr, brokerBin, brokerArgs...)

	t.Run("from 0, one record", func(t *testing.T) {
		out, errs, code := run("consume", "flip", "--from", "0", "-n", "1")
		if code != 0 || out != lines(0, 1) {
			t.Fatalf("exit %d, stdout %q, stderr %q; want offset 0's record", code, out, errs)
		}
	})
	t.Run("from 0 to the end stops at the damage", func(t *testing.T) {
		out, errs, code := run("consume", "flip", "--from", "0")
		if code != 1 || out != lines(0, damaged) || !strings.Contains(errs, "DataLoss") || !strings.Contains(errs, file) {
			t.Fatalf("exit %d, %d bytes of stdout, stderr %q; want exit 1, the records before offset %d and DataLoss naming %s",
				code, len(out), errs, damaged, file)
		}
	})
	t.Run("from after the damage to the end", func(t *testing.T) {
		out, errs, code := run("consume", "flip", "--from", fmt.Sprint(damaged+1))
		if code != 0 || out != lines(damaged+1, total) {
			t.Fatalf("exit %d, %d bytes of stdout, stderr %q; want the records after offset %d", code, len(out), errs, damaged)
		}
	})
}
