package client

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TraceHeader is the record header that carries a sampled record's trace
// context (a W3C traceparent) to the brokers, which make their spans of
// the record's batch its children: the leader's append and wait for the
// high watermark, each follower's fetch and append.
const TraceHeader = "traceparent"

// traceHeaderSize is the bytes the header adds to a record (a version 00
// traceparent is 55 characters).
const traceHeaderSize = len(TraceHeader) + 55

const tracerName = "github.com/strata-log/strata/pkg/client"

// startProduceSpan starts rec's Producer.Produce span, a child of ctx's
// span, and when it is sampled puts its context in pr's headers. It
// returns nil when the client has no TracerProvider.
func (p *Producer) startProduceSpan(ctx context.Context, topic string, part int32, size int, pr *stratav1.Record) trace.Span {
	if p.tracer == nil {
		return nil
	}
	// The attributes are set once the span is sampled: the 99% that are
	// not cost only the sampler's decision.
	_, span := p.tracer.Start(ctx, "Producer.Produce", p.spanKind)
	sc := span.SpanContext()
	if !sc.IsSampled() {
		span.End()
		return nil
	}
	span.SetAttributes(attribute.String("messaging.system", "strata"), attribute.String("messaging.destination.name", topic),
		attribute.Int("messaging.destination.partition.id", int(part)), attribute.Int("messaging.message.body.size", size))
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(ctx, sc), c)
	tp := []byte(c[TraceHeader])
	for _, h := range pr.Headers {
		if h.GetKey() == TraceHeader {
			h.Value = tp // pr's headers are the producer's copy
			return span
		}
	}
	pr.Headers = append(pr.Headers, &stratav1.Header{Key: TraceHeader, Value: tp})
	return span
}

// endProduceSpan ends a record's span with where it landed or its error.
func endProduceSpan(span trace.Span, meta RecordMetadata, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	} else {
		span.SetAttributes(attribute.Int("messaging.destination.partition.id", int(meta.Partition)),
			attribute.Int64("strata.offset", meta.Offset))
	}
	span.End()
}
