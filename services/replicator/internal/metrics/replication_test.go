package metrics

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// value returns the value of the series name{labels}, and whether it exists.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return metricValue(m), true
		}
	}
	return 0, false
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return 0
}

func TestReplicationMetrics(t *testing.T) {
	c := &clock{now: time.Unix(1000, 0)}
	r := newReplication(c.Now)
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.collectors()...)
	tp := map[string]string{"topic": "t", "partition": "3"}
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		got, ok := value(t, reg, name, labels)
		if !ok || got != want {
			t.Fatalf("%s%v = %v (present %v), want %v", name, labels, got, ok, want)
		}
	}

	r.FetcherStarted("t", 3)
	check("strata_replication_fetchers", nil, 1)
	check("strata_replication_lag_seconds", tp, 0)
	c.add(2 * time.Second)
	r.Fetched("t", 3, 100, true, 40)
	c.add(3 * time.Second)
	check("strata_replication_fetch_bytes_total", tp, 100)
	check("strata_replication_lag_records", tp, 40)
	check("strata_replication_last_append_age_seconds", tp, 3)
	check("strata_replication_lag_seconds", tp, 5) // behind since the start
	r.Fetched("t", 3, 50, true, 0)
	r.Fetched("t", 3, 0, false, 0) // a heartbeat: no local call
	c.add(time.Second)
	check("strata_replication_fetch_bytes_total", tp, 150)
	check("strata_replication_lag_seconds", tp, 0)
	check("strata_replication_last_append_age_seconds", tp, 1)

	r.FetchError("fetch", "Unavailable")
	check("strata_replication_fetch_errors_total", map[string]string{"step": "fetch", "code": "Unavailable"}, 1)

	// A restart keeps the series; the partition leaving drops them.
	r.FetcherStopped("t", 3, false)
	r.FetcherStarted("t", 3)
	check("strata_replication_fetch_bytes_total", tp, 150)
	check("strata_replication_fetcher_starts_total", nil, 2)
	r.FetcherStopped("t", 3, true)
	check("strata_replication_fetchers", nil, 0)
	for _, name := range []string{"strata_replication_fetch_bytes_total", "strata_replication_lag_records",
		"strata_replication_lag_seconds", "strata_replication_last_append_age_seconds"} {
		if _, ok := value(t, reg, name, tp); ok {
			t.Fatalf("%s still exported after the partition left", name)
		}
	}
}
