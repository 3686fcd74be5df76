// Package metrics exposes the replicator's Prometheus metrics on a private
// registry; pkg/telemetry serves it on /metrics.
package metrics

import (
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/strata-log/strata/services/replicator/internal/consensus"
	"github.com/strata-log/strata/services/replicator/internal/membership"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

// Sources are read at scrape time. Any may be nil.
type Sources struct {
	Members func() map[membership.Status]int
	Raft    func() consensus.Stats
	State   func() *metadata.State
	// RaftSink, when set, is registered: what hashicorp/raft writes to
	// go-metrics once the process installed it (InstallRaftSink).
	RaftSink *RaftSink
}

// Metrics holds the registry and the counters updated by the replicator.
type Metrics struct {
	Registry *prometheus.Registry
	// Replication is the fetchers' Observer.
	Replication *Replication
	actions     *prometheus.CounterVec
	brokerUp    prometheus.Gauge
	probeFails  prometheus.Counter
}

// New registers the collectors.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{Registry: reg,
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "strata", Subsystem: "controller", Name: "actions_total",
			Help: "Changes made by the controller, by kind.",
		}, []string{"kind"})}
	m.brokerUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "strata", Subsystem: "local_broker", Name: "up",
		Help: "1 while this node's broker counts as up, 0 once its liveness probe reported it down.",
	})
	m.brokerUp.Set(1)
	m.probeFails = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "strata", Subsystem: "local_broker", Name: "probe_failures_total",
		Help: "Liveness probes of this node's broker that failed (no answer within the timeout, or not SERVING).",
	})
	m.Replication = newReplication(time.Now)
	reg.MustRegister(m.actions, m.brokerUp, m.probeFails, &collector{src: src},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(m.Replication.collectors()...)
	if src.RaftSink != nil {
		reg.MustRegister(src.RaftSink.collectors()...)
	}
	return m
}

// LocalBrokerUp records what the liveness probe reported of the local broker.
func (m *Metrics) LocalBrokerUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.brokerUp.Set(v)
}

// LocalBrokerProbe counts one liveness probe of the local broker.
func (m *Metrics) LocalBrokerProbe(ok bool) {
	if !ok {
		m.probeFails.Inc()
	}
}

// ControllerAction counts one controller change.
func (m *Metrics) ControllerAction(kind string) { m.actions.WithLabelValues(kind).Inc() }

var (
	membersDesc = prometheus.NewDesc("strata_serf_members", "Serf members by status.", []string{"status"}, nil)
	raftState   = prometheus.NewDesc("strata_raft_state", "1 for this node's current Raft state.", []string{"state"}, nil)
	raftTerm    = prometheus.NewDesc("strata_raft_term", "Current Raft term.", nil, nil)
	raftCommit  = prometheus.NewDesc("strata_raft_commit_index", "Raft commit index.", nil, nil)
	raftApplied = prometheus.NewDesc("strata_raft_applied_index", "Raft applied index.", nil, nil)
	raftContact = prometheus.NewDesc("strata_raft_last_contact_seconds", "Seconds since the last contact with the leader (0 on the leader or never).", nil, nil)
	partitions  = prometheus.NewDesc("strata_partitions", "Partitions by state: online, offline (no leader), under_replicated (ISR smaller than the replicas), under_min_isr (online, ISR smaller than min.insync.replicas: acks=all refused).", []string{"state"}, nil)
	brokers     = prometheus.NewDesc("strata_brokers", "Registered brokers by liveness.", []string{"alive"}, nil)
)

type collector struct{ src Sources }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{membersDesc, raftState, raftTerm, raftCommit, raftApplied, raftContact, partitions, brokers} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Members != nil {
		counts := c.src.Members()
		for _, s := range []membership.Status{membership.StatusAlive, membership.StatusLeaving, membership.StatusLeft, membership.StatusFailed} {
			ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(counts[s]), s.String())
		}
	}
	if c.src.Raft != nil {
		st := c.src.Raft()
		for _, s := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
			v := 0.0
			if st.State == s {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(raftState, prometheus.GaugeValue, v, s.String())
		}
		ch <- prometheus.MustNewConstMetric(raftTerm, prometheus.GaugeValue, float64(st.Term))
		ch <- prometheus.MustNewConstMetric(raftCommit, prometheus.GaugeValue, float64(st.CommitIndex))
		ch <- prometheus.MustNewConstMetric(raftApplied, prometheus.GaugeValue, float64(st.AppliedIdx))
		contact := 0.0
		if st.State != raft.Leader && !st.LastContact.IsZero() {
			contact = time.Since(st.LastContact).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(raftContact, prometheus.GaugeValue, contact)
	}
	if c.src.State != nil {
		st := c.src.State()
		var online, offline, under, underMin int
		for _, t := range st.Topics {
			minISR := max(int(t.Config.MinInsyncReplicas), 1) // an older topic's 0 is the default, 1
			for _, p := range t.Partitions {
				if !p.Offline && len(p.ISR) < minISR {
					underMin++
				}
				if p.Offline {
					offline++
				} else {
					online++
				}
				if p.UnderReplicated() {
					under++
				}
			}
		}
		ch <- prometheus.MustNewConstMetric(partitions, prometheus.GaugeValue, float64(online), "online")
		ch <- prometheus.MustNewConstMetric(partitions, prometheus.GaugeValue, float64(offline), "offline")
		ch <- prometheus.MustNewConstMetric(partitions, prometheus.GaugeValue, float64(under), "under_replicated")
		ch <- prometheus.MustNewConstMetric(partitions, prometheus.GaugeValue, float64(underMin), "under_min_isr")
		var alive, dead int
		for _, b := range st.Brokers {
			if b.Alive {
				alive++
			} else {
				dead++
			}
		}
		ch <- prometheus.MustNewConstMetric(brokers, prometheus.GaugeValue, float64(alive), "true")
		ch <- prometheus.MustNewConstMetric(brokers, prometheus.GaugeValue, float64(dead), "false")
	}
}
