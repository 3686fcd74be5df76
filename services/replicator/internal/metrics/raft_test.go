package metrics

import (
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRaftSink feeds the sink through a go-metrics instance as raft's
// calls reach it (timers in milliseconds) and reads the Prometheus side.
func TestRaftSink(t *testing.T) {
	s := NewRaftSink()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.collectors()...)
	conf := gometrics.DefaultConfig("")
	conf.EnableHostname, conf.EnableRuntimeMetrics, conf.EnableServiceLabel = false, false, false
	gm, err := gometrics.New(conf, s)
	if err != nil {
		t.Fatal(err)
	}
	gm.MeasureSince([]string{"raft", "commitTime"}, time.Now().Add(-20*time.Millisecond))
	gm.AddSample([]string{"raft", "fsm", "apply"}, 3)
	gm.AddSample([]string{"raft", "fsm", "applyBatch"}, 4)
	gm.AddSample([]string{"raft", "rpc", "appendEntries"}, 1) // not bridged
	gm.IncrCounter([]string{"raft", "state", "leader"}, 1)
	gm.IncrCounter([]string{"raft", "state", "follower"}, 1)
	gm.IncrCounter([]string{"raft", "state", "follower"}, 1)
	gm.IncrCounter([]string{"raft", "apply"}, 1) // not bridged

	if got := testutil.ToFloat64(s.transitions.WithLabelValues("leader")); got != 1 {
		t.Errorf("leader changes = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.transitions.WithLabelValues("follower")); got != 2 {
		t.Errorf("follower changes = %v, want 2", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist := map[string]struct {
		n   uint64
		sum float64
	}{}
	for _, mf := range mfs {
		if h := mf.GetMetric()[0].GetHistogram(); h != nil {
			hist[mf.GetName()] = struct {
				n   uint64
				sum float64
			}{h.GetSampleCount(), h.GetSampleSum()}
		}
	}
	if c := hist["strata_raft_commit_duration_seconds"]; c.n != 1 || c.sum < 0.02 || c.sum > 1 {
		t.Errorf("commit histogram = %+v, want one sample of about 0.02 s", c)
	}
	if a := hist["strata_raft_fsm_apply_duration_seconds"]; a.n != 2 || a.sum < 0.0069 || a.sum > 0.0071 {
		t.Errorf("apply histogram = %+v, want two samples summing 0.007 s", a)
	}
}
