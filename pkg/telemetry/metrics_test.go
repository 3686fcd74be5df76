package telemetry_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startMetrics serves reg on a loopback port; the cleanup shuts it down
// and checks that Serve returned nil.
func startMetrics(tb testing.TB, reg *prometheus.Registry, pprof bool) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := telemetry.NewMetricsServer(telemetry.MetricsOptions{Registry: reg, Pprof: pprof, Logger: zaptest.NewLogger(tb)})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			tb.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestMetricsServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_test_events_total", Help: "Test events."})
	reg.MustRegister(c)
	c.Add(3)
	for _, tc := range []struct {
		name  string
		pprof bool
		paths map[string]int // path: status
	}{
		{"metrics only", false, map[string]int{"/metrics": 200, "/debug/pprof/": 404, "/debug/pprof/heap": 404}},
		{"with pprof", true, map[string]int{"/metrics": 200, "/debug/pprof/": 200, "/debug/pprof/heap": 200,
			"/debug/pprof/symbol": 200, "/debug/pprof/cmdline": 404}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := startMetrics(t, reg, tc.pprof)
			for path, want := range tc.paths {
				code, body := get(t, base+path)
				if code != want {
					t.Errorf("GET %s = %d, want %d", path, code, want)
				}
				if path == "/metrics" && !strings.Contains(body, "strata_test_events_total 3") {
					t.Errorf("/metrics lacks the registered counter:\n%s", body)
				}
			}
		})
	}
}
