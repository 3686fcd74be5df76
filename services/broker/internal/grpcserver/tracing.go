package grpcserver

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// A record's producer span travels in the record itself: a sampled record
// carries a W3C traceparent header (pkg/client sets it), stored with the
// record like any header. The leader's spans for a batch are children of
// its first traced record's span (the others are links); the leader's
// Fetch passes its append span to the followers' replicators in
// FetchResponse.trace_parent, and a follower's next position report names
// its own span in FetchRequest.trace_parent, so that the high watermark
// advance it causes joins the trace. Without a tracer (tracing off) none
// of this runs: no header is looked at.
//
//	Producer.Produce (client)
//	├── Partition.Append (leader)
//	│   └── Fetcher.Fetch (each follower's replicator)
//	│       ├── Partition.AppendReplicated (the follower's broker, through its replicator's LocalReplica.Append)
//	│       └── Partition.AdvanceHighWatermark (leader, the report that released the batch)
//	└── Partition.WaitHighWatermark (leader, acks=all)

// traceHeader is the record header holding a traced record's traceparent.
const traceHeader = "traceparent"

// Span attribute keys.
const (
	attrTopic      = attribute.Key("messaging.destination.name")
	attrPartition  = attribute.Key("messaging.destination.partition.id")
	attrRecords    = attribute.Key("messaging.batch.message_count")
	attrBytes      = attribute.Key("strata.bytes")
	attrBaseOffset = attribute.Key("strata.base_offset")
	attrLastOffset = attribute.Key("strata.last_offset")
	attrEpoch      = attribute.Key("strata.leader_epoch")
	attrAcks       = attribute.Key("strata.acks")
	attrHW         = attribute.Key("strata.high_watermark")
	attrHWBefore   = attribute.Key("strata.high_watermark.before")
	attrFollower   = attribute.Key("strata.follower_id")
	attrDuplicate  = attribute.Key("strata.duplicate")
)

// tracer makes the data path's spans; nil is tracing off.
type tracer struct {
	t       trace.Tracer
	batches tracedBatches
}

func newTracer(t trace.Tracer) *tracer {
	if t == nil {
		return nil
	}
	return &tracer{t: t}
}

// batchParent is the span context of recs' first sampled traced record,
// and links to the other traced records' spans.
func batchParent(recs []*stratav1.Record) (parent trace.SpanContext, links []trace.Link) {
	for _, r := range recs {
		for _, h := range r.GetHeaders() {
			if h.GetKey() != traceHeader {
				continue
			}
			sc, ok := telemetry.ParseTraceParent(string(h.GetValue()))
			if !ok || !sc.IsSampled() {
				continue
			}
			if !parent.IsValid() {
				parent = sc
			} else if !sc.Equal(parent) {
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	return parent, links
}

// append is Partition.Append with spans when a record of the batch is
// traced: the append, registered for the followers' fetches; the wait it
// returns is the acknowledgement's (acks=all: the wait for the high
// watermark, a span of its own). The two are apart so that a
// ProduceStream can append the next batch while this one waits.
func (t *tracer) append(ctx context.Context, p *partition.Partition, req *stratav1.ProduceRequest, pb partition.ProducerBatch, bytes int) (partition.ProduceResult, func(context.Context) error, error) {
	recs, acks := req.GetRecords(), req.GetAcks()
	parent, links := batchParent(recs)
	if !parent.IsValid() {
		res, err := p.Append(ctx, recs, acks, pb)
		return res, func(ctx context.Context) error { return p.AwaitAcks(ctx, res, acks) }, err
	}
	pctx := trace.ContextWithRemoteSpanContext(ctx, parent)
	attrs := []attribute.KeyValue{attrTopic.String(p.Topic()), attrPartition.Int(int(p.ID())),
		attrRecords.Int(len(recs)), attrBytes.Int(bytes), attrAcks.String(acksLabel(acks))}
	_, span := t.t.Start(pctx, "Partition.Append", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithLinks(links...), trace.WithAttributes(attrs...))
	// Registered before the append: a follower may read the frames before
	// Append returns.
	slot := t.batches.add(p, p.LogEndOffset(), span.SpanContext())
	res, err := p.Append(ctx, recs, acks, pb)
	if err != nil {
		t.batches.settle(slot, span.SpanContext(), 0, -1)
		endWithError(span, err)
		return res, nil, err
	}
	t.batches.settle(slot, span.SpanContext(), res.Base, res.Last)
	span.SetAttributes(attrBaseOffset.Int64(res.Base), attrLastOffset.Int64(res.Last), attrEpoch.Int(int(res.Epoch)),
		attrDuplicate.Bool(res.Duplicate))
	span.End()
	wait := func(ctx context.Context) error {
		if acks != stratav1.Acks_ACKS_ALL {
			return nil
		}
		_, wait := t.t.Start(trace.ContextWithRemoteSpanContext(ctx, parent), "Partition.WaitHighWatermark",
			trace.WithAttributes(append(attrs, attrLastOffset.Int64(res.Last))...))
		err := p.AwaitAcks(ctx, res, acks)
		wait.SetAttributes(attrHW.Int64(p.HighWatermark()))
		if err != nil {
			endWithError(wait, err)
			return err
		}
		wait.End()
		return nil
	}
	return res, wait, nil
}

func endWithError(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(otelcodes.Error, err.Error())
	span.End()
}

// followerFetched is Partition.FollowerFetched for a report that names
// the follower's span: when it moves the high watermark, the advance is a
// span, the follower's child.
func (t *tracer) followerFetched(p *partition.Partition, id, epoch int32, leo int64, traceParent string) error {
	before := p.HighWatermark()
	if err := p.FollowerFetched(id, epoch, leo); err != nil {
		return err
	}
	after := p.HighWatermark()
	sc, ok := telemetry.ParseTraceParent(traceParent)
	if !ok || after <= before {
		return nil
	}
	_, span := t.t.Start(trace.ContextWithRemoteSpanContext(context.Background(), sc), "Partition.AdvanceHighWatermark",
		trace.WithAttributes(attrTopic.String(p.Topic()), attrPartition.Int(int(p.ID())), attrFollower.Int(int(id)),
			attrHWBefore.Int64(before), attrHW.Int64(after), attrEpoch.Int(int(epoch))))
	span.End()
	return nil
}

// appendReplicated is Partition.AppendReplicated with a span when the
// caller's (the replicator's) span is sampled.
func (t *tracer) appendReplicated(ctx context.Context, p *partition.Partition, req *stratav1.AppendRequest) (int64, error) {
	if !trace.SpanContextFromContext(ctx).IsSampled() {
		return p.AppendReplicated(req.GetLeaderEpoch(), req.GetRecordsEpoch(), req.GetFrames(), req.GetLeaderHighWatermark())
	}
	start := p.LogEndOffset()
	_, span := t.t.Start(ctx, "Partition.AppendReplicated", trace.WithAttributes(attrTopic.String(p.Topic()),
		attrPartition.Int(int(p.ID())), attrBytes.Int(len(req.GetFrames())), attrBaseOffset.Int64(start),
		attrEpoch.Int(int(req.GetLeaderEpoch()))))
	leo, err := p.AppendReplicated(req.GetLeaderEpoch(), req.GetRecordsEpoch(), req.GetFrames(), req.GetLeaderHighWatermark())
	if err != nil {
		endWithError(span, err)
		return leo, err
	}
	span.SetAttributes(attrRecords.Int64(max(0, leo-start)), attrHW.Int64(p.HighWatermark()))
	span.End()
	return leo, nil
}

// traceParent is the traceparent for a fetch response holding offsets
// [from, to) of p: the leader's append span of a traced batch among them,
// or "". Without a traced batch in the last tracedBatchTTL it costs one
// atomic load.
func (t *tracer) traceParent(p *partition.Partition, from, to int64) string {
	if t == nil {
		return ""
	}
	sc, ok := t.batches.find(p, from, to)
	if !ok {
		return ""
	}
	return telemetry.TraceParent(sc)
}

// tracedBatches remembers the newest traced batches, across partitions,
// for the leader's Fetch to find: a fixed ring, so its memory is bounded
// whatever the sampling rate, and entries age out.
type tracedBatches struct {
	newest atomic.Int64 // unix nanoseconds of the newest entry; 0: none yet
	mu     sync.Mutex
	next   int
	ring   [tracedBatchRing]tracedBatch
}

const (
	tracedBatchRing = 64
	tracedBatchTTL  = 30 * time.Second
)

// tracedBatch is one traced batch of p: offsets [first, last], the append
// span sc. Until the append returns, last is unknown (pendingLast) and
// first is the log end before it, a lower bound.
type tracedBatch struct {
	p           *partition.Partition
	first, last int64
	sc          trace.SpanContext
	at          time.Time
}

const pendingLast = int64(^uint64(0) >> 1)

// add registers a batch about to be appended at or after from.
func (b *tracedBatches) add(p *partition.Partition, from int64, sc trace.SpanContext) int {
	if !sc.IsSampled() {
		return -1
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.next
	b.next = (b.next + 1) % tracedBatchRing
	b.ring[i] = tracedBatch{p: p, first: from, last: pendingLast, sc: sc, at: now}
	b.newest.Store(now.UnixNano())
	return i
}

// settle sets the offsets the batch in slot got; last < first forgets it
// (the append failed).
func (b *tracedBatches) settle(slot int, sc trace.SpanContext, first, last int64) {
	if slot < 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e := &b.ring[slot]
	if !e.sc.Equal(sc) {
		return // overwritten meanwhile
	}
	if last < first {
		*e = tracedBatch{}
		return
	}
	e.first, e.last = first, last
}

// find returns the span of a traced batch of p overlapping [from, to).
func (b *tracedBatches) find(p *partition.Partition, from, to int64) (trace.SpanContext, bool) {
	n := b.newest.Load()
	if n == 0 || time.Since(time.Unix(0, n)) > tracedBatchTTL {
		return trace.SpanContext{}, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.ring {
		if e.p == p && e.first < to && e.last >= from && time.Since(e.at) <= tracedBatchTTL {
			return e.sc, true
		}
	}
	return trace.SpanContext{}, false
}
