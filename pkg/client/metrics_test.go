package client

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestProducerMetrics registers a producer's Metrics on the application's
// own registry and reads records, batches, one retry and latency.
func TestProducerMetrics(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	failed := false
	fc.produceErr = func(*fakeBroker, *stratav1.ProduceRequest) *stratav1.Error {
		if !failed { // the first attempt fails retriably once
			failed = true
			return &stratav1.Error{Code: int32(codes.Unavailable), Message: "try again"}
		}
		return nil
	}
	cl := newTestClient(t, fc)
	m := NewMetrics()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(m)
	p := newTestProducer(t, cl, ProducerOptions{Metrics: m})
	ctx := testCtx(t)
	var rs []*Result
	for i := range 10 {
		rs = append(rs, p.Produce(ctx, &Record{Topic: "t", Value: []byte(strconv.Itoa(i))}))
	}
	waitAll(t, ctx, rs)

	want := `
# HELP strata_client_produce_batches_in_flight Batches sent (or being retried) and not yet answered.
# TYPE strata_client_produce_batches_in_flight gauge
strata_client_produce_batches_in_flight 0
# HELP strata_client_produce_retries_total Produce attempts that failed and were retried.
# TYPE strata_client_produce_retries_total counter
strata_client_produce_retries_total 1
# HELP strata_client_produced_records_total Records the producer finished, by result (ok: acknowledged; error: failed).
# TYPE strata_client_produced_records_total counter
strata_client_produced_records_total{result="ok"} 10
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "strata_client_produce_batches_in_flight",
		"strata_client_produce_retries_total", "strata_client_produced_records_total"); err != nil {
		t.Error(err)
	}
	batches := testutil.ToFloat64(m.batches.WithLabelValues("ok"))
	if batches < 1 || batches > 10 {
		t.Errorf("ok batches = %v, want 1..10", batches)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("latency histogram: %d series", n)
	}
}
