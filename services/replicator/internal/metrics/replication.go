package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Replication holds the fetchers' measurements; it is their
// fetcher.Observer. Ages are computed at scrape time, so an idle or stuck
// fetcher shows its age growing without reporting anything.
type Replication struct {
	bytes   *prometheus.CounterVec
	lag     *prometheus.GaugeVec
	errors  *prometheus.CounterVec
	starts  prometheus.Counter
	running prometheus.Gauge
	now     func() time.Time

	mu    sync.Mutex
	parts map[partKey]*partTimes
}

type partKey struct {
	topic     string
	partition int32
}

// partTimes are one partition's moments: the last successful local append
// (zero before the first) and the last time it had no lag.
type partTimes struct {
	lastAppend, caughtUp time.Time
	lagging              bool
}

var (
	appendAgeDesc = prometheus.NewDesc("strata_replication_last_append_age_seconds",
		"Seconds since the fetcher last appended to the local broker (records or a high watermark).",
		[]string{"topic", "partition"}, nil)
	lagSecondsDesc = prometheus.NewDesc("strata_replication_lag_seconds",
		"Seconds since the follower was last caught up with its leader's log end; 0 while it is.",
		[]string{"topic", "partition"}, nil)
)

func newReplication(now func() time.Time) *Replication {
	return &Replication{
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "replication",
			Name: "fetch_bytes_total", Help: "Bytes of record frames fetched from partition leaders."}, []string{"topic", "partition"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "replication",
			Name: "lag_records", Help: "Records the local replica is behind its leader's log end, as of the last fetch response."},
			[]string{"topic", "partition"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "strata", Subsystem: "replication",
			Name: "fetch_errors_total", Help: "Failed fetch attempts, by step and gRPC code or reason; each is retried after a backoff."},
			[]string{"step", "code"}),
		starts: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "strata", Subsystem: "replication",
			Name: "fetcher_starts_total", Help: "Fetchers started: one per follower partition, again on every leader or epoch change."}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "strata", Subsystem: "replication",
			Name: "fetchers", Help: "Fetchers running."}),
		now:   now,
		parts: map[partKey]*partTimes{},
	}
}

func (r *Replication) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.bytes, r.lag, r.errors, r.starts, r.running, replicationAges{r}}
}

// FetcherStarted counts a start; a new partition's lag clock starts now.
func (r *Replication) FetcherStarted(topic string, partition int32) {
	r.starts.Inc()
	r.running.Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	k := partKey{topic, partition}
	if _, ok := r.parts[k]; !ok {
		r.parts[k] = &partTimes{caughtUp: r.now()}
	}
}

// FetcherStopped drops the partition's series when it has no fetcher any
// more (it is led here now, or gone), so no stale lag lingers.
func (r *Replication) FetcherStopped(topic string, partition int32, gone bool) {
	r.running.Dec()
	if !gone {
		return
	}
	p := strconv.Itoa(int(partition))
	r.bytes.DeleteLabelValues(topic, p)
	r.lag.DeleteLabelValues(topic, p)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.parts, partKey{topic, partition})
}

// Fetched records one handled fetch response.
func (r *Replication) Fetched(topic string, partition int32, bytes int, appended bool, lag int64) {
	p := strconv.Itoa(int(partition))
	if bytes > 0 {
		r.bytes.WithLabelValues(topic, p).Add(float64(bytes))
	}
	r.lag.WithLabelValues(topic, p).Set(float64(lag))
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.parts[partKey{topic, partition}]
	if t == nil {
		t = &partTimes{caughtUp: now}
		r.parts[partKey{topic, partition}] = t
	}
	if appended {
		t.lastAppend = now
	}
	t.lagging = lag > 0
	if !t.lagging {
		t.caughtUp = now
	}
}

// FetchError counts one failed attempt.
func (r *Replication) FetchError(step, code string) { r.errors.WithLabelValues(step, code).Inc() }

// replicationAges exports the per-partition ages.
type replicationAges struct{ r *Replication }

func (a replicationAges) Describe(ch chan<- *prometheus.Desc) {
	ch <- appendAgeDesc
	ch <- lagSecondsDesc
}

func (a replicationAges) Collect(ch chan<- prometheus.Metric) {
	now := a.r.now()
	a.r.mu.Lock()
	defer a.r.mu.Unlock()
	for k, t := range a.r.parts {
		p := strconv.Itoa(int(k.partition))
		if !t.lastAppend.IsZero() {
			ch <- prometheus.MustNewConstMetric(appendAgeDesc, prometheus.GaugeValue, now.Sub(t.lastAppend).Seconds(), k.topic, p)
		}
		lag := 0.0
		if t.lagging {
			lag = now.Sub(t.caughtUp).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, lag, k.topic, p)
	}
}
