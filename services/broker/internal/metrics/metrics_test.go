package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
)

func TestBatchAndPartitionMetrics(t *testing.T) {
	stats := []PartitionStat{
		{Topic: "a", Partition: 0, Leader: true, Replicas: 3, ISR: 1, MinISR: 2, Segments: -1, Bytes: -1, CorruptRecords: -1, NoSpaceErrors: -1},
		{Topic: "a", Partition: 1, Leader: true, Replicas: 3, ISR: 2, MinISR: 2, Segments: -1, Bytes: -1, CorruptRecords: -1, NoSpaceErrors: -1},
	}
	m := New(func() []PartitionStat { return stats })
	m.WatchDataDirs(t.TempDir())
	m.ProduceBatch("all", codes.OK, 3*time.Millisecond)
	m.ProduceBatch("all", codes.Unavailable, time.Millisecond)
	m.ProduceBatch("leader", codes.FailedPrecondition, time.Millisecond)
	m.ReadBatch("consume", time.Millisecond)
	m.ReadBatch("fetch", 2*time.Millisecond)

	want := `
# HELP strata_broker_produce_batch_errors_total Produce batches refused or failed, by gRPC status code.
# TYPE strata_broker_produce_batch_errors_total counter
strata_broker_produce_batch_errors_total{code="FailedPrecondition"} 1
strata_broker_produce_batch_errors_total{code="Unavailable"} 1
# HELP strata_broker_under_min_isr 1 when a partition this broker leads has fewer in-sync replicas than its min.insync.replicas (acks=all produce is refused).
# TYPE strata_broker_under_min_isr gauge
strata_broker_under_min_isr{partition="0",topic="a"} 1
strata_broker_under_min_isr{partition="1",topic="a"} 0
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "strata_broker_produce_batch_errors_total", "strata_broker_under_min_isr"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.produceBatch); n != 2 {
		t.Errorf("produce batch histograms: %d series, want 2 (acks all, leader)", n)
	}
	if n := testutil.CollectAndCount(m.readBatch); n != 2 {
		t.Errorf("read batch histograms: %d series, want 2 (consume, fetch)", n)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var disk int
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "strata_broker_data_dir_") {
			disk++
			if v := mf.GetMetric()[0].GetGauge().GetValue(); v <= 0 && mf.GetName() != "strata_broker_data_dir_used_bytes" {
				t.Errorf("%s = %v, want > 0", mf.GetName(), v)
			}
		}
	}
	if disk != 3 {
		t.Errorf("%d data dir series, want free, used and capacity", disk)
	}
}
