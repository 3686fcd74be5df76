package connlimit

import "github.com/prometheus/client_golang/prometheus"

// Limit labels say which cap refused a connection.
const (
	LimitTotal = "total"
	LimitPerIP = "per_ip"
)

// Metrics are one listener's collectors. Register them on the service's
// registry (Metrics is a prometheus.Collector).
type Metrics struct {
	open    prometheus.Gauge
	refused *prometheus.CounterVec
}

// NewMetrics returns the collectors named <namespace>_<subsystem>_...,
// e.g. strata_broker_connections_open. listener labels them, so that
// several listeners of one service can share a registry.
func NewMetrics(namespace, subsystem, listener string) *Metrics {
	labels := prometheus.Labels{"listener": listener}
	m := &Metrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "connections_open",
			Help:        "Connections open through the listener's caps (handshakes in progress included).",
			ConstLabels: labels,
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "connections_refused_total",
			Help:        "Connections closed as soon as accepted because a cap was reached, by cap: total or per_ip.",
			ConstLabels: labels,
		}, []string{"limit"}),
	}
	// Both label values exist from the start, so that a rate over them is
	// defined before the first refusal.
	m.refused.WithLabelValues(LimitTotal)
	m.refused.WithLabelValues(LimitPerIP)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.open.Describe(ch)
	m.refused.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.open.Collect(ch)
	m.refused.Collect(ch)
}

func (m *Metrics) opened() {
	if m != nil {
		m.open.Inc()
	}
}

func (m *Metrics) closed() {
	if m != nil {
		m.open.Dec()
	}
}

func (m *Metrics) refuse(limit string) {
	if m != nil {
		m.refused.WithLabelValues(limit).Inc()
	}
}
