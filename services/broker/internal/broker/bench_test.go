package broker

import (
	"testing"

	"go.uber.org/zap"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// BenchmarkConsumeStream reads 1 KiB records over loopback TCP with
// ConsumeStream (fsync=never; the records are produced before the timer).
func BenchmarkConsumeStream(b *testing.B) {
	cfg := testConfig(b.TempDir())
	cfg.MetricsListen = ""
	br, err := Start(b.Context(), cfg, zap.NewNop(), Options{Getenv: func(string) string { return "" }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := br.Shutdown(b.Context()); err != nil {
			b.Error(err)
		}
	})
	c := dial(b, br)
	ctx := ctxT(b)
	createTopic(b, c, "bench", nil)
	value := make([]byte, 1024)
	batch := make([]*stratav1.Record, 500)
	for i := range batch {
		batch[i] = &stratav1.Record{Value: value}
	}
	for n := 0; n < b.N; n += len(batch) {
		if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "bench", Records: batch}); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(value)))
	b.ReportAllocs()
	b.ResetTimer()
	s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	for got := 0; got < b.N; {
		m, err := s.Recv()
		if err != nil {
			b.Fatal(err)
		}
		got += len(m.Records)
	}
}
