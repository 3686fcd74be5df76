package fetcher

import (
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Options configure the fetchers. Zero values mean defaults.
type Options struct {
	// MaxBytes bounds the frames of one Fetch response; 0 leaves it to
	// the leader (1 MiB).
	MaxBytes int32
	// CallTimeout bounds each unary call: the local broker's Append,
	// Truncate, PartitionStatus and OffsetForLeaderEpoch, and the leader's
	// OffsetForLeaderEpoch; default 5s.
	CallTimeout time.Duration
	// IdleTimeout ends a Fetch stream on which the leader sent nothing,
	// not even a heartbeat, for this long (a leader cut off without a TCP
	// reset); default 10s.
	IdleTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay before a fetcher tries
	// again after a failure; it doubles per failure without progress.
	// Defaults 50ms and 2s.
	MinBackoff, MaxBackoff time.Duration
	// FirstBackoff is the delay after a new fetcher's first failed
	// attempts, doubling from there; default 5ms. A fetcher starts on a
	// metadata change that the leader's broker may not have applied yet
	// (its Fetch answers NotFound or FailedPrecondition for a few
	// milliseconds), and every acks=all record produced meanwhile waits for
	// this follower: starting at MinBackoff stalled a new topic's first
	// records for 150-200 ms.
	FirstBackoff time.Duration
	// Observer receives measurements; nil discards them.
	Observer Observer
	// Tracer makes a span for each fetched response that carries the
	// leader's trace_parent (a traced batch) and for its local append;
	// nil means tracing off.
	Tracer trace.Tracer
}

func (o Options) withDefaults() Options {
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 50 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.FirstBackoff <= 0 {
		o.FirstBackoff = 5 * time.Millisecond
	}
	o.FirstBackoff = min(o.FirstBackoff, o.MinBackoff)
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	return o
}

// Observer receives the fetchers' measurements (internal/metrics). Calls
// come from many fetcher goroutines at once.
type Observer interface {
	// FetcherStarted is called when a fetcher starts for a partition (first
	// start and every restart on a leader or epoch change).
	FetcherStarted(topic string, partition int32)
	// FetcherStopped is called when it stopped; gone says the partition no
	// longer has a fetcher at all (its per-partition series can go).
	FetcherStopped(topic string, partition int32, gone bool)
	// Fetched is called for every response handled: the frame bytes,
	// whether the local broker was called (records or a new high
	// watermark), and the lag in records behind the leader's log end.
	Fetched(topic string, partition int32, bytes int, appended bool, lag int64)
	// FetchError is called for every failed attempt, by step and gRPC code.
	FetchError(step, code string)
}

type nopObserver struct{}

func (nopObserver) FetcherStarted(string, int32)            {}
func (nopObserver) FetcherStopped(string, int32, bool)      {}
func (nopObserver) Fetched(string, int32, int, bool, int64) {}
func (nopObserver) FetchError(string, string)               {}
