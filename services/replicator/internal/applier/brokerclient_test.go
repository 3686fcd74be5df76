package applier

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

type replicaServer struct {
	stratav1.UnimplementedReplicaServer
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

// startBroker serves a fake broker (Replica + health) on addr and returns
// the server, its address and its stop function.
func startBroker(t *testing.T, ca *testutil.CA, addr string) (*replicaServer, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerTLS(t, "broker-1"))))
	rs := &replicaServer{got: make(chan *stratav1.ApplyPartitionStateRequest, 1)}
	stratav1.RegisterReplicaServer(srv, rs)
	healthpb.RegisterHealthServer(srv, health.NewServer()) // starts SERVING
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	return rs, ln.Addr().String(), func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}
}

func TestGRPCBrokerOverMTLSSignalsReadyOnRestart(t *testing.T) {
	ca := testutil.NewCA(t)
	rs, addr, stop := startBroker(t, ca, "127.0.0.1:0")
	b, err := DialBroker(addr, ca.ClientTLS(t, "replicator-1"), zaptest.NewLogger(t))
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
