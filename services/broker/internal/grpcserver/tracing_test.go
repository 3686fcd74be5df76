package grpcserver

import (
	"testing"

	"go.opentelemetry.io/otel/trace"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

func spanContext(t *testing.T, tp string) trace.SpanContext {
	t.Helper()
	sc, ok := telemetry.ParseTraceParent(tp)
	if !ok {
		t.Fatalf("bad traceparent %q", tp)
	}
	return sc
}

func traced(tp string) *stratav1.Record {
	return &stratav1.Record{Value: []byte("v"), Headers: []*stratav1.Header{{Key: "other", Value: []byte("x")}, {Key: traceHeader, Value: []byte(tp)}}}
}

func TestBatchParent(t *testing.T) {
	const (
		a        = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		b        = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"
		unsample = "00-2af7651916cd43dd8448eb211c80319c-d7ad6b7169203331-00"
	)
	plain := &stratav1.Record{Value: []byte("v")}
	for _, tc := range []struct {
		name   string
		recs   []*stratav1.Record
		parent string // "": none
		links  int
	}{
		{"no header", []*stratav1.Record{plain, plain}, "", 0},
		{"unsampled and malformed are ignored", []*stratav1.Record{traced(unsample), traced("00-zz"), plain}, "", 0},
		{"first sampled is the parent", []*stratav1.Record{plain, traced(unsample), traced(a), traced(b)}, a, 1},
		{"the same span twice is one", []*stratav1.Record{traced(a), traced(a)}, a, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent, links := batchParent(tc.recs)
			if got := telemetry.TraceParent(parent); got != tc.parent || len(links) != tc.links {
				t.Fatalf("parent %q with %d links, want %q with %d", got, len(links), tc.parent, tc.links)
			}
		})
	}
}

func TestTracedBatches(t *testing.T) {
	var tb tracedBatches
	p, q := new(partition.Partition), new(partition.Partition) // identities only
	if _, ok := tb.find(p, 0, 100); ok {
		t.Fatal("found a batch in an empty ring")
	}
	sc := spanContext(t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	slot := tb.add(p, 10, sc)
	// Pending: any response at or after the log end it was added at.
	for _, r := range []struct {
		from, to int64
		want     bool
	}{{0, 10, false}, {5, 11, true}, {1000, 2000, true}} {
		if _, ok := tb.find(p, r.from, r.to); ok != r.want {
			t.Errorf("pending: find [%d, %d) = %v, want %v", r.from, r.to, ok, r.want)
		}
	}
	if _, ok := tb.find(q, 0, 100); ok {
		t.Error("found another partition's batch")
	}
	tb.settle(slot, sc, 12, 14)
	for _, r := range []struct {
		from, to int64
		want     bool
	}{{10, 12, false}, {10, 13, true}, {14, 15, true}, {15, 20, false}} {
		got, ok := tb.find(p, r.from, r.to)
		if ok != r.want || (ok && !got.Equal(sc)) {
			t.Errorf("settled [12, 14]: find [%d, %d) = %v, want %v", r.from, r.to, ok, r.want)
		}
	}
	failed := tb.add(p, 20, sc)
	tb.settle(failed, sc, 0, -1)
	if _, ok := tb.find(p, 20, 30); ok {
		t.Error("a failed append's batch is still found")
	}
	if tb.add(p, 0, trace.SpanContext{}) != -1 {
		t.Error("an unsampled span was registered")
	}
	var off *tracer
	if got := off.traceParent(p, 0, 100); got != "" {
		t.Errorf("tracing off: traceParent = %q, want empty", got)
	}
}
