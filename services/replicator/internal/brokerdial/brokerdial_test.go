package brokerdial

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs a gRPC server with grpc.health.v1 (SERVING) on addr until stop.
func serve(t *testing.T, ca *testutil.CA, addr string) (stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerTLS(t, "broker-1"))))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	return func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// refuse accepts connections on addr and closes each at once, counting
// them: a port that answers but serves nothing, as a broker starting up.
func refuse(t *testing.T, addr string) (attempts *atomic.Int32, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	attempts = new(atomic.Int32)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			if err := c.Close(); err != nil {
				t.Error(err)
			}
		}
	}()
	return attempts, func() {
		if err := ln.Close(); err != nil {
			t.Error(err)
		}
		<-done
	}
}

// TestRetriesEverySecondWhileTheBrokerIsAway: while the broker is away a
// client keeps trying at least every MaxBackoff (default 1s; gRPC's own
// backoff would be past 2.5s after 4s), so it is connected within about a
// second of the broker's return however long it was away.
func TestRetriesEverySecondWhileTheBrokerIsAway(t *testing.T) {
	ca := testutil.NewCA(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(testutil.FreePort(t)))
	stop := serve(t, ca, addr)
	conn, err := Dial(addr, ca.ClientTLS(t, "replicator-1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := conn.Close(); err != nil {
			t.Error(err)
		}
	}()
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}

	stop()
	// Once the client has seen the connection go (a call sent on it before
	// would fail, not wait)...
	for st := conn.GetState(); st == connectivity.Ready; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			t.Fatal(ctx.Err())
		}
	}
	attempts, stopRefusing := refuse(t, addr)
	// A call waiting for the broker keeps the client connecting.
	checked := make(chan error, 1)
	go func() {
		_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
		checked <- err
	}()
	const away = 4 * time.Second
	select {
	case err := <-checked:
		t.Fatalf("health check answered while the broker was away: %v", err)
	case <-time.After(away):
	}
	stopRefusing()
	// At most 1.2s (1s with 20% jitter) between attempts after the first
	// few: gRPC's default backoff (1s growing by 1.6) makes 3 in 4s.
	if n := attempts.Load(); n < 5 {
		t.Fatalf("%d connection attempts in %s away, want at least 5", n, away)
	}
	back := time.Now()
	defer serve(t, ca, addr)()
	if err := <-checked; err != nil {
		t.Fatalf("health check after the broker returned: %v", err)
	}
	took := time.Since(back)
	t.Logf("%d attempts in %s away; connected %s after the broker returned", attempts.Load(), away, took.Round(time.Millisecond))
	if took > 3*time.Second {
		t.Fatalf("connected %s after the broker returned, want about a second at most", took)
	}
}
