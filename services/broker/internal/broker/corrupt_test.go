package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// damage is where a test flipped a byte of a stored record.
type damage struct {
	file   string // the segment's store file name
	pos    int64  // the frame's position in it
	offset int64  // the record's offset
}

// flipPayloadByte flips one payload byte of the middle record of a sealed
// segment in the middle of the partition directory dir (neither the first
// segment nor the active one), and says where.
func flipPayloadByte(tb testing.TB, dir string) damage {
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
	name := stores[(len(stores)-1)/2] // a sealed one, not the first
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
	return damage{file: filepath.Base(name), pos: pos, offset: int64(binary.BigEndian.Uint64(b[pos+8:]))}
}

// corruptValue is the value of the record at offset off in these tests.
func corruptValue(off int64) string { return fmt.Sprintf("%06d-%s", off, strings.Repeat("x", 100)) }

// wantRecords checks that recs are exactly the records [from, to).
func wantRecords(tb testing.TB, recs []*stratav1.Record, from, to int64) {
	tb.Helper()
	if int64(len(recs)) != to-from {
		tb.Fatalf("%d records, want %d (offsets %d..%d)", len(recs), to-from, from, to-1)
	}
	for i, r := range recs {
		off := from + int64(i)
		if r.Offset != off || string(r.Value) != corruptValue(off) {
			tb.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, off, corruptValue(off))
		}
	}
}

// consumeStream reads a ConsumeStream from offset until it ends or has
// delivered the record before until, and returns what it got and how it
// ended (nil when it reached until).
func consumeStream(tb testing.TB, c clients, topic string, offset, until int64) ([]*stratav1.Record, error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(ctxT(tb))
	defer cancel()
	s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: topic,
		Start: &stratav1.ConsumeStreamRequest_Offset{Offset: offset}})
	if err != nil {
		tb.Fatal(err)
	}
	var got []*stratav1.Record
	for {
		m, err := s.Recv()
		if errors.Is(err, io.EOF) {
			tb.Fatalf("stream from %d ended OK after %d records", offset, len(got))
		}
		if err != nil {
			return got, err
		}
		got = append(got, m.Records...)
		if n := len(got); n > 0 && got[n-1].Offset >= until-1 {
			return got, nil
		}
	}
}

// TestCorruptRecordHidesOnlyItself is reproduction 3 of the storage-faults
// issue: one flipped payload byte in a sealed segment in the middle of the
// log. The damaged record answers DataLoss naming its file and position;
// every record before it and after it stays readable.
func TestCorruptRecordHidesOnlyItself(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	b, c := startBroker(t, cfg)
	ctx := ctxT(t)
	createTopic(t, c, "flip", &stratav1.TopicConfig{Partitions: 1, SegmentBytes: 4096, MaxRecordBytes: 1024})
	const total = 200
	for base := int64(0); base < total; base += 10 {
		recs := make([]*stratav1.Record, 10)
		for i := range recs {
			recs[i] = &stratav1.Record{Value: []byte(corruptValue(base + int64(i)))}
		}
		if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "flip", Records: recs}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	d := flipPayloadByte(t, filepath.Join(dir, "topics", "flip", "0"))
	t.Logf("flipped a byte of offset %d (%s position %d)", d.offset, d.file, d.pos)

	b, c = startBroker(t, cfg)
	wantDataLoss := func(t *testing.T, err error) {
		t.Helper()
		st := wantCode(t, err, codes.DataLoss)
		for _, want := range []string{d.file, fmt.Sprintf("position %d", d.pos), fmt.Sprintf("offset %d", d.offset)} {
			if !strings.Contains(st.Message(), want) {
				t.Fatalf("DataLoss message %q does not name %q", st.Message(), want)
			}
		}
	}

	t.Run("stream from 0 delivers every record before the damage, then DataLoss", func(t *testing.T) {
		got, err := consumeStream(t, c, "flip", 0, total)
		wantRecords(t, got, 0, d.offset)
		wantDataLoss(t, err)
	})
	t.Run("consume from 0 answers the records before the damage", func(t *testing.T) {
		r, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "flip", Offset: 0, MaxRecords: total})
		if err != nil {
			t.Fatal(err)
		}
		wantRecords(t, r.Records, 0, d.offset)
		if r.NextOffset != d.offset {
			t.Fatalf("next offset %d, want the damaged %d", r.NextOffset, d.offset)
		}
	})
	t.Run("consume of the damaged offset is DataLoss naming file and position", func(t *testing.T) {
		_, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "flip", Offset: d.offset, MaxRecords: total})
		wantDataLoss(t, err)
	})
	t.Run("stream from after the damage reads to the end", func(t *testing.T) {
		got, err := consumeStream(t, c, "flip", d.offset+1, total)
		if err != nil {
			t.Fatal(err)
		}
		wantRecords(t, got, d.offset+1, total)
	})
	t.Run("consume from after the damage reads to the end", func(t *testing.T) {
		r, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "flip", Offset: d.offset + 1, MaxRecords: total})
		if err != nil {
			t.Fatal(err)
		}
		wantRecords(t, r.Records, d.offset+1, total)
	})
	t.Run("metrics report the damage", func(t *testing.T) {
		body := scrape(t, b)
		if !strings.Contains(body, `strata_broker_log_healthy{partition="0",topic="flip"} 0`) {
			t.Fatalf("metrics do not show the log unhealthy:\n%s", metricLines(body, "flip"))
		}
		if strings.Contains(body, `strata_broker_log_corrupt_records_total{partition="0",topic="flip"} 0`) ||
			!strings.Contains(body, `strata_broker_log_corrupt_records_total{partition="0",topic="flip"}`) {
			t.Fatalf("metrics do not count the corrupt record:\n%s", metricLines(body, "flip"))
		}
	})
}

// metricLines are the lines of a /metrics page about topic.
func metricLines(body, topic string) string {
	var out []string
	for line := range strings.Lines(body) {
		if strings.Contains(line, `topic="`+topic+`"`) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}
