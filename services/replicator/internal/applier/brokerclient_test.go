package applier

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
	"github.com/strata-log/strata/services/replicator/internal/liveness"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

type replicaServer struct {
	stratav1.UnimplementedLocalReplicaServer
	got chan *stratav1.ApplyPartitionStateRequest
}

func (s *replicaServer) ApplyPartitionState(_ context.Context, req *stratav1.ApplyPartitionStateRequest) (*stratav1.ApplyPartitionStateResponse, error) {
	s.got <- req
	return &stratav1.ApplyPartitionStateResponse{}, nil
}

func waitReady(t *testing.T, b *GRPCBroker) {
	t.Helper()
	select {
	case <-b.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no ready signal")
	}
}

// startBroker serves a fake broker (LocalReplica + health) on addr and returns
// the server, its address and its stop function.
func startBroker(t *testing.T, ca *testutil.CA, addr string) (*replicaServer, string, func()) {
	t.Helper()
	rs, _, addr, stop := startBrokerHealth(t, ca, addr)
	return rs, addr, stop
}

// startBrokerHealth is startBroker that also returns the health server
// (SERVING at start).
func startBrokerHealth(t *testing.T, ca *testutil.CA, addr string) (*replicaServer, *health.Server, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerTLS(t, "broker-1"))))
	rs := &replicaServer{got: make(chan *stratav1.ApplyPartitionStateRequest, 1)}
	stratav1.RegisterLocalReplicaServer(srv, rs)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return rs, hs, ln.Addr().String(), func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}
}

func TestGRPCBrokerOverMTLSSignalsReadyOnRestart(t *testing.T) {
	ca := testutil.NewCA(t)
	rs, addr, stop := startBroker(t, ca, "127.0.0.1:0")
	b, err := DialBroker(addr, ca.ClientTLS(t, "replicator-1"), brokerdial.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	waitReady(t, b)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.ApplyPartitionState(ctx, &stratav1.ApplyPartitionStateRequest{Topic: "t", Role: stratav1.Role_ROLE_LEADER}); err != nil {
		t.Fatal(err)
	}
	if got := <-rs.got; got.Topic != "t" || got.Role != stratav1.Role_ROLE_LEADER {
		t.Fatalf("broker got %v", got)
	}

	// The broker restarts on the same address: Ready fires again.
	stop()
	_, _, stop = startBroker(t, ca, addr)
	defer stop()
	waitReady(t, b)
}

// TestGRPCBrokerProbedDownAndUp: the liveness prober over a real broker
// client reports the broker down when it answers NOT_SERVING and when it
// is gone, and up again at once when it serves again; after a restart on
// the same address it is up, and Ready fires, within about a second.
func TestGRPCBrokerProbedDownAndUp(t *testing.T) {
	ca := testutil.NewCA(t)
	_, hs, addr, stop := startBrokerHealth(t, ca, "127.0.0.1:0")
	b, err := DialBroker(addr, ca.ClientTLS(t, "replicator-1"), brokerdial.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	waitReady(t, b)

	changed := make(chan bool, 8)
	p := liveness.New(b, liveness.Options{Interval: 20 * time.Millisecond, Timeout: 500 * time.Millisecond,
		OnChange: func(up bool) { changed <- up }}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.Run(ctx)
	}()
	defer func() { cancel(); <-stopped }()
	expect := func(want bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		select {
		case up := <-changed:
			if up != want {
				t.Fatalf("reported up=%v, want %v", up, want)
			}
			return time.Since(start)
		case <-time.After(within):
			t.Fatalf("not reported up=%v within %s", want, within)
			return 0
		}
	}

	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	expect(false, 5*time.Second)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	expect(true, 5*time.Second)

	stop()
	expect(false, 5*time.Second)
	_, _, _, stop = startBrokerHealth(t, ca, addr)
	defer stop()
	took := expect(true, 5*time.Second)
	waitReady(t, b)
	t.Logf("reported up %s after the broker restarted", took.Round(time.Millisecond))
	select {
	case up := <-changed:
		t.Fatalf("flapped: reported up=%v while serving", up)
	default:
	}
}

// hangingHealth is a health server that can hang: Check blocks while hung,
// and Watch sends SERVING once and then nothing, as a stopped process's
// open stream would.
type hangingHealth struct {
	healthpb.UnimplementedHealthServer
	mu   sync.Mutex
	gate chan struct{} // non-nil while hung; closed to resume
}

func (h *hangingHealth) setHung(hung bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case hung && h.gate == nil:
		h.gate = make(chan struct{})
	case !hung && h.gate != nil:
		close(h.gate)
		h.gate = nil
	}
}

func (h *hangingHealth) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	h.mu.Lock()
	gate := h.gate
	h.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (h *hangingHealth) Watch(_ *healthpb.HealthCheckRequest, stream grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// TestGRPCBrokerSignalsReadyAfterAHang: a broker that hangs (probes time
// out) keeps its connection and its health stream, which see nothing;
// when it answers again, the first successful Check signals Ready, so the
// applier applies again the states that failed meanwhile.
func TestGRPCBrokerSignalsReadyAfterAHang(t *testing.T) {
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerTLS(t, "broker-1"))))
	hh := &hangingHealth{}
	healthpb.RegisterHealthServer(srv, hh)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		hh.setHung(false)
		srv.Stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	b, err := DialBroker(ln.Addr().String(), ca.ClientTLS(t, "replicator-1"), brokerdial.Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}()
	waitReady(t, b)

	changed := make(chan bool, 8)
	p := liveness.New(b, liveness.Options{Interval: 20 * time.Millisecond, Timeout: 100 * time.Millisecond,
		OnChange: func(up bool) { changed <- up }}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.Run(ctx)
	}()
	defer func() { cancel(); <-stopped }()

	hh.setHung(true)
	select {
	case up := <-changed:
		if up {
			t.Fatal("a hung broker reported up")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a hung broker was not reported down")
	}
	select {
	case <-b.Ready():
		t.Fatal("Ready while the broker hangs")
	default:
	}
	hh.setHung(false)
	select {
	case up := <-changed:
		if !up {
			t.Fatal("reported down again")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the broker answering again was not reported up")
	}
	select {
	case <-b.Ready():
	case <-time.After(time.Second):
		t.Fatal("no Ready after the hang: the states that failed meanwhile wait for the applier's backoff")
	}
}
