package broker

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// fakeReplicator is the replicator a cluster-mode broker forwards Topics
// and Metadata to: a real mTLS gRPC server as replicator-1 that records
// who called and answers from a fixed topic.
type fakeReplicator struct {
	stratav1.UnimplementedTopicsServer
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedControllerServer
	addr string

	mu      sync.Mutex
	callers []string
	created []string
	resigns []*stratav1.ResignLeadershipRequest
}

func startFakeReplicator(tb testing.TB, certs string) *fakeReplicator {
	tb.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(certs, "replicator-1"), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	f := &fakeReplicator{addr: lis.Addr().String()}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(rl.ServerConfig())))
	stratav1.RegisterTopicsServer(srv, f)
	stratav1.RegisterMetadataServer(srv, f)
	stratav1.RegisterControllerServer(srv, f)
	go srv.Serve(lis) //nolint:errcheck // returns after Stop
	tb.Cleanup(srv.Stop)
	return f
}

func (f *fakeReplicator) record(ctx context.Context) {
	p, _ := peer.FromContext(ctx)
	cn := ""
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
		cn = ti.State.PeerCertificates[0].Subject.CommonName
	}
	f.mu.Lock()
	f.callers = append(f.callers, cn)
	f.mu.Unlock()
}

func (f *fakeReplicator) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	f.record(ctx)
	if req.GetName() == "exists" {
		return nil, status.Error(codes.AlreadyExists, "topic exists")
	}
	f.mu.Lock()
	f.created = append(f.created, req.GetName())
	f.mu.Unlock()
	return &stratav1.CreateTopicResponse{Topic: &stratav1.TopicMetadata{Name: req.GetName()}}, nil
}

// ResignLeadership records a leader's resignation and answers as the
// controller would with replicas [1 2 3]: broker 2 leads the next epoch.
func (f *fakeReplicator) ResignLeadership(ctx context.Context, req *stratav1.ResignLeadershipRequest) (*stratav1.ResignLeadershipResponse, error) {
	f.record(ctx)
	f.mu.Lock()
	f.resigns = append(f.resigns, req)
	f.mu.Unlock()
	return &stratav1.ResignLeadershipResponse{LeaderId: 2, LeaderEpoch: req.GetLeaderEpoch() + 1, Isr: []int32{2, 3}}, nil
}

// resignations are the resignations recorded for topic.
func (f *fakeReplicator) resignations(topic string) []*stratav1.ResignLeadershipRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*stratav1.ResignLeadershipRequest
	for _, r := range f.resigns {
		if r.GetTopic() == topic {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeReplicator) Metadata(ctx context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	f.record(ctx)
	return &stratav1.MetadataResponse{
		Brokers: []*stratav1.BrokerInfo{{Id: 1, Address: "b1:9092", Alive: true}, {Id: 2, Address: "b2:9092", Alive: true}},
		Topics: []*stratav1.TopicMetadata{{Name: "orders", Partitions: []*stratav1.PartitionMetadata{
			{Partition: 0, LeaderId: 1, LeaderEpoch: 1}, {Partition: 1, LeaderId: 2, LeaderEpoch: 1},
		}}},
	}, nil
}

// startClusterBroker starts broker-1 in cluster mode beside a fake replicator.
func startClusterBroker(t *testing.T) (*Broker, *fakeReplicator, string) {
	t.Helper()
	certs := initClusterCerts(t)
	fr := startFakeReplicator(t, certs)
	return startNodeBroker(t, certs, 1, fr.addr), fr, certs
}

// initClusterCerts is initCerts with nodes 1 to 3.
func initClusterCerts(t *testing.T) string {
	t.Helper()
	certs := initCerts(t)
	if _, err := pki.InitCluster(certs, pki.ClusterOptions{CAName: "strata-test", Nodes: []string{"1", "2", "3"}, Operators: []string{"operator"}}, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	return certs
}

// startNodeBroker starts broker-<id> in cluster mode with its replicator at
// replicatorAddr.
func startNodeBroker(t *testing.T, certs string, id int32, replicatorAddr string) *Broker {
	t.Helper()
	cfg := tlsConfig(t.TempDir(), certs)
	f := pki.DirFiles(certs, "broker-"+strconv.Itoa(int(id)))
	cfg.TLSCert, cfg.TLSKey = f.CertFile, f.KeyFile
	cfg.NodeID = id
	cfg.ReplicatorAddr = replicatorAddr
	return startTLSBroker(t, cfg)
}

// replicaClients are a broker's three replica services on one connection.
type replicaClients struct {
	stratav1.ReplicaFetchClient
	stratav1.LocalReplicaClient
	stratav1.ReplicaToolsClient
}

func replicaClient(tb testing.TB, b *Broker, certs, name string) replicaClients {
	cc := dialAs(tb, b, certs, name).conn
	return replicaClients{stratav1.NewReplicaFetchClient(cc), stratav1.NewLocalReplicaClient(cc), stratav1.NewReplicaToolsClient(cc)}
}

func orders(role stratav1.Role, epoch, leader int32, leaderAddr string) *stratav1.ApplyPartitionStateRequest {
	return &stratav1.ApplyPartitionStateRequest{
		Topic: "orders", Partition: 0, Role: role, LeaderEpoch: epoch, LeaderId: leader, LeaderAddress: leaderAddr,
		// Broker 2 never fetches here, so the ISR is the leader alone (an ISR
		// with 2 would hold the HW; replication_test.go covers that).
		Replicas: []int32{1, 2}, Isr: []int32{1},
		Config: &stratav1.TopicConfig{Partitions: 2, ReplicationFactor: 2, MinInsyncReplicas: 1},
	}
}

func TestClusterModeApplyPartitionState(t *testing.T) {
	b, _, certs := startClusterBroker(t)
	ctx := ctxT(t)
	own := replicaClient(t, b, certs, "replicator-1")
	op := dialAs(t, b, certs, "operator")

	t.Run("only this node's replicator may apply", func(t *testing.T) {
		for _, who := range []string{"operator", "broker-1", "replicator-2", "alice"} {
			_, err := replicaClient(t, b, certs, who).ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 1, 1, "b1:9092"))
			wantCode(t, err, codes.PermissionDenied)
		}
		// No topic was created: a cluster-mode broker answers "not the
		// leader, leader unknown" (retriable) for a topic it does not hold.
		if _, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Records: values(1, "x")}); status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("produce after refused applies: %v, want FailedPrecondition", err)
		}
		if _, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"}); status.Code(err) != codes.NotFound {
			t.Fatalf("a refused apply created the topic: %v", err)
		}
	})

	t.Run("every LocalReplica method answers only this node's replicator", func(t *testing.T) {
		// replicator-2 holds replicate on cluster, so the ACL lets it
		// through: the refusal is the service's own. The methods come from
		// the service descriptor, so a new one cannot skip the check.
		other := dialAs(t, b, certs, "replicator-2").conn
		for _, m := range stratav1.LocalReplica_ServiceDesc.Methods {
			full := "/" + stratav1.LocalReplica_ServiceDesc.ServiceName + "/" + m.MethodName
			// An empty message decodes as an empty request of any type.
			err := other.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
			if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "only replicator-1") {
				t.Errorf("%s as replicator-2: %v, want PermissionDenied naming replicator-1", full, err)
			}
		}
	})

	t.Run("leader serves produce and consume", func(t *testing.T) {
		if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 1, 1, "b1:9092")); err != nil {
			t.Fatalf("apply leader: %v", err)
		}
		resp, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partition: 0, Records: values(3, "v")})
		if err != nil || resp.GetBaseOffset() != 0 {
			t.Fatalf("produce on leader = %v, %v", resp, err)
		}
		c, err := op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "orders", Partition: 0, Offset: 0, MaxRecords: 10})
		if err != nil || len(c.GetRecords()) != 3 {
			t.Fatalf("consume on leader = %d records, %v", len(c.GetRecords()), err)
		}
		st, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders", Partition: 0})
		if err != nil || st.GetRole() != stratav1.Role_ROLE_LEADER || st.GetLeaderEpoch() != 1 || st.GetLogEndOffset() != 3 || st.GetLatestLocalEpoch() != 1 {
			t.Fatalf("status = %v, %v", st, err)
		}
	})

	t.Run("partition never assigned answers not leader", func(t *testing.T) {
		_, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Partition: 1, Records: values(1, "x")})
		wantCode(t, err, codes.FailedPrecondition)
	})

	t.Run("stale epoch refused", func(t *testing.T) {
		if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 3, 1, "b1:9092")); err != nil {
			t.Fatal(err)
		}
		_, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_FOLLOWER, 2, 2, "b2:9092"))
		wantCode(t, err, codes.FailedPrecondition)
		if _, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Records: values(1, "x")}); err != nil {
			t.Fatalf("the stale state took effect: %v", err)
		}
	})

	t.Run("demotion ends streams and redirects clients", func(t *testing.T) {
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		cs, err := op.log.ConsumeStream(sctx, &stratav1.ConsumeStreamRequest{Topic: "orders",
			Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_LATEST}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_FOLLOWER, 4, 2, "b2:9092")); err != nil {
			t.Fatal(err)
		}
		_, err = cs.Recv()
		st := wantCode(t, err, codes.FailedPrecondition)
		var nl *stratav1.NotLeader
		for _, d := range st.Details() {
			if d, ok := d.(*stratav1.NotLeader); ok {
				nl = d
			}
		}
		if nl == nil || nl.GetLeaderId() != 2 || nl.GetLeaderAddress() != "b2:9092" || nl.GetLeaderEpoch() != 4 {
			t.Fatalf("stream ended with %v, want NotLeader naming broker 2 in epoch 4", st.Details())
		}
		_, err = op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Records: values(1, "x")})
		wantCode(t, err, codes.FailedPrecondition)
		_, err = op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "orders"})
		wantCode(t, err, codes.FailedPrecondition)
	})

	t.Run("bad requests", func(t *testing.T) {
		bad := orders(stratav1.Role_ROLE_LEADER, 5, 2, "b2:9092") // leader is not this node
		_, err := own.ApplyPartitionState(ctx, bad)
		wantCode(t, err, codes.InvalidArgument)
		bad = orders(stratav1.Role_ROLE_UNSPECIFIED, 5, 1, "")
		_, err = own.ApplyPartitionState(ctx, bad)
		wantCode(t, err, codes.InvalidArgument)
		bad = orders(stratav1.Role_ROLE_FOLLOWER, 5, 2, "")
		bad.Partition = 7
		_, err = own.ApplyPartitionState(ctx, bad)
		wantCode(t, err, codes.NotFound)
	})

	t.Run("releasing every partition removes the topic", func(t *testing.T) {
		for p := int32(0); p < 2; p++ {
			req := orders(stratav1.Role_ROLE_NONE, 6, -1, "")
			req.Partition = p
			if _, err := own.ApplyPartitionState(ctx, req); err != nil {
				t.Fatalf("release %d: %v", p, err)
			}
		}
		_, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders", Partition: 0})
		wantCode(t, err, codes.NotFound)
	})
}

func TestClusterModeForwardsTopicsAndMetadata(t *testing.T) {
	b, fr, certs := startClusterBroker(t)
	ctx := ctxT(t)
	op, alice := dialAs(t, b, certs, "operator"), dialAs(t, b, certs, "alice")
	own := replicaClient(t, b, certs, "replicator-1")
	if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 1, 1, "b1:9092")); err != nil {
		t.Fatal(err)
	}
	if _, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Records: values(5, "v")}); err != nil {
		t.Fatal(err)
	}

	if _, err := op.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "payments"}); err != nil {
		t.Fatalf("forwarded create: %v", err)
	}
	_, err := op.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "exists"})
	wantCode(t, err, codes.AlreadyExists) // the replicator's code comes back unchanged
	_, err = alice.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "alice-topic"})
	wantCode(t, err, codes.PermissionDenied) // checked at the broker, never forwarded

	md, err := op.meta.Metadata(ctx, &stratav1.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.GetBrokers()) != 2 {
		t.Fatalf("metadata brokers = %v, want the replicator's two", md.GetBrokers())
	}
	ps := md.GetTopics()[0].GetPartitions()
	if ps[0].GetLogEndOffset() != 5 || ps[0].GetHighWatermark() != 5 {
		t.Errorf("led partition offsets = %d/%d, want 5/5 filled in locally", ps[0].GetLogEndOffset(), ps[0].GetHighWatermark())
	}
	if ps[1].GetLogStartOffset() != -1 || ps[1].GetLogEndOffset() != -1 || ps[1].GetHighWatermark() != -1 {
		t.Errorf("partition led elsewhere: offsets %d/%d/%d, want -1/-1/-1 (unknown here, not an empty log)",
			ps[1].GetLogStartOffset(), ps[1].GetLogEndOffset(), ps[1].GetHighWatermark())
	}

	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.created) != 1 || fr.created[0] != "payments" {
		t.Errorf("replicator saw creates %v, want [payments]", fr.created)
	}
	for _, c := range fr.callers {
		if c != "broker-1" {
			t.Errorf("replicator called by %q, want the broker's own identity broker-1", c)
		}
	}
}

func TestClusterModeNeedsTLS(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ReplicatorAddr = "127.0.0.1:9093"
	_, err := Start(context.Background(), cfg, zaptest.NewLogger(t), Options{Getenv: func(string) string { return "" }})
	if err == nil {
		t.Fatal("a plaintext broker started in cluster mode")
	}
	if errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// TestClusterModeReplacesAStaleTopicCopy: a topic deleted and recreated
// while this broker was away arrives with a new topic id; the local copy
// of the old topic (and its records) is replaced, never served under it.
func TestClusterModeReplacesAStaleTopicCopy(t *testing.T) {
	b, _, certs := startClusterBroker(t)
	ctx := ctxT(t)
	own := replicaClient(t, b, certs, "replicator-1")
	op := dialAs(t, b, certs, "operator")
	old := orders(stratav1.Role_ROLE_LEADER, 3, 1, "b1:9092")
	old.TopicId = "0123-old"
	if _, err := own.ApplyPartitionState(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Records: values(4, "old")}); err != nil {
		t.Fatal(err)
	}
	// The same id again keeps the records.
	if _, err := own.ApplyPartitionState(ctx, old); err != nil {
		t.Fatal(err)
	}
	if st, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"}); err != nil || st.GetLogEndOffset() != 4 {
		t.Fatalf("same id: %v, %v", st, err)
	}
	// The recreated topic starts over at epoch 0 with a new id.
	fresh := orders(stratav1.Role_ROLE_LEADER, 0, 1, "b1:9092")
	fresh.TopicId = "4567-new"
	if _, err := own.ApplyPartitionState(ctx, fresh); err != nil {
		t.Fatalf("apply the recreated topic: %v", err)
	}
	st, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"})
	if err != nil || st.GetLogEndOffset() != 0 || st.GetLatestLocalEpoch() != -1 {
		t.Fatalf("recreated topic status %v, %v: the old records survived", st, err)
	}
	c, err := op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "orders", MaxRecords: 10})
	if err != nil || len(c.GetRecords()) != 0 {
		t.Fatalf("recreated topic served %d records (%v)", len(c.GetRecords()), err)
	}
}

// TestClusterModeReleasesUnknownTopics: after a restart the replicator
// names every topic the controller has; local topics it does not name and
// that have no role are removed, everything else stays. Only this node's
// replicator may ask.
func TestClusterModeReleasesUnknownTopics(t *testing.T) {
	b, _, certs := startClusterBroker(t)
	ctx := ctxT(t)
	own := replicaClient(t, b, certs, "replicator-1")
	if _, err := own.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_LEADER, 1, 1, "b1:9092")); err != nil {
		t.Fatal(err)
	}
	gone := orders(stratav1.Role_ROLE_FOLLOWER, 1, 2, "b2:9092")
	gone.Topic = "gone"
	if _, err := own.ApplyPartitionState(ctx, gone); err != nil {
		t.Fatal(err)
	}
	// As after a restart: "gone" is on disk but no role came back for it.
	p, err := b.reg.Partition("gone", 0)
	if err != nil {
		t.Fatal(err)
	}
	p.SetState(partition.State{Role: partition.RoleNone, LeaderID: -1})

	_, err = replicaClient(t, b, certs, "broker-1").ReleaseUnknownTopics(ctx, &stratav1.ReleaseUnknownTopicsRequest{})
	wantCode(t, err, codes.PermissionDenied)
	resp, err := own.ReleaseUnknownTopics(ctx, &stratav1.ReleaseUnknownTopicsRequest{KnownTopics: []string{"other"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetRemoved(); len(got) != 1 || got[0] != "gone" {
		t.Fatalf("removed %v, want [gone]", got)
	}
	if _, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "gone"}); status.Code(err) != codes.NotFound {
		t.Fatalf("gone after release: %v", err)
	}
	// "orders" is not named either, but partition 0 has a role: it stays.
	if _, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"}); err != nil {
		t.Fatalf("a topic with a role was removed: %v", err)
	}
}

func TestClusterModeStorageID(t *testing.T) {
	b, _, certs := startClusterBroker(t)
	ctx := ctxT(t)
	own := replicaClient(t, b, certs, "replicator-1")

	_, err := replicaClient(t, b, certs, "replicator-2").StorageId(ctx, &stratav1.StorageIdRequest{})
	wantCode(t, err, codes.PermissionDenied)
	resp, err := own.StorageId(ctx, &stratav1.StorageIdRequest{})
	if err != nil || resp.GetStorageId() == "" {
		t.Fatalf("StorageId = %v, %v", resp, err)
	}
	id := resp.GetStorageId()

	// A state computed for another data directory is refused and leaves
	// no role; the recorded id, or none, is accepted.
	req := orders(stratav1.Role_ROLE_LEADER, 1, 1, "b1:9092")
	req.StorageId = "another-disk"
	_, err = own.ApplyPartitionState(ctx, req)
	wantCode(t, err, codes.FailedPrecondition)
	if _, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"}); status.Code(err) != codes.NotFound {
		t.Fatalf("a refused apply created the topic: %v", err)
	}
	req.StorageId = id
	if _, err := own.ApplyPartitionState(ctx, req); err != nil {
		t.Fatalf("apply with the broker's storage id: %v", err)
	}
	st, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"})
	if err != nil || st.GetRole() != stratav1.Role_ROLE_LEADER {
		t.Fatalf("status = %v, %v", st, err)
	}
}
