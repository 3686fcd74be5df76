package broker

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// leaseReplicator is a replicator-1 whose Metadata names a leader of
// orders/0 (broker 1 in epoch 1 at first) while it is up, and fails
// Unavailable (as a replicator out of contact with the Raft leader does)
// while it is down.
// Its process can be killed and started again on the same address.
type leaseReplicator struct {
	stratav1.UnimplementedMetadataServer
	addr  string
	creds credentials.TransportCredentials

	mu     sync.Mutex
	srv    *grpc.Server
	down   bool
	leader int32 // of orders/0
	epoch  int32
	asked  int
}

func startLeaseReplicator(tb testing.TB, certs string) *leaseReplicator {
	tb.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(certs, "replicator-1"), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	f := &leaseReplicator{addr: "127.0.0.1:0", creds: credentials.NewTLS(rl.ServerConfig()), leader: 1, epoch: 1}
	f.start(tb)
	tb.Cleanup(f.kill)
	return f
}

// start serves on f.addr (a fresh port the first time).
func (f *leaseReplicator) start(tb testing.TB) {
	tb.Helper()
	lis, err := net.Listen("tcp", f.addr)
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(f.creds))
	stratav1.RegisterMetadataServer(srv, f)
	f.mu.Lock()
	f.addr, f.srv = lis.Addr().String(), srv
	f.mu.Unlock()
	go srv.Serve(lis) //nolint:errcheck // returns after Stop
}

// kill stops the server at once, as a killed process would.
func (f *leaseReplicator) kill() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

func (f *leaseReplicator) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	if f.down {
		return nil, status.Error(codes.Unavailable, "replicator is catching up with the cluster metadata; retry")
	}
	return &stratav1.MetadataResponse{
		Brokers: []*stratav1.BrokerInfo{{Id: 1, Address: "b1:9092", Alive: true}, {Id: 2, Address: "b2:9092", Alive: true}},
		Topics: []*stratav1.TopicMetadata{{Name: "orders", Partitions: []*stratav1.PartitionMetadata{
			{Partition: 0, LeaderId: f.leader, LeaderEpoch: f.epoch}, {Partition: 1, LeaderId: 2, LeaderEpoch: 1},
		}}},
	}, nil
}

// setLeader makes the answers name leader in epoch for orders/0.
func (f *leaseReplicator) setLeader(leader, epoch int32) {
	f.mu.Lock()
	f.leader, f.epoch = leader, epoch
	f.mu.Unlock()
}

func (f *leaseReplicator) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *leaseReplicator) questions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

// TestLeaderFencedWhileReplicatorGone: a cluster-mode leader keeps
// accepting produce while its replicator confirms the leadership; once the
// replicator stops answering (or is killed) it refuses produce
// (Unavailable) within the lease, and once the replicator names another
// leader at the next renewal; it reports it and keeps serving reads. When
// the replicator answers again (or a new state comes) it accepts produce
// again, without a restart.
func TestLeaderFencedWhileReplicatorGone(t *testing.T) {
	const lease = 500 * time.Millisecond
	certs := initClusterCerts(t)
	repl := startLeaseReplicator(t, certs)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ReplicatorAddr, cfg.LeaderLease = repl.addr, lease
	b := startTLSBroker(t, cfg)
	ctx := ctxT(t)
	own := replicaClient(t, b, certs, "replicator-1")
	op := dialAs(t, b, certs, "operator")
	produce := func() error {
		_, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partition: 0, Records: values(1, "v"), Acks: stratav1.Acks_ACKS_LEADER})
		return err
	}
	consumed := func() int {
		c, err := op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "orders", Partition: 0, Offset: 0, MaxRecords: 1000})
		if err != nil {
			t.Fatalf("consume: %v", err)
		}
		return len(c.GetRecords())
	}

	if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 1, 1, "b1:9092")); err != nil {
		t.Fatalf("apply leader: %v", err)
	}
	if err := produce(); err != nil {
		t.Fatalf("produce on a new leader: %v", err)
	}
	// Renewed every quarter lease: still accepting well past one lease.
	asked := repl.questions()
	eventually(t, 10*time.Second, func() bool { return repl.questions() >= asked+8 })
	if err := produce(); err != nil {
		t.Fatalf("produce with the lease renewed for 8 quarters: %v", err)
	}

	for round, tc := range []struct {
		name       string
		gone, back func()
		refusal    string
	}{
		{"replicator out of contact with the Raft leader", func() { repl.setDown(true) }, func() { repl.setDown(false) }, "leader lease"},
		{"replicator killed", repl.kill, func() { repl.start(t) }, "leader lease"},
		// The replicator is current but could not tell the broker (its
		// ApplyPartitionState failed): its answer ends the lease at once.
		{"replicator names another leader", func() { repl.setLeader(2, 2) }, func() {
			repl.setLeader(1, 3)
			if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 3, 1, "b1:9092")); err != nil {
				t.Fatalf("apply leader in epoch 3: %v", err)
			}
		}, "no longer names this broker the leader"},
	} {
		tc.gone()
		gone := time.Now()
		var refused error
		eventually(t, 10*time.Second, func() bool {
			refused = produce()
			return refused != nil
		})
		took := time.Since(gone)
		st := wantCode(t, refused, codes.Unavailable)
		if !strings.Contains(st.Message(), tc.refusal) {
			t.Fatalf("%s: refusal %q, want it to say %q", tc.name, st.Message(), tc.refusal)
		}
		// The refusal comes a lease after the last confirmation, at most a
		// lease after the replicator went; the slack is for a loaded machine.
		if took > lease+2*time.Second {
			t.Fatalf("%s: produce refused %s after, lease %s", tc.name, took, lease)
		}
		t.Logf("%s: produce refused %s after (lease %s)", tc.name, took.Round(time.Millisecond), lease)
		n := consumed()
		if n < 2 {
			t.Fatalf("%s: consumed %d records while fenced, want every acknowledged one", tc.name, n)
		}
		eventually(t, 10*time.Second, func() bool {
			return strings.Contains(scrape(t, b), fmt.Sprintf(`strata_broker_leader_lease_events_total{event="expired"} %d`, round+1))
		})
		if err := produce(); status.Code(err) != codes.Unavailable {
			t.Fatalf("%s: produce still fenced: %v, want Unavailable", tc.name, err)
		}
		if got := consumed(); got != n {
			t.Fatalf("%s: consumed %d records, then %d: a refused produce was appended", tc.name, n, got)
		}

		// Back: accepted again within a few renewals, no restart.
		tc.back()
		back := time.Now()
		eventually(t, 10*time.Second, func() bool { return produce() == nil })
		t.Logf("%s: produce accepted %s after the replicator came back", tc.name, time.Since(back).Round(time.Millisecond))
		eventually(t, 10*time.Second, func() bool {
			return strings.Contains(scrape(t, b), fmt.Sprintf(`strata_broker_leader_lease_events_total{event="renewed"} %d`, round+1))
		})
		if got := consumed(); got != n+1 {
			t.Fatalf("%s: consumed %d records after the lease came back, want %d", tc.name, got, n+1)
		}
	}
}
