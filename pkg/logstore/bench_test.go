package logstore

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// benchPolicies are the fsync policies every append benchmark runs under;
// the policy is part of each benchmark's name.
var benchPolicies = []SyncPolicy{
	{Mode: SyncNever},
	{Mode: SyncInterval, Interval: 100 * time.Millisecond},
	{Mode: SyncAlways},
}

func benchLog(b *testing.B, o Options) *Log {
	b.Helper()
	o.Logger = zap.NewNop()
	if o.RetentionBytes == 0 {
		o.RetentionBytes = 1 << 30 // keep the disk footprint bounded
	}
	l, err := Open(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
	})
	return l
}

func benchBatch(size, n int) []Record {
	p := make([]byte, size)
	for i := range p {
		p[i] = byte(i)
	}
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Timestamp: 1_700_000_000_000, Payload: p}
	}
	return recs
}

// BenchmarkAppend: one appender, record size x batch size x fsync policy.
// One op is one batch; bytes are frame bytes written.
func BenchmarkAppend(b *testing.B) {
	for _, p := range benchPolicies {
		for _, size := range []int{100, 1024} {
			for _, batch := range []int{1, 16, 256} {
				name := fmt.Sprintf("fsync=%s/size=%d/batch=%d", p, size, batch)
				b.Run(name, func(b *testing.B) {
					l := benchLog(b, Options{Sync: p})
					recs := benchBatch(size, batch)
					b.SetBytes(int64(batch * FrameSize(size)))
					b.ReportAllocs()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := l.Append(0, recs); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "records/s")
				})
			}
		}
	}
}

// BenchmarkGroupCommit: fsync=always, 1 KiB records; many concurrent
// appenders share fsyncs. One op is one batch by one appender.
func BenchmarkGroupCommit(b *testing.B) {
	for _, c := range []struct{ appenders, batch int }{{1, 1}, {16, 16}} {
		b.Run(fmt.Sprintf("fsync=always/appenders=%d/batch=%d", c.appenders, c.batch), func(b *testing.B) {
			l := benchLog(b, Options{Sync: SyncPolicy{Mode: SyncAlways}})
			recs := benchBatch(1024, c.batch)
			b.SetBytes(int64(c.batch * FrameSize(1024)))
			b.ReportAllocs()
			b.ResetTimer()
			runAppenders(b, l, c.appenders, recs)
			b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(l.Stats().Fsyncs), "fsyncs")
		})
	}
}

// BenchmarkRecoveryPoint is the cost of keeping the recovery point current
// with every fsync (a 20-byte write to the page cache per group commit, and
// the checkpoint's own fsync at most once a second) against leaving it
// where the last roll put it: fsync=always, 1 KiB records, side by side.
func BenchmarkRecoveryPoint(b *testing.B) {
	for _, c := range []struct{ appenders, batch int }{{1, 1}, {16, 16}} {
		for _, static := range []bool{false, true} {
			rp := map[bool]string{false: "follows-fsync", true: "static"}[static]
			b.Run(fmt.Sprintf("fsync=always/appenders=%d/batch=%d/recovery-point=%s", c.appenders, c.batch, rp), func(b *testing.B) {
				l := benchLog(b, Options{Sync: SyncPolicy{Mode: SyncAlways}, staticRecoveryPoint: static})
				recs := benchBatch(1024, c.batch)
				b.SetBytes(int64(c.batch * FrameSize(1024)))
				b.ReportAllocs()
				b.ResetTimer()
				runAppenders(b, l, c.appenders, recs)
				b.ReportMetric(float64(b.N*c.batch)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// runAppenders splits b.N appends of recs among n goroutines.
func runAppenders(b *testing.B, l *Log, n int, recs []Record) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for a := 0; a < n; a++ {
		k := b.N / n
		if a < b.N%n {
			k++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < k; i++ {
				if _, err := l.Append(0, recs); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// fillLog writes total bytes of 1 KiB records into 16 MiB segments (all
// but the last one sealed and read through mmap).
func fillLog(b *testing.B, total int) *Log {
	b.Helper()
	l := benchLog(b, Options{MaxSegmentBytes: 16 << 20})
	recs := benchBatch(1024, 256)
	for l.Size() < int64(total) {
		if _, err := l.Append(0, recs); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkReadSequential: Reader.Next from the start over 1 KiB records in
// the page cache. One op is one record; bytes are payload bytes.
func BenchmarkReadSequential(b *testing.B) {
	b.Run("size=1024", func(b *testing.B) {
		l := fillLog(b, 128<<20)
		r, err := l.NewReader(0)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f, err := r.Next()
			if errors.Is(err, io.EOF) {
				b.StopTimer()
				if err := r.Close(); err != nil {
					b.Fatal(err)
				}
				if r, err = l.NewReader(0); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				i--
				continue
			}
			if err != nil || len(f.Payload) != 1024 {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		b.StopTimer()
		if err := r.Close(); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkReadRandom: Log.Read at uniformly random offsets (1 KiB records,
// page cache). One op is one record.
func BenchmarkReadRandom(b *testing.B) {
	b.Run("size=1024", func(b *testing.B) {
		l := fillLog(b, 64<<20)
		end := l.LogEndOffset()
		rng := rand.New(rand.NewPCG(1, 2))
		b.SetBytes(1024)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := l.Read(rng.Int64N(end)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	})
}
