// Package quota paces each identity's produce and consume bytes to the
// rate the ACL policy gives it (q lines, see pkg/acl). Like Kafka's client
// quotas it throttles and never fails: a request over its identity's rate
// is delayed until the identity is back within it.
package quota

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
)

// Rates answers the rate that paces an identity's bytes of one kind
// (acl.QuotaProduce or acl.QuotaConsume), false when nothing limits it.
// *acl.Authorizer satisfies it; the answer follows policy changes.
type Rates interface {
	Quota(identity, kind string) (bytesPerSecond int64, ok bool)
}

// Burst is how far ahead of its rate an identity may run before it is
// delayed: a second's worth of bytes, so an idle client's first request
// is never held up and a steady one is paced smoothly.
const Burst = time.Second

// Limiter tells callers how long to delay requests so that each identity's bytes of each kind
// stay within its rate, measured on this broker. It is safe for
// concurrent use.
//
// Each (identity, kind) keeps a theoretical arrival time (GCRA): a
// request of n bytes moves it n/rate later, and waits until it is at most
// Burst ahead of now. Concurrent requests queue behind one another, so the
// pace holds however many streams an identity opens.
type Limiter struct {
	rates Rates
	lg    *zap.Logger
	now   func() time.Time

	throttled *prometheus.CounterVec
	delayed   *prometheus.CounterVec

	mu      sync.Mutex
	buckets map[key]*bucket
	logged  map[key]time.Time
}

type key struct{ identity, kind string }

type bucket struct {
	tat     time.Time // when the bytes taken so far are paid for
	touched time.Time
}

// New builds a Limiter reading rates from rates. lg may be nil.
func New(rates Rates, lg *zap.Logger) *Limiter {
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Limiter{
		rates: rates, lg: lg, now: time.Now,
		buckets: map[key]*bucket{}, logged: map[key]time.Time{},
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "broker", Name: "quota_throttle_seconds_total",
			Help: "Time requests were delayed to keep their identity within its byte-rate quota, by kind (produce, consume).",
		}, []string{"kind"}),
		delayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "broker", Name: "quota_throttled_requests_total",
			Help: "Requests delayed by a byte-rate quota, by kind (produce, consume).",
		}, []string{"kind"}),
	}
}

// Collectors are the limiter's metrics, to register on the broker's
// registry.
func (l *Limiter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.throttled, l.delayed}
}

// Reserve takes n bytes of kind for identity and returns how long the
// caller must wait before acting on them: zero when they are within its
// rate. The bytes stay taken if the caller gives up waiting (it was slow,
// not the quota). An identity without a quota, or an empty identity
// (security off), never waits.
func (l *Limiter) Reserve(identity, kind string, n int) time.Duration {
	if identity == "" || n <= 0 {
		return 0
	}
	rate, ok := l.rates.Quota(identity, kind)
	if !ok {
		return 0
	}
	now := l.now()
	k := key{identity, kind}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[k]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweepLocked(now)
		}
		b = &bucket{tat: now}
		l.buckets[k] = b
	}
	b.touched = now
	if b.tat.Before(now) {
		b.tat = now
	}
	b.tat = b.tat.Add(time.Duration(float64(n) / float64(rate) * float64(time.Second)))
	wait := b.tat.Sub(now) - Burst
	if wait <= 0 {
		return 0
	}
	l.throttled.WithLabelValues(kind).Add(wait.Seconds())
	l.delayed.WithLabelValues(kind).Inc()
	if last, ok := l.logged[k]; !ok || now.Sub(last) >= logEvery {
		l.logged[k] = now
		l.lg.Info("request throttled by quota", zap.String("identity", identity), zap.String("kind", kind),
			zap.Int64("bytes_per_second", rate), zap.Duration("delay", wait))
	}
	return wait
}

// maxBuckets bounds the identities remembered; past it, those idle for a
// while are forgotten (they owe nothing once their arrival time passed).
const maxBuckets = 10_000

// logEvery rate-limits the throttle log line per identity and kind.
const logEvery = 10 * time.Second

func (l *Limiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.tat.Before(now) && now.Sub(b.touched) > time.Minute {
			delete(l.buckets, k)
			delete(l.logged, k)
		}
	}
}

// Kinds, re-exported so callers name them from one place.
const (
	Produce = acl.QuotaProduce
	Consume = acl.QuotaConsume
)
