package broker

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-log/strata/services/broker/internal/dirprobe"
)

// TestUnwritableDataDirReportsNotServing: while the data directory takes
// no writes the broker answers NOT_SERVING to the health check its
// replicator probes (so the controller treats it as down) and says why in
// a log line and a gauge; once writes work again it serves again. The
// probe file's path is blocked by a directory, which fails the write for
// real (the tests run as root, so permissions would not).
func TestUnwritableDataDirReportsNotServing(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.DataDirProbeInterval = 100 * time.Millisecond
	b, c := startBroker(t, cfg)
	health := healthpb.NewHealthClient(c.conn)
	status := func() healthpb.HealthCheckResponse_ServingStatus {
		resp, err := health.Check(ctxT(t), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetStatus()
	}
	const gauge = "strata_broker_data_dir_writable"
	eventually(t, 5*time.Second, func() bool { return metricValue(t, b, gauge) == 1 })
	if st := status(); st != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("healthy broker: %v", st)
	}

	// The probe's own file may be there for a moment: retry until the
	// directory takes its place.
	block := filepath.Join(cfg.DataDir, dirprobe.FileName)
	eventually(t, 5*time.Second, func() bool { return os.Mkdir(block, 0o700) == nil })
	eventually(t, 5*time.Second, func() bool { return status() == healthpb.HealthCheckResponse_NOT_SERVING })
	if v := metricValue(t, b, gauge); v != 0 {
		t.Errorf("%s = %v while not writable", gauge, v)
	}

	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() bool { return status() == healthpb.HealthCheckResponse_SERVING })
	if v := metricValue(t, b, gauge); v != 1 {
		t.Errorf("%s = %v once writable again", gauge, v)
	}
}
