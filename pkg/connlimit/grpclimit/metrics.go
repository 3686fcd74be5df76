package grpclimit

import "github.com/prometheus/client_golang/prometheus"

// Handshake failure reasons.
const (
	// ReasonTimeout is a handshake that missed the server's deadline
	// (grpc.ConnectionTimeout): a client that connected and stalled.
	ReasonTimeout = "timeout"
	// ReasonError is any other failed handshake: a bad or missing client
	// certificate, a client that hung up, bytes that are not TLS.
	ReasonError = "error"
)

// Metrics are a Limiter's collectors. Register them on the service's
// registry (Metrics is a prometheus.Collector).
type Metrics struct {
	handshakeFailures *prometheus.CounterVec
	connStreamLimit   prometheus.Counter
	identityRefused   prometheus.Counter
}

// NewMetrics returns the collectors named <namespace>_<subsystem>_...,
// e.g. strata_broker_tls_handshake_failures_total.
func NewMetrics(namespace, subsystem string) *Metrics {
	m := &Metrics{
		handshakeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "tls_handshake_failures_total",
			Help: "TLS handshakes on the gRPC listener that failed, by reason: timeout (the handshake deadline passed) or error.",
		}, []string{"reason"}),
		connStreamLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "connection_stream_limit_reached_total",
			Help: "Times a connection's calls in flight reached the per-connection stream limit; its next call waits for a free stream.",
		}),
		identityRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "identity_streams_refused_total",
			Help: "Calls refused with ResourceExhausted because their identity had the most calls in flight allowed.",
		}),
	}
	m.handshakeFailures.WithLabelValues(ReasonTimeout)
	m.handshakeFailures.WithLabelValues(ReasonError)
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.handshakeFailures.Describe(ch)
	m.connStreamLimit.Describe(ch)
	m.identityRefused.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.handshakeFailures.Collect(ch)
	m.connStreamLimit.Collect(ch)
	m.identityRefused.Collect(ch)
}

func (m *Metrics) handshakeFailed(reason string) {
	if m != nil {
		m.handshakeFailures.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) connAtStreamLimit() {
	if m != nil {
		m.connStreamLimit.Inc()
	}
}

func (m *Metrics) identityRefusedInc() {
	if m != nil {
		m.identityRefused.Inc()
	}
}
