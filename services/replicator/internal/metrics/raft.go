package metrics

import (
	"strings"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
)

// RaftSink bridges what hashicorp/raft writes to go-metrics into
// Prometheus collectors: commit and FSM apply latency, and the node's
// state changes (leader changes). Every other key is dropped. raft writes
// to go-metrics' process-wide sink, so the process installs it once
// (InstallRaftSink); a sink never installed reports nothing.
type RaftSink struct {
	commit      prometheus.Histogram
	apply       prometheus.Histogram
	transitions *prometheus.CounterVec
}

var _ gometrics.MetricSink = (*RaftSink)(nil)

// NewRaftSink makes the collectors.
func NewRaftSink() *RaftSink {
	buckets := prometheus.ExponentialBuckets(0.0001, 2, 18) // 100 µs to 13 s
	return &RaftSink{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_raft_commit_duration_seconds",
			Help:    "Time from a log entry's dispatch on the Raft leader to its commit (raft.commitTime).",
			Buckets: buckets,
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "strata_raft_fsm_apply_duration_seconds",
			Help:    "Time the metadata state machine took to apply committed entries (raft.fsm.apply and raft.fsm.applyBatch).",
			Buckets: buckets,
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_raft_state_changes_total",
			Help: "Times this node entered a Raft state; state=\"leader\" counts the leaderships it won (leader changes, summed over the cluster).",
		}, []string{"state"}),
	}
}

// InstallRaftSink makes s the process's go-metrics sink, which
// hashicorp/raft writes to. Call it once, from main.
func InstallRaftSink(s *RaftSink) error {
	conf := gometrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableServiceLabel = false
	conf.EnableRuntimeMetrics = false
	conf.EnableTypePrefix = false
	_, err := gometrics.NewGlobal(conf, s)
	return err
}

func (s *RaftSink) collectors() []prometheus.Collector {
	for _, st := range []string{"leader", "follower", "candidate"} {
		s.transitions.WithLabelValues(st) // reported at 0 before the first change
	}
	return []prometheus.Collector{s.commit, s.apply, s.transitions}
}

// AddSample takes raft's timers, in milliseconds.
func (s *RaftSink) AddSample(key []string, val float32) {
	switch strings.Join(key, ".") {
	case "raft.commitTime":
		s.commit.Observe(float64(val) / 1000)
	case "raft.fsm.apply", "raft.fsm.applyBatch":
		s.apply.Observe(float64(val) / 1000)
	}
}

// IncrCounter takes raft's state changes.
func (s *RaftSink) IncrCounter(key []string, val float32) {
	if len(key) == 3 && key[0] == "raft" && key[1] == "state" {
		switch key[2] {
		case "leader", "follower", "candidate":
			s.transitions.WithLabelValues(key[2]).Add(float64(val))
		}
	}
}

// AddSampleWithLabels drops the labels.
func (s *RaftSink) AddSampleWithLabels(key []string, val float32, _ []gometrics.Label) {
	s.AddSample(key, val)
}

// IncrCounterWithLabels drops the labels.
func (s *RaftSink) IncrCounterWithLabels(key []string, val float32, _ []gometrics.Label) {
	s.IncrCounter(key, val)
}

// SetGauge is not bridged: the collector reads Raft's indexes and state
// directly.
func (s *RaftSink) SetGauge([]string, float32) {}

// SetGaugeWithLabels is not bridged either.
func (s *RaftSink) SetGaugeWithLabels([]string, float32, []gometrics.Label) {}

// EmitKey is not bridged.
func (s *RaftSink) EmitKey([]string, float32) {}
