package brokertest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestBroker: behind mutual TLS the broker takes states only from its own
// replicator and produce from the operator, serves its copy to tools, and
// a restart keeps the log and the address while the role goes.
func TestBroker(t *testing.T) {
	certs := t.TempDir()
	if _, err := pki.InitCluster(certs, pki.ClusterOptions{CAName: "strata-test", Nodes: []string{"1", "2"},
		Operators: []string{"operator"}}, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	tlsFor := func(name string) *pki.Reloader {
		rl, err := pki.NewReloader(pki.DirFiles(certs, name), pki.ReloaderOptions{}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return rl
	}
	b := Start(t, Options{NodeID: 1, Creds: credentials.NewTLS(tlsFor("broker-1").ServerConfig()), Logger: zaptest.NewLogger(t)})
	dial := func(name string) *grpc.ClientConn {
		conf, err := tlsFor(name).ClientConfig("localhost")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := grpc.NewClient(b.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() }) //nolint:errcheck // a test client
		return conn
	}
	own, other, op := dial("replicator-1"), dial("replicator-2"), dial("operator")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	lead := &stratav1.ApplyPartitionStateRequest{Topic: "t", Role: stratav1.Role_ROLE_LEADER, LeaderEpoch: 3, LeaderId: 1,
		Replicas: []int32{1}, Isr: []int32{1}, Config: &stratav1.TopicConfig{Partitions: 1, ReplicationFactor: 1}}
	if _, err := stratav1.NewLocalReplicaClient(other).ApplyPartitionState(ctx, lead); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("apply as replicator-2: %v, want PermissionDenied", err)
	}
	if _, err := stratav1.NewLocalReplicaClient(own).ApplyPartitionState(ctx, lead); err != nil {
		t.Fatal(err)
	}
	if _, err := stratav1.NewLogClient(op).Produce(ctx, &stratav1.ProduceRequest{Topic: "t",
		Records: []*stratav1.Record{{Value: []byte("a")}, {Value: []byte("b")}}}); err != nil {
		t.Fatal(err)
	}
	read := func() *stratav1.ReadReplicaResponse {
		t.Helper()
		resp, err := stratav1.NewReplicaToolsClient(op).ReadReplica(ctx, &stratav1.ReadReplicaRequest{Topic: "t"})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := read(); len(r.GetRecords()) != 2 || r.GetRecords()[1].GetLeaderEpoch() != 3 || r.GetRole() != stratav1.Role_ROLE_LEADER {
		t.Fatalf("read as leader: %v", r)
	}

	addr := b.Addr()
	if err := b.Restart(); err != nil {
		t.Fatal(err)
	}
	if b.Addr() != addr {
		t.Fatalf("restarted at %s, was %s", b.Addr(), addr)
	}
	// The client reconnects on its own (WaitForReady: within ctx).
	r, err := stratav1.NewReplicaToolsClient(op).ReadReplica(ctx, &stratav1.ReadReplicaRequest{Topic: "t"}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("read after restart: %v", err)
	}
	if len(r.GetRecords()) != 2 || r.GetRole() != stratav1.Role_ROLE_NONE || r.GetLogEndOffset() != 2 {
		t.Fatalf("read after restart: %v, want the two records and no role", r)
	}
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}
