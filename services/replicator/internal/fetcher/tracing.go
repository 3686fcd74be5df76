package fetcher

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/strata-log/strata/pkg/telemetry"
)

// Span attribute keys, as the broker names them.
const (
	attrTopic      = attribute.Key("messaging.destination.name")
	attrPartition  = attribute.Key("messaging.destination.partition.id")
	attrRecords    = attribute.Key("messaging.batch.message_count")
	attrBytes      = attribute.Key("strata.bytes")
	attrBaseOffset = attribute.Key("strata.base_offset")
	attrLogEnd     = attribute.Key("strata.log_end_offset")
	attrHW         = attribute.Key("strata.high_watermark")
	attrEpoch      = attribute.Key("strata.leader_epoch")
	attrLeader     = attribute.Key("strata.leader_id")
	attrFollower   = attribute.Key("strata.follower_id")
)

// traceFetch starts the span of a response the leader marked as holding a
// traced batch (trace_parent), from when the fetcher began waiting for it;
// the span covers the local append. Otherwise, or with tracing off, it
// returns ctx and a nil span.
func (f *fetcher) traceFetch(ctx context.Context, resp *rawFetchResponse, waited time.Time) (context.Context, trace.Span) {
	if f.opts.Tracer == nil || resp.GetTraceParent() == "" {
		return ctx, nil
	}
	sc, ok := telemetry.ParseTraceParent(resp.GetTraceParent())
	if !ok {
		return ctx, nil
	}
	ctx, span := f.opts.Tracer.Start(trace.ContextWithRemoteSpanContext(ctx, sc), "Fetcher.Fetch",
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(waited),
		trace.WithAttributes(attrTopic.String(f.a.Topic), attrPartition.Int(int(f.a.Partition)),
			attrLeader.Int(int(f.a.LeaderID)), attrFollower.Int(int(f.localID)), attrEpoch.Int(int(f.a.LeaderEpoch)),
			attrBaseOffset.Int64(resp.GetBaseOffset()), attrBytes.Int(resp.framesLen()), attrHW.Int64(resp.GetHighWatermark())))
	if !span.IsRecording() {
		span.End()
		return ctx, nil
	}
	return ctx, span
}

// appendTraceParent is the traceparent for the local append of a traced
// fetch (its span), so that the local broker's append span is its child:
// the fetch span covers the call, which needs no span of its own. Empty
// when ctx's span is not sampled.
func appendTraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return ""
	}
	return telemetry.TraceParent(sc)
}

// endSpan ends span (nil: none), recording err.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(otelcodes.Error, err.Error())
	}
	span.End()
}
