package broker

import (
	"bytes"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestQuotasThrottleNotFail: with q lines in the policy, an identity over
// its byte rate is delayed, never refused: three 20 kB batches at
// 20 kB/s take at least two seconds (the first second's bytes are free),
// on the unary produce, the produce stream and the consume paths, and
// every call succeeds. An identity without a quota is not delayed.
func TestQuotasThrottleNotFail(t *testing.T) {
	const rate, batch = 20_000, 20_000
	certs := initCerts(t)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ACLPolicy = writePolicy(t,
		"p, alice, metered, produce, allow",
		"p, alice, metered, consume, allow",
		"p, bob, metered, produce, allow",
		"q, alice, produce, 20000",
		"q, alice, consume, 20000",
	)
	b := startTLSBroker(t, cfg)
	op, alice, bob := dialAs(t, b, certs, "operator"), dialAs(t, b, certs, "alice"), dialAs(t, b, certs, "bob")
	ctx := ctxT(t)
	createTopic(t, op, "metered", nil)
	big := func() []*stratav1.Record { return []*stratav1.Record{{Value: bytes.Repeat([]byte("q"), batch)}} }
	const minPaced = 2*time.Second - 100*time.Millisecond // timer slack

	throttled := func(kind string) float64 {
		return metricValue(t, b, `strata_broker_quota_throttled_requests_total{kind="`+kind+`"}`)
	}

	start := time.Now()
	for i := range 3 {
		if _, err := alice.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "metered", Records: big()}); err != nil {
			t.Fatalf("alice Produce %d: %v (a quota must delay, not fail)", i, err)
		}
	}
	if took := time.Since(start); took < minPaced {
		t.Fatalf("3 x %d bytes at %d B/s took %v, want at least %v", batch, rate, took, minPaced)
	}
	if n := throttled("produce"); n < 2 {
		t.Fatalf("throttled produce requests = %v, want >= 2", n)
	}

	// Over the stream, after waiting out the debt above.
	time.Sleep(3 * time.Second)
	ps, err := alice.log.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for i := range 3 {
		if err := ps.Send(&stratav1.ProduceRequest{Topic: "metered", Records: big(), CorrelationId: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		resp, err := ps.Recv()
		if err != nil || resp.GetError() != nil {
			t.Fatalf("alice ProduceStream answer %d: %v %v", i, err, resp.GetError())
		}
	}
	if took := time.Since(start); took < minPaced {
		t.Fatalf("stream: 3 x %d bytes at %d B/s took %v, want at least %v", batch, rate, took, minPaced)
	}
	if err := ps.CloseSend(); err != nil {
		t.Fatal(err)
	}

	before := throttled("produce")
	start = time.Now()
	for i := range 6 {
		if _, err := bob.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "metered", Records: big()}); err != nil {
			t.Fatalf("bob Produce %d: %v", i, err)
		}
	}
	if after := throttled("produce"); after != before {
		t.Fatalf("bob, without a quota, was throttled (%v -> %v) in %v", before, after, time.Since(start))
	}

	start = time.Now()
	next := int64(0)
	for i := range 3 {
		resp, err := alice.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "metered", Offset: next, MaxRecords: 1})
		if err != nil {
			t.Fatalf("alice Consume %d: %v", i, err)
		}
		if len(resp.GetRecords()) != 1 {
			t.Fatalf("alice Consume %d: %d records", i, len(resp.GetRecords()))
		}
		next = resp.GetNextOffset()
	}
	if took := time.Since(start); took < minPaced {
		t.Fatalf("consume: 3 x %d bytes at %d B/s took %v, want at least %v", batch, rate, took, minPaced)
	}
	if n := throttled("consume"); n < 2 {
		t.Fatalf("throttled consume requests = %v, want >= 2", n)
	}
}
