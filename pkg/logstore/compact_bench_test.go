package logstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/zap"
)

// benchKeyOf is the benchmark's KeyOf: the key is the payload up to '='.
func benchKeyOf(p []byte) ([]byte, bool, error) {
	i := bytes.IndexByte(p, '=')
	if i < 0 {
		return nil, false, errors.New("no key")
	}
	return p[:i], false, nil
}

// BenchmarkCompact is cleaning throughput: one op cleans a freshly written
// 64 MiB log (16 MiB segments, fsync=never, in the page cache) of records
// of size bytes over distinct keys written round-robin (1000 of them, or
// as many as half the records), so all but the last record of each key go. Bytes are the sealed segments' store
// bytes the clean reads and rewrites; the time includes the offset map,
// the rewrite, the fsyncs of the new segments and the swap.
//
//	go test -run '^$' -bench BenchmarkCompact -benchtime 5x ./pkg/logstore
func BenchmarkCompact(b *testing.B) {
	const total = 64 << 20
	for _, c := range []struct {
		size, keys int
		name       string
	}{
		{100, 1000, "1000"},
		{1024, 1000, "1000"},
		{1024, total / FrameSize(1024) / 2, "half"}, // half the records go
	} {
		b.Run(fmt.Sprintf("fsync=never/size=%d/keys=%s", c.size, c.name), func(b *testing.B) {
			b.ReportAllocs()
			var sealed, records int64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				l := benchCompactLog(b, total, c.size, c.keys)
				list := l.segs.Load().segs
				if i == 0 {
					for _, s := range list[:len(list)-1] {
						sealed += s.endPos.Load()
						records += s.endOff.Load() - s.base
					}
					b.SetBytes(sealed)
				}
				b.StartTimer()
				st, err := l.Compact(context.Background(), CompactOptions{KeyOf: benchKeyOf, UpTo: l.LogEndOffset()})
				b.StopTimer()
				if err != nil || st.SegmentsWritten == 0 {
					b.Fatalf("Compact: %+v, %v", st, err)
				}
				if i == 0 {
					b.ReportMetric(float64(st.BytesAfter)/float64(st.BytesBefore), "after/before")
				}
				if err := l.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// benchCompactLog writes total bytes of records of size bytes, keys
// distinct keys round-robin, into 16 MiB segments.
func benchCompactLog(b *testing.B, total, size, keys int) *Log {
	b.Helper()
	l, err := Open(b.TempDir(), Options{MaxSegmentBytes: 16 << 20, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]Record, 256)
	bufs := make([][]byte, len(recs))
	for i := range bufs {
		bufs[i] = make([]byte, size)
		for j := range bufs[i] {
			bufs[i][j] = 'v'
		}
	}
	n := 0
	for l.Size() < int64(total) {
		for i := range recs {
			k := fmt.Sprintf("key-%08d=", n%keys)
			copy(bufs[i], k)
			recs[i] = Record{Timestamp: 1_700_000_000_000, Payload: bufs[i]}
			n++
		}
		if _, err := l.Append(0, recs); err != nil {
			b.Fatal(err)
		}
	}
	return l
}
