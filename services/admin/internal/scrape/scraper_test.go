package scrape

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTarget serves whatever text it was last given; status != 200
// answers that status.
type fakeTarget struct {
	mu     sync.Mutex
	body   string
	status int
}

func (f *fakeTarget) set(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.body = status, body
}

func (f *fakeTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.status != http.StatusOK {
		w.WriteHeader(f.status)
		return
	}
	fmt.Fprint(w, f.body)
}

func brokerText(produced, bytes, consumed float64) string {
	return fmt.Sprintf(`# TYPE strata_broker_produced_records_total counter
strata_broker_produced_records_total{topic="orders"} %g
# TYPE strata_broker_produced_bytes_total counter
strata_broker_produced_bytes_total{topic="orders"} %g
# TYPE strata_broker_consumed_records_total counter
strata_broker_consumed_records_total{topic="orders"} %g
# TYPE strata_broker_consumed_bytes_total counter
strata_broker_consumed_bytes_total{topic="orders"} 0
`, produced, bytes, consumed)
}

const replicatorText = `# TYPE strata_replication_lag_records gauge
strata_replication_lag_records{partition="0",topic="orders"} 3
strata_replication_lag_records{partition="1",topic="orders"} 12
strata_replication_lag_records{partition="0",topic="<script>"} 1
# TYPE strata_local_broker_up gauge
strata_local_broker_up 0
`

func TestScrapeRatesLagAndHealth(t *testing.T) {
	b1, b2, r1 := &fakeTarget{}, &fakeTarget{}, &fakeTarget{}
	s1, s2, s3 := httptest.NewServer(b1), httptest.NewServer(b2), httptest.NewServer(r1)
	defer s1.Close()
	defer s2.Close()
	defer s3.Close()
	targets, err := ParseTargets(fmt.Sprintf("broker-1=%s/metrics, broker-2=%s,replicator-1=%s",
		s1.URL, strings.TrimPrefix(s2.URL, "http://"), s3.URL))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	s := New(targets, Options{Interval: 5 * time.Second, Window: 20 * time.Second, Now: func() time.Time { return now }}, zaptest.NewLogger(t))
	ctx := context.Background()

	b1.set(200, brokerText(100, 1000, 0))
	b2.set(200, brokerText(50, 500, 10))
	r1.set(200, replicatorText)
	s.Scrape(ctx)
	now = now.Add(5 * time.Second)
	b1.set(200, brokerText(600, 6000, 0))
	b2.set(200, brokerText(5, 50, 60)) // restarted: counters began again
	s.Scrape(ctx)

	pts := s.Points()
	if len(pts) != 2 {
		t.Fatalf("%d points", len(pts))
	}
	got := pts[1].Topics["orders"]
	// broker-1: 500 records in 5 s; broker-2 restarted: 5 records since;
	// consumed, counted per counter as Prometheus does: 50 in 5 s.
	if got.ProduceRecords != 101 || got.ProduceBytes != 1010 || got.ConsumeRecords != 10 {
		t.Fatalf("rates %+v", got)
	}
	if got.LagRecords != 12 || pts[1].Topics["<script>"].LagRecords != 1 {
		t.Fatalf("lag %+v / %+v", got, pts[1].Topics["<script>"])
	}

	b2.set(http.StatusInternalServerError, "")
	for range 5 {
		now = now.Add(5 * time.Second)
		s.Scrape(ctx)
	}
	if n := len(s.Points()); n != 5 {
		t.Fatalf("ring holds %d points, want window/interval+1 = 5", n)
	}
	h := s.Health()
	if !h[0].Up || h[1].Up || h[1].Err == "" || !h[2].Up {
		t.Fatalf("health %+v", h)
	}
	if h[2].LocalBrokerUp == nil || *h[2].LocalBrokerUp {
		t.Fatalf("replicator's own probe of its broker not read: %+v", h[2])
	}
	if names := TopicNames(s.Points()); len(names) != 2 || names[0] != "<script>" {
		t.Fatalf("topics %v", names)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	f := &fakeTarget{}
	f.set(200, brokerText(1, 1, 1))
	srv := httptest.NewServer(f)
	defer srv.Close()
	targets, err := ParseTargets("broker-1=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := New(targets, Options{Interval: 10 * time.Millisecond}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for len(s.Points()) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no scrapes")
		}
		time.Sleep(5 * time.Millisecond) // polling the ring: it signals nothing
	}
	cancel()
	<-done
}

func TestParseTargets(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"host port", "broker-1=broker-1:9100", true},
		{"url", "replicator-2=https://r2:9193/metrics", true},
		{"empty", "", true},
		{"no addr", "broker-1=", false},
		{"no equals", "broker-1", false},
		{"bad kind", "admin-1=a:1", false},
		{"bad id", "broker-x=a:1", false},
		{"no port", "broker-1=host", false},
		{"bad scheme", "broker-1=ftp://h/metrics", false},
		{"twice", "broker-1=a:1,broker-1=b:1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTargets(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseTargets(%q) = %v", tc.in, err)
			}
			if err != nil && !errors.Is(err, ErrBadTarget) {
				t.Fatalf("error does not wrap ErrBadTarget: %v", err)
			}
		})
	}
}
