package client

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// RecordMetadata is where a produced record landed.
type RecordMetadata struct {
	Topic     string
	Partition int32
	// Offset is the record's offset; -1 with AcksNone.
	Offset int64
	// Produced is when Produce accepted the record; Acked when its answer
	// arrived (Acked - Produced is the record's produce latency).
	Produced time.Time
	Acked    time.Time
}

// Result is the future outcome of one produced record.
type Result struct {
	done chan struct{}
	cb   func(RecordMetadata, error)
	meta RecordMetadata
	err  error
	span trace.Span // the record's Producer.Produce span; nil: none
}

func newResult(cb func(RecordMetadata, error)) *Result {
	r := &Result{cb: cb}
	if cb == nil {
		r.done = make(chan struct{})
	}
	return r
}

func (r *Result) complete(meta RecordMetadata, err error) {
	r.meta, r.err = meta, err
	if r.span != nil {
		endProduceSpan(r.span, meta, err)
	}
	if r.cb != nil {
		r.cb(meta, err)
		return
	}
	close(r.done)
}

// Done is closed when the result is known. It is nil for results of
// ProduceCallback.
func (r *Result) Done() <-chan struct{} { return r.done }

// Wait waits for the result or for ctx to end.
func (r *Result) Wait(ctx context.Context) (RecordMetadata, error) {
	select {
	case <-r.done:
		return r.meta, r.err
	case <-ctx.Done():
		return RecordMetadata{}, ctx.Err()
	}
}

// Get returns the result; valid once Done is closed.
func (r *Result) Get() (RecordMetadata, error) { return r.meta, r.err }
