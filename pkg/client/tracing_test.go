package client

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestProducerTracing: a sampled record's Producer.Produce span is a child
// of the caller's span, ends with the record's offset, and its context
// reaches the broker in the record's traceparent header (replacing one
// the application set); an unsampled record, or a client without a
// TracerProvider, sends no header and exports nothing.
func TestProducerTracing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sampler sdktrace.Sampler // nil: no TracerProvider
		traced  bool
	}{
		{"sampled", sdktrace.AlwaysSample(), true},
		{"not sampled", sdktrace.NeverSample(), false},
		{"no provider", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			exp := tracetest.NewInMemoryExporter()
			cfg := Config{Brokers: fc.addrs(), Insecure: true}
			var tp *sdktrace.TracerProvider
			if tc.sampler != nil {
				tp = sdktrace.NewTracerProvider(sdktrace.WithSampler(tc.sampler), sdktrace.WithSyncer(exp))
				cfg.TracerProvider = tp
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cl, err := New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			p := newTestProducer(t, cl, ProducerOptions{})
			pctx := ctx
			var parent trace.SpanContext
			if tp != nil {
				var ps trace.Span
				pctx, ps = tp.Tracer("test").Start(ctx, "app")
				defer ps.End()
				parent = ps.SpanContext()
			}
			meta, err := p.ProduceSync(pctx, &Record{Topic: "t", Value: []byte("v"),
				Headers: []Header{{Key: TraceHeader, Value: []byte("set by the application")}, {Key: "h", Value: []byte("x")}}})
			if err != nil {
				t.Fatal(err)
			}
			recs := fc.log("t", 0)
			if len(recs) != 1 {
				t.Fatalf("broker got %d records, want 1", len(recs))
			}
			var headers []*stratav1.Header
			for _, h := range recs[0].GetHeaders() {
				if h.GetKey() == TraceHeader {
					headers = append(headers, h)
				}
			}
			var spans []sdktrace.ReadOnlySpan
			for _, s := range exp.GetSpans().Snapshots() {
				if s.Name() == "Producer.Produce" {
					spans = append(spans, s)
				}
			}
			if !tc.traced {
				if len(spans) != 0 || len(headers) != 1 || string(headers[0].GetValue()) != "set by the application" {
					t.Fatalf("%d spans, headers %v: want none exported and the application's header as it was", len(spans), headers)
				}
				return
			}
			if len(spans) != 1 {
				t.Fatalf("%d Producer.Produce spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Parent().SpanID() != parent.SpanID() || s.SpanKind() != trace.SpanKindProducer {
				t.Errorf("span parent %s kind %s, want the caller's %s and producer", s.Parent().SpanID(), s.SpanKind(), parent.SpanID())
			}
			want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"
			if len(headers) != 1 || string(headers[0].GetValue()) != want {
				t.Errorf("traceparent headers %v, want one %q", headers, want)
			}
			if !hasAttr(s.Attributes(), attribute.Int64("strata.offset", meta.Offset)) ||
				!hasAttr(s.Attributes(), attribute.String("messaging.destination.name", "t")) {
				t.Errorf("span attributes %v: want the topic and offset %d", s.Attributes(), meta.Offset)
			}
		})
	}
}

func hasAttr(attrs []attribute.KeyValue, want attribute.KeyValue) bool {
	for _, a := range attrs {
		if a == want {
			return true
		}
	}
	return false
}
