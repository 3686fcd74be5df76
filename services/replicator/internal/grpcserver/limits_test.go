package grpcserver

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/connlimit/flood"
	"github.com/strata-log/strata/pkg/connlimit/grpclimit"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLimitsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Limits
		want Limits
	}{
		{"zero means defaults", Limits{}, Limits{HandshakeTimeout: DefaultHandshakeTimeout, MaxStreamsPerConn: DefaultMaxStreamsPerConn, MaxStreamsPerIdentity: DefaultMaxStreamsPerIdentity}},
		{"set values kept", Limits{HandshakeTimeout: time.Second, MaxStreamsPerConn: 3, MaxStreamsPerIdentity: 4}, Limits{HandshakeTimeout: time.Second, MaxStreamsPerConn: 3, MaxStreamsPerIdentity: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.withDefaults(); got != tc.want {
				t.Fatalf("withDefaults() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// counterValue is the value of the counter name with label value on reg.
func counterValue(tb testing.TB, reg *prometheus.Registry, name, label, value string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestServerLimits: the replicator's gRPC server drops a client that
// stalls its TLS handshake at the deadline, counting it, and caps the
// calls one identity has in flight.
func TestServerLimits(t *testing.T) {
	const deadline = 300 * time.Millisecond
	ca := testutil.NewCA(t)
	lg := zaptest.NewLogger(t)
	authz, err := acl.NewAuthorizer(acl.Options{CachePath: t.TempDir() + "/policy.cache"}, lg)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := acl.NewInterceptor(authz, MethodTable(), lg)
	if err != nil {
		t.Fatal(err)
	}
	m := grpclimit.NewMetrics("strata", "replicator")
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	srv, _ := New(ca.ServerTLS(t, "replicator-1"), ic, Deps{Limits: Limits{HandshakeTimeout: deadline, MaxStreamsPerIdentity: 1, Metrics: m}}, lg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	f, err := flood.Start(flood.Options{Addr: ln.Addr().String(), From: "127.0.0.1", Conns: 2, MaxDials: 2,
		Kinds: []flood.Kind{flood.Idle, flood.StalledHandshake}, Bound: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop() })
	res := f.Wait()
	if len(res.Closed) != 2 || res.Longest() < deadline || res.Longest() > deadline+time.Second {
		t.Errorf("flood: %+v, want both connections closed at the %v deadline", res, deadline)
	}
	if got := counterValue(t, reg, "strata_replicator_tls_handshake_failures_total", "reason", grpclimit.ReasonTimeout); got != 2 {
		t.Errorf("handshake timeouts = %v, want 2", got)
	}

	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(ca.ClientTLS(t, "replicator-2"))))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := healthpb.NewHealthClient(cc)
	ws, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ws.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second call in flight for replicator-2: %v, want ResourceExhausted", err)
	}
}
