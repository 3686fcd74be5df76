package client

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are a producer's Prometheus collectors. The library registers
// nothing: the application makes one with NewMetrics, registers it on its
// own registry (it is a prometheus.Collector) and passes it to each
// producer in ProducerOptions.Metrics; producers sharing it add up.
type Metrics struct {
	records  *prometheus.CounterVec
	batches  *prometheus.CounterVec
	retries  prometheus.Counter
	inFlight prometheus.Gauge
	latency  prometheus.Histogram
}

// NewMetrics makes the collectors:
//
//	strata_client_produced_records_total{result="ok|error"}
//	strata_client_produce_batches_total{result="ok|error"}
//	strata_client_produce_retries_total
//	strata_client_produce_batches_in_flight
//	strata_client_produce_latency_seconds (a batch's first Produce call to its answer)
func NewMetrics() *Metrics {
	return &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_client_produced_records_total",
			Help: "Records the producer finished, by result (ok: acknowledged; error: failed)."}, []string{"result"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_client_produce_batches_total",
			Help: "Batches the producer finished, by result."}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_client_produce_retries_total",
			Help: "Produce attempts that failed and were retried."}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_client_produce_batches_in_flight",
			Help: "Batches sent (or being retried) and not yet answered."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "strata_client_produce_latency_seconds",
			Help:    "Time from a batch's first record's Produce call to the batch's answer (linger, retries and the broker's acknowledgement included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 19)}),
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.records.Describe(ch)
	m.batches.Describe(ch)
	m.retries.Describe(ch)
	m.inFlight.Describe(ch)
	m.latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.records.Collect(ch)
	m.batches.Collect(ch)
	m.retries.Collect(ch)
	m.inFlight.Collect(ch)
	m.latency.Collect(ch)
}

// The hooks below are nil-safe: a producer without Metrics calls them on nil.

func (m *Metrics) batchSent() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) batchDone(records int, created time.Time, err error) {
	if m == nil {
		return
	}
	m.inFlight.Dec()
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.records.WithLabelValues(result).Add(float64(records))
	m.batches.WithLabelValues(result).Inc()
	m.latency.Observe(time.Since(created).Seconds())
}

func (m *Metrics) retry() {
	if m != nil {
		m.retries.Inc()
	}
}
