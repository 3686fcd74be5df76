package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/applier"
	"github.com/strata-log/strata/services/replicator/internal/controller"
	"github.com/strata-log/strata/services/replicator/internal/fetcher"
	"github.com/strata-log/strata/services/replicator/internal/liveness"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
	"github.com/strata-log/strata/services/replicator/internal/testbroker"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBroker records ApplyPartitionState calls: the latest per partition.
type fakeBroker struct {
	mu     sync.Mutex
	latest map[string]*stratav1.ApplyPartitionStateRequest
	calls  int
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{latest: map[string]*stratav1.ApplyPartitionStateRequest{}}
}

func (b *fakeBroker) ApplyPartitionState(_ context.Context, req *stratav1.ApplyPartitionStateRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.latest[req.Topic+"/"+strconv.Itoa(int(req.Partition))] = req
	b.calls++
	return nil
}

func (b *fakeBroker) get(topic string, p int32) *stratav1.ApplyPartitionStateRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.latest[topic+"/"+strconv.Itoa(int(p))]
}

type testNode struct {
	id               int32
	dir              string
	serf, raft, grpc string
	broker           *fakeBroker
	// replica, when set, is a real broker that the node applies states to
	// and replicates into (instead of broker).
	replica *testbroker.Broker
	node    *Node
	// cn overrides the certificate common name (default replicator-<id>).
	cn string
	// health, when set, is the broker's health as the node's liveness
	// probe sees it.
	health *fakeHealth
}

// fakeHealth is a broker health check that answers as told.
type fakeHealth struct{ down atomic.Bool }

func (h *fakeHealth) Check(context.Context, bool) error {
	if h.down.Load() {
		return status.Error(codes.Unavailable, "connection refused")
	}
	return nil
}

type cluster struct {
	t     *testing.T
	ca    *testutil.CA
	key   []byte
	nodes []*testNode
}

func newCluster(t *testing.T, n int) *cluster {
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i * 7)
	}
	c := &cluster{t: t, ca: testutil.NewCA(t), key: key}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, &testNode{
			id: int32(i), dir: t.TempDir(),
			serf:   fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
			raft:   fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
			grpc:   fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
			broker: newFakeBroker(),
		})
	}
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			if tn.node != nil {
				if err := tn.node.Kill(); err != nil {
					t.Logf("kill node %d: %v", tn.id, err)
				}
			}
		}
	})
	return c
}

func tuneSerf(ml *memberlist.Config) {
	ml.ProbeInterval = 200 * time.Millisecond
	ml.ProbeTimeout = 100 * time.Millisecond
	ml.GossipInterval = 50 * time.Millisecond
	ml.SuspicionMult = 2
	ml.TCPTimeout = time.Second
	ml.PushPullInterval = 2 * time.Second
}

func tuneRaft(rc *raft.Config) {
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 250 * time.Millisecond
	rc.CommitTimeout = 20 * time.Millisecond
}

func (c *cluster) start(tn *testNode, lg *zap.Logger) {
	c.t.Helper()
	raftLn, err := net.Listen("tcp", tn.raft)
	if err != nil {
		c.t.Fatal(err)
	}
	grpcLn, err := net.Listen("tcp", tn.grpc)
	if err != nil {
		c.t.Fatal(err)
	}
	var join []string
	for _, o := range c.nodes {
		if o != tn {
			join = append(join, o.serf)
		}
	}
	metricsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	cn := "replicator-" + strconv.Itoa(int(tn.id))
	if tn.cn != "" {
		cn = tn.cn
	}
	opts := Options{Broker: tn.broker}
	if tn.health != nil {
		opts.BrokerHealth = tn.health
	}
	if tn.replica != nil {
		tlsConf := c.ca.ClientTLS(c.t, cn)
		conn, err := grpc.NewClient(tn.replica.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
		if err != nil {
			c.t.Fatal(err)
		}
		leaders := fetcher.NewConns(tlsConf)
		c.t.Cleanup(func() {
			if err := errors.Join(leaders.Close(), conn.Close()); err != nil {
				c.t.Error(err)
			}
		})
		opts.Broker, opts.Local = replicaBroker{stratav1.NewLocalReplicaClient(conn)}, fetcher.NewLocalClient(conn)
		opts.Leaders, opts.BrokerInternal = leaders, tn.replica.Addr()
		opts.Fetcher = fetcher.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}
	}
	n, err := Start(Options{
		NodeID: tn.id, DataDir: tn.dir, SerfBind: tn.serf, Join: join, ClusterKey: c.key,
		RaftListener: raftLn, GRPCListener: grpcLn, MetricsListener: metricsLn,
		BrokerAdvertise: fmt.Sprintf("broker-%d.test:9092", tn.id), Broker: opts.Broker,
		BrokerInternal: opts.BrokerInternal, Local: opts.Local, Leaders: opts.Leaders, Fetcher: opts.Fetcher,
		BrokerHealth: opts.BrokerHealth, Liveness: liveness.Options{Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond},
		BootstrapExpect: bootstrapExpect(len(c.nodes)), Bootstrap: len(c.nodes) == 1,
		ServerTLS: c.ca.ServerTLS(c.t, cn), ClientTLS: c.ca.ClientTLS(c.t, cn),
		Controller: controller.Options{ReconcileInterval: 500 * time.Millisecond, PreferredLeaderInterval: -1},
		Applier:    applier.Options{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
		TuneSerf:   tuneSerf, TuneRaft: tuneRaft,
	}, lg.Named("n"+strconv.Itoa(int(tn.id))))
	if err != nil {
		c.t.Fatalf("start node %d: %v", tn.id, err)
	}
	tn.node = n
}

func (c *cluster) kill(tn *testNode) {
	c.t.Helper()
	if err := tn.node.Kill(); err != nil {
		c.t.Logf("kill node %d: %v", tn.id, err)
	}
	tn.node = nil
}

// leader waits for a Raft leader among the running nodes.
func (c *cluster) leader(timeout time.Duration) *testNode {
	c.t.Helper()
	var out *testNode
	testutil.Eventually(c.t, timeout, func() error {
		for _, tn := range c.nodes {
			if tn.node != nil && tn.node.Raft().IsLeader() {
				out = tn
				return nil
			}
		}
		return fmt.Errorf("no raft leader")
	})
	return out
}

func (c *cluster) running() []*testNode {
	var out []*testNode
	for _, tn := range c.nodes {
		if tn.node != nil {
			out = append(out, tn)
		}
	}
	return out
}

// waitBrokers waits until every running node's FSM shows exactly the
// given liveness for each broker.
func (c *cluster) waitBrokers(timeout time.Duration, alive map[int32]bool) {
	c.t.Helper()
	testutil.Eventually(c.t, timeout, func() error {
		for _, tn := range c.running() {
			st := tn.node.FSM().State()
			for id, want := range alive {
				b, ok := st.Brokers[id]
				if !ok || b.Alive != want {
					return fmt.Errorf("node %d sees broker %d registered=%v alive=%v, want alive=%v", tn.id, id, ok, ok && b.Alive, want)
				}
			}
		}
		return nil
	})
}

func (c *cluster) client(tn *testNode) (stratav1.TopicsClient, stratav1.MetadataClient) {
	c.t.Helper()
	return c.clientAs(tn, "admin")
}

// clientAs dials tn's gRPC API with a client certificate for identity cn.
func (c *cluster) clientAs(tn *testNode, cn string) (stratav1.TopicsClient, stratav1.MetadataClient) {
	c.t.Helper()
	conn := c.connAs(tn, cn)
	return stratav1.NewTopicsClient(conn), stratav1.NewMetadataClient(conn)
}

// controllerAs is clientAs for the Controller service.
func (c *cluster) controllerAs(tn *testNode, cn string) stratav1.ControllerClient {
	c.t.Helper()
	return stratav1.NewControllerClient(c.connAs(tn, cn))
}

func (c *cluster) connAs(tn *testNode, cn string) *grpc.ClientConn {
	c.t.Helper()
	conn, err := grpc.NewClient(tn.grpc, grpc.WithTransportCredentials(credentials.NewTLS(c.ca.ClientTLS(c.t, cn))))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		if err := conn.Close(); err != nil {
			c.t.Error(err)
		}
	})
	return conn
}

func TestClusterFailoverRestartAndFullRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 3)
	for _, tn := range c.nodes {
		c.start(tn, lg)
	}
	first := c.leader(15 * time.Second)
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	testutil.Eventually(t, 10*time.Second, func() error {
		servers, err := first.node.Raft().Servers()
		if err != nil {
			return err
		}
		if len(servers) != 3 {
			return fmt.Errorf("raft has %d servers", len(servers))
		}
		return nil
	})

	// Create through a follower: it forwards to the controller.
	var follower *testNode
	for _, tn := range c.nodes {
		if tn != first {
			follower = tn
			break
		}
	}
	topics, meta := c.client(follower)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "orders",
		Config: &stratav1.TopicConfig{Partitions: 6, ReplicationFactor: 3, MinInsyncReplicas: 2}})
	if err != nil {
		t.Fatalf("create topic via follower %d: %v", follower.id, err)
	}
	leads := map[int32]int{}
	for _, p := range resp.Topic.Partitions {
		leads[p.LeaderId]++
		if len(p.Replicas) != 3 || len(p.Isr) != 3 || p.LeaderEpoch != 0 {
			t.Fatalf("partition %d: %+v", p.Partition, p)
		}
	}
	for id := int32(1); id <= 3; id++ {
		if leads[id] != 2 {
			t.Fatalf("leaders not spread evenly: %v", leads)
		}
	}
	if _, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "too-wide",
		Config: &stratav1.TopicConfig{Partitions: 1, ReplicationFactor: 4}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RF 4 on 3 brokers: got %v, want FailedPrecondition", err)
	}
	if _, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "orders",
		Config: &stratav1.TopicConfig{Partitions: 1}}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate: got %v, want AlreadyExists", err)
	}

	// Every node's broker learns its role for every partition.
	waitApplied(t, c, "orders", 6)

	// The other Topics calls, through the follower.
	if _, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "scratch"}); err != nil {
		t.Fatal(err)
	}
	alt, err := topics.AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: "orders",
		Config: &stratav1.TopicConfig{RetentionMs: 60000}})
	if err != nil || alt.Topic.Config.RetentionMs != 60000 || alt.Topic.Config.MinInsyncReplicas != 2 {
		t.Fatalf("alter: %v %v", alt, err)
	}
	if _, err := topics.AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: "orders",
		Config: &stratav1.TopicConfig{Partitions: 9}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("alter partitions: got %v, want InvalidArgument", err)
	}
	// A setting every broker would refuse is refused, not committed (issue 13).
	_, err = topics.AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: "orders",
		Config: &stratav1.TopicConfig{MaxRecordBytes: 104857600}})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "max.record.bytes must be in [1, 67108864], got 104857600") {
		t.Fatalf("alter max.record.bytes above the limit: got %v, want InvalidArgument naming the key and range", err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		d, err := topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "orders"})
		if err != nil {
			return err
		}
		got := d.GetTopic().GetConfig()
		if got.GetMaxRecordBytes() == 104857600 {
			t.Fatalf("config after the refused alter: %v", got)
		}
		if got.GetRetentionMs() != 60000 {
			// The node asked may not have applied the earlier alter yet.
			return fmt.Errorf("retention.ms %d, want 60000 from the earlier alter", got.GetRetentionMs())
		}
		return nil
	})
	if _, err := topics.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "scratch"}); err != nil {
		t.Fatal(err)
	}
	if _, err := topics.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "scratch"}); status.Code(err) != codes.NotFound {
		t.Fatalf("delete twice: got %v, want NotFound", err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		list, err := topics.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		if err != nil {
			return err
		}
		if len(list.Topics) != 1 || list.Topics[0].Name != "orders" {
			return fmt.Errorf("list: %v", list.Topics)
		}
		d, err := topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "orders"})
		if err != nil {
			return err
		}
		if d.Topic.Config.RetentionMs != 60000 {
			return fmt.Errorf("describe on follower not caught up: %v", d.Topic.Config)
		}
		return nil
	})
	// A replicator holds no log: offsets are unknown, not 0.
	d, err := topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Topic.Partitions {
		if p.LogStartOffset != -1 || p.LogEndOffset != -1 || p.HighWatermark != -1 {
			t.Fatalf("partition %d offsets %d/%d/%d, want -1 (unknown)", p.Partition, p.LogStartOffset, p.LogEndOffset, p.HighWatermark)
		}
	}
	if _, err := topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("describe missing: got %v", err)
	}

	// ISR hand-off: a stale AlterPartition is refused, a current one applied.
	p0 := first.node.FSM().State().Topics["orders"].Partitions[0]
	if err := first.node.AlterPartition(ctx, "orders", 0, p0.Leader, p0.LeaderEpoch+1, p0.ISR[:1]); !errors.Is(err, metadata.ErrStaleEpoch) {
		t.Fatalf("stale AlterPartition: got %v", err)
	}
	if err := first.node.AlterPartition(ctx, "orders", 0, p0.Leader, p0.LeaderEpoch, p0.ISR); err != nil {
		t.Fatal(err)
	}

	// The follower answers once it has applied the change just committed
	// (Unavailable until then, as a client retries it).
	var md *stratav1.MetadataResponse
	testutil.Eventually(t, 10*time.Second, func() error {
		var err error
		md, err = meta.Metadata(ctx, &stratav1.MetadataRequest{})
		if status.Code(err) == codes.Unavailable {
			return err
		}
		if err != nil {
			return testutil.Permanent(err)
		}
		return nil
	})
	if md.ControllerId != first.id || len(md.Brokers) != 3 || len(md.Topics) != 1 || md.ClusterId == "" {
		t.Fatalf("metadata: controller %d brokers %d topics %d cluster %q", md.ControllerId, len(md.Brokers), len(md.Topics), md.ClusterId)
	}

	for _, r := range md.Brokers {
		want := "follower"
		if r.Id == first.id {
			want = "leader"
		}
		if !r.Alive || r.RaftRole != want || r.Address != fmt.Sprintf("broker-%d.test:9092", r.Id) {
			t.Fatalf("broker info %v", r)
		}
	}
	body := scrape(t, first.node)
	for _, want := range []string{
		`strata_partitions{state="online"} 6`, `strata_partitions{state="offline"} 0`,
		`strata_serf_members{status="alive"} 3`, `strata_raft_state{state="Leader"} 1`,
		`strata_controller_actions_total{kind="create_topic"} 2`, `strata_controller_actions_total{kind="delete_topic"} 1`, `strata_raft_commit_index`,
	} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics lack %q:\n%s", want, body)
		}
	}

	// Kill the Raft leader abruptly: its partitions move to ISR members
	// with a higher epoch, and the new Raft leader keeps the metadata.
	before := first.node.FSM().State().Topics["orders"]
	victim := first
	c.kill(victim)
	start := time.Now()
	survivor := c.running()[0]
	testutil.Eventually(t, 10*time.Second, func() error {
		st := survivor.node.FSM().State()
		t := st.Topics["orders"]
		if t == nil {
			return fmt.Errorf("topic lost")
		}
		for i, p := range t.Partitions {
			old := before.Partitions[i]
			if old.Leader == victim.id {
				if p.Leader == victim.id || p.Leader == metadata.NoLeader || !slices.Contains(old.ISR, p.Leader) || p.LeaderEpoch <= old.LeaderEpoch {
					return fmt.Errorf("partition %d: leader %d epoch %d (was %d@%d)", i, p.Leader, p.LeaderEpoch, old.Leader, old.LeaderEpoch)
				}
			}
			if slices.Contains(p.ISR, victim.id) {
				return fmt.Errorf("partition %d: dead broker still in ISR %v", i, p.ISR)
			}
		}
		return nil
	})
	t.Logf("failover took %s", time.Since(start))
	second := c.leader(10 * time.Second)
	if second == victim {
		t.Fatal("killed node still leader")
	}
	// The new leaders' brokers were told.
	testutil.Eventually(t, 10*time.Second, func() error {
		st := second.node.FSM().State()
		for _, p := range st.Topics["orders"].Partitions {
			tn := c.nodes[p.Leader-1]
			got := tn.broker.get("orders", p.ID)
			if got == nil || got.Role != stratav1.Role_ROLE_LEADER || got.LeaderEpoch != p.LeaderEpoch {
				return fmt.Errorf("broker %d not told it leads orders/%d@%d: %v", p.Leader, p.ID, p.LeaderEpoch, got)
			}
		}
		return nil
	})

	// The victim returns with its stored state: a follower everywhere.
	c.start(victim, lg)
	if !victim.node.Raft().HasState() {
		t.Fatal("restarted node has no raft state")
	}
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	testutil.Eventually(t, 10*time.Second, func() error {
		st := victim.node.FSM().State()
		for _, p := range st.Topics["orders"].Partitions {
			if p.Leader == victim.id {
				return fmt.Errorf("returned node leads %d", p.ID)
			}
			got := victim.broker.get("orders", p.ID)
			if got == nil || got.Role != stratav1.Role_ROLE_FOLLOWER || got.LeaderEpoch != p.LeaderEpoch || got.LeaderId != p.Leader {
				return fmt.Errorf("returned broker not follower of orders/%d@%d: %v", p.ID, p.LeaderEpoch, got)
			}
		}
		return nil
	})

	// Full restart of all three with the same data dirs.
	want := c.leader(5 * time.Second).node.FSM().State().Topics["orders"]
	for _, tn := range c.nodes {
		c.kill(tn)
	}
	for _, tn := range c.nodes {
		tn.broker = newFakeBroker()
		c.start(tn, lg)
	}
	c.leader(20 * time.Second)
	c.waitBrokers(20*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	for _, tn := range c.nodes {
		testutil.Eventually(t, 10*time.Second, func() error {
			got := tn.node.FSM().State().Topics["orders"]
			if got == nil {
				return fmt.Errorf("node %d lost topic", tn.id)
			}
			for i, p := range got.Partitions {
				if !slices.Equal(p.Replicas, want.Partitions[i].Replicas) || p.LeaderEpoch < want.Partitions[i].LeaderEpoch {
					return fmt.Errorf("node %d partition %d: %+v, want %+v", tn.id, i, p, want.Partitions[i])
				}
			}
			return nil
		})
	}
	waitApplied(t, c, "orders", 6)
}

// waitApplied waits until every running node's broker has been told the
// current state of each partition of topic.
func waitApplied(t *testing.T, c *cluster, topic string, partitions int32) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, tn := range c.running() {
			st := tn.node.FSM().State()
			tp := st.Topics[topic]
			if tp == nil || int32(len(tp.Partitions)) != partitions {
				return fmt.Errorf("node %d: topic %s not there", tn.id, topic)
			}
			for _, p := range tp.Partitions {
				got := tn.broker.get(topic, p.ID)
				if got == nil || got.LeaderEpoch != p.LeaderEpoch || got.LeaderId != p.Leader {
					return fmt.Errorf("node %d: %s/%d not applied (%v)", tn.id, topic, p.ID, got)
				}
				wantRole := stratav1.Role_ROLE_FOLLOWER
				if p.Leader == tn.id {
					wantRole = stratav1.Role_ROLE_LEADER
				}
				if got.Role != wantRole {
					return fmt.Errorf("node %d: %s/%d role %v want %v", tn.id, topic, p.ID, got.Role, wantRole)
				}
			}
		}
		return nil
	})
}

func scrape(t *testing.T, n *Node) string {
	t.Helper()
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + n.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	cl.CloseIdleConnections()
	return string(b)
}

func TestGracefulLeaveRemovesFromRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 3)
	for _, tn := range c.nodes {
		c.start(tn, lg)
	}
	c.leader(15 * time.Second)
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	var leaving *testNode
	for _, tn := range c.nodes {
		if !tn.node.Raft().IsLeader() {
			leaving = tn
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaving.node.Close(ctx); err != nil {
		t.Fatal(err)
	}
	leaving.node = nil
	c.waitBrokers(10*time.Second, map[int32]bool{leaving.id: false})
	testutil.Eventually(t, 10*time.Second, func() error {
		servers, err := c.leader(5 * time.Second).node.Raft().Servers()
		if err != nil {
			return err
		}
		for _, s := range servers {
			if s.ID == raft.ServerID(strconv.Itoa(int(leaving.id))) {
				return fmt.Errorf("left node %d still in raft %v", leaving.id, servers)
			}
		}
		return nil
	})
}

func TestRaftRejectsPeerWithMismatchedCN(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	lg := testutil.Logger(t, zap.ErrorLevel+1)
	c := newCluster(t, 3)
	impostor := c.nodes[2]
	impostor.cn = "replicator-9" // a valid replicator cert, but not node 3's
	for _, tn := range c.nodes {
		c.start(tn, lg)
	}
	leader := c.leader(15 * time.Second)
	if leader == impostor {
		t.Fatal("impostor became leader")
	}
	testutil.Eventually(t, 15*time.Second, func() error {
		if alive := leader.node.FSM().State().AliveBrokerIDs(); len(alive) != 3 {
			return fmt.Errorf("alive brokers %v", alive)
		}
		return nil
	})
	topics, _ := c.client(leader)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "t", Config: &stratav1.TopicConfig{Partitions: 3, ReplicationFactor: 1}}); err != nil {
		t.Fatal(err)
	}
	// The majority committed many entries; the impostor received none,
	// because the leader's dial rejects its certificate.
	if got := impostor.node.FSM().State(); got.Index != 0 || len(got.Brokers) != 0 {
		t.Fatalf("impostor replicated state: index %d, brokers %d", got.Index, len(got.Brokers))
	}
	if ci := impostor.node.Raft().Stats().CommitIndex; ci != 0 {
		t.Fatalf("impostor commit index %d", ci)
	}
}

// bootstrapExpect is 0 for a single node (it uses --bootstrap instead).
func bootstrapExpect(n int) int {
	if n == 1 {
		return 0
	}
	return n
}

func TestSingleNodeBootstrapAndRestart(t *testing.T) {
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 1)
	tn := c.nodes[0]
	c.start(tn, lg)
	c.leader(10 * time.Second)
	c.waitBrokers(10*time.Second, map[int32]bool{1: true})
	topics, meta := c.client(tn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "solo", Config: &stratav1.TopicConfig{Partitions: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Topic.Config.ReplicationFactor != 1 || resp.Topic.Partitions[1].LeaderId != 1 || resp.Topic.Partitions[1].LeaderAddress != "broker-1.test:9092" {
		t.Fatalf("single-node topic: %v", resp.Topic)
	}
	waitApplied(t, c, "solo", 2)
	c.kill(tn)
	c.start(tn, lg) // --bootstrap again is a no-op with stored state
	c.leader(10 * time.Second)
	testutil.Eventually(t, 10*time.Second, func() error {
		md, err := meta.Metadata(ctx, &stratav1.MetadataRequest{Topics: []string{"solo", "missing"}})
		if err != nil {
			return err
		}
		if len(md.Topics) != 1 || md.ControllerId != 1 {
			return fmt.Errorf("metadata after restart: %v", md)
		}
		return nil
	})
	// no_topics: the cluster fields alone, with the first producer id not
	// handed out (1: none was).
	md, err := meta.Metadata(ctx, &stratav1.MetadataRequest{NoTopics: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Topics) != 0 || len(md.Brokers) != 1 || md.NextProducerId != 1 {
		t.Fatalf("metadata with no_topics: %v", md)
	}
}

// TestAuthorization: every call is checked against the ACL. A client
// certificate without rules gets nothing; a broker (which forwards its
// clients' topic administration after checking them itself) may create,
// describe and delete topics; a client cert never passes for a peer.
func TestAuthorization(t *testing.T) {
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 1)
	tn := c.nodes[0]
	c.start(tn, lg)
	c.leader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	alice, aliceMeta := c.clientAs(tn, "alice")
	_, err := alice.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "a"})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("alice CreateTopic: %v, want PermissionDenied", err)
	}
	if _, err := aliceMeta.Metadata(ctx, &stratav1.MetadataRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("alice Metadata: %v, want PermissionDenied", err)
	}
	// A name close to the peer patterns is just another client.
	near, _ := c.clientAs(tn, "brokers-1")
	if _, err := near.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "a"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("brokers-1 CreateTopic: %v, want PermissionDenied", err)
	}

	broker, brokerMeta := c.clientAs(tn, "broker-1")
	if _, err := broker.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "fwd"}); err != nil {
		t.Fatalf("broker-1 (forwarding) CreateTopic: %v", err)
	}
	// Metadata is served once the node has caught up (Unavailable before).
	testutil.Eventually(t, 10*time.Second, func() error {
		_, err := brokerMeta.Metadata(ctx, &stratav1.MetadataRequest{})
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("broker-1 Metadata: %v", err)
		}
		return err
	})
	if _, err := broker.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "fwd"}); err != nil {
		t.Fatalf("broker-1 DeleteTopic: %v", err)
	}
}

// TestAlterPartitionForwardedAndAuthorized: a partition leader's broker asks
// a replicator that is not the Raft leader for an ISR shrink and then an
// expansion, and at last resigns its leadership; each is forwarded to the
// controller and committed. Stale or foreign proposals are
// FailedPrecondition, malformed ones InvalidArgument, and a client
// certificate may not call it at all.
func TestAlterPartitionForwardedAndAuthorized(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 3)
	for _, tn := range c.nodes {
		c.start(tn, lg)
	}
	leader := c.leader(15 * time.Second)
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	topics, _ := c.client(leader)
	if _, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "isr",
		Config: &stratav1.TopicConfig{Partitions: 1, ReplicationFactor: 3}}); err != nil {
		t.Fatal(err)
	}
	var follower *testNode
	for _, tn := range c.nodes {
		if tn != leader {
			follower = tn
			break
		}
	}
	var p0 metadata.Partition
	testutil.Eventually(t, 10*time.Second, func() error {
		tp := follower.node.FSM().State().Topics["isr"]
		if tp == nil {
			return errors.New("topic not on the follower yet")
		}
		p0 = tp.Partitions[0]
		return nil
	})
	brokerCN := "broker-" + strconv.Itoa(int(p0.Leader))
	ctl := c.controllerAs(follower, brokerCN)
	waitISR := func(want []int32) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			for _, tn := range c.nodes {
				if got := tn.node.FSM().State().Topics["isr"].Partitions[0].ISR; !slices.Equal(got, want) {
					return fmt.Errorf("node %d: ISR %v, want %v", tn.id, got, want)
				}
			}
			return nil
		})
	}

	shrunk := []int32{p0.Leader}
	resp, err := ctl.AlterPartition(ctx, &stratav1.AlterPartitionRequest{Topic: "isr", LeaderId: p0.Leader,
		LeaderEpoch: p0.LeaderEpoch, Isr: shrunk})
	if err != nil {
		t.Fatalf("shrink through follower %d: %v", follower.id, err)
	}
	if resp.LeaderEpoch != p0.LeaderEpoch || !slices.Equal(resp.Isr, shrunk) {
		t.Fatalf("shrink response %v", resp)
	}
	waitISR(shrunk)
	// Expansion: the caught-up followers are proposed back in.
	if _, err := ctl.AlterPartition(ctx, &stratav1.AlterPartitionRequest{Topic: "isr", LeaderId: p0.Leader,
		LeaderEpoch: p0.LeaderEpoch, Isr: p0.Replicas}); err != nil {
		t.Fatalf("expand: %v", err)
	}
	waitISR(p0.Replicas)

	var other int32
	for _, id := range p0.Replicas {
		if id != p0.Leader {
			other = id
		}
	}
	for _, tc := range []struct {
		name string
		req  *stratav1.AlterPartitionRequest
		want codes.Code
	}{
		{"stale epoch", &stratav1.AlterPartitionRequest{Topic: "isr", LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch + 1, Isr: shrunk}, codes.FailedPrecondition},
		{"not the leader", &stratav1.AlterPartitionRequest{Topic: "isr", LeaderId: other, LeaderEpoch: p0.LeaderEpoch, Isr: []int32{other}}, codes.FailedPrecondition},
		{"not a replica", &stratav1.AlterPartitionRequest{Topic: "isr", LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch, Isr: []int32{p0.Leader, 9}}, codes.InvalidArgument},
		{"without the leader", &stratav1.AlterPartitionRequest{Topic: "isr", LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch, Isr: []int32{other}}, codes.InvalidArgument},
		{"no such partition", &stratav1.AlterPartitionRequest{Topic: "isr", Partition: 3, LeaderId: p0.Leader, Isr: shrunk}, codes.NotFound},
		{"bad topic", &stratav1.AlterPartitionRequest{Topic: "", LeaderId: p0.Leader, Isr: shrunk}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ctl.AlterPartition(ctx, tc.req); status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	waitISR(p0.Replicas)

	for _, cn := range []string{"alice", "brokers-1"} {
		_, err := c.controllerAs(follower, cn).AlterPartition(ctx, &stratav1.AlterPartitionRequest{Topic: "isr",
			LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch, Isr: shrunk})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s AlterPartition: %v, want PermissionDenied", cn, err)
		}
	}
	waitISR(p0.Replicas)

	// A leader whose log cannot serve resigns, through the same follower:
	// refused while its view is stale or malformed, then committed as an
	// election of the next in-sync replica in a new epoch, which every
	// node's broker is told.
	resign := func(req *stratav1.ResignLeadershipRequest) (*stratav1.ResignLeadershipResponse, error) {
		return ctl.ResignLeadership(ctx, req)
	}
	for _, tc := range []struct {
		name string
		req  *stratav1.ResignLeadershipRequest
		want codes.Code
	}{
		{"resign on a stale epoch", &stratav1.ResignLeadershipRequest{Topic: "isr", LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch + 1}, codes.FailedPrecondition},
		{"resign by a follower", &stratav1.ResignLeadershipRequest{Topic: "isr", LeaderId: other, LeaderEpoch: p0.LeaderEpoch}, codes.FailedPrecondition},
		{"resign no such partition", &stratav1.ResignLeadershipRequest{Topic: "isr", Partition: 3, LeaderId: p0.Leader}, codes.NotFound},
		{"resign bad topic", &stratav1.ResignLeadershipRequest{Topic: "", LeaderId: p0.Leader}, codes.InvalidArgument},
		{"resign bad leader id", &stratav1.ResignLeadershipRequest{Topic: "isr", LeaderId: 0}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := resign(tc.req); status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	for _, cn := range []string{"alice", "brokers-1"} {
		_, err := c.controllerAs(follower, cn).ResignLeadership(ctx, &stratav1.ResignLeadershipRequest{Topic: "isr",
			LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s ResignLeadership: %v, want PermissionDenied", cn, err)
		}
	}
	waitISR(p0.Replicas)
	rr, err := resign(&stratav1.ResignLeadershipRequest{Topic: "isr", LeaderId: p0.Leader, LeaderEpoch: p0.LeaderEpoch, Reason: "test"})
	if err != nil {
		t.Fatalf("resign through follower %d: %v", follower.id, err)
	}
	rest := slices.DeleteFunc(slices.Clone(p0.Replicas), func(id int32) bool { return id == p0.Leader })
	if rr.LeaderId != rest[0] || rr.LeaderEpoch != p0.LeaderEpoch+1 || !slices.Equal(rr.Isr, rest) {
		t.Fatalf("resignation committed %v, want leader %d in epoch %d with ISR %v", rr, rest[0], p0.LeaderEpoch+1, rest)
	}
	waitISR(rest)
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, tn := range c.nodes {
			req := tn.broker.get("isr", 0)
			want := stratav1.Role_ROLE_FOLLOWER
			if tn.id == rr.LeaderId {
				want = stratav1.Role_ROLE_LEADER
			}
			if req == nil || req.GetRole() != want || req.GetLeaderEpoch() != rr.LeaderEpoch || req.GetLeaderId() != rr.LeaderId {
				return fmt.Errorf("broker %d was told %v, want %v of leader %d in epoch %d", tn.id, req, want, rr.LeaderId, rr.LeaderEpoch)
			}
		}
		return nil
	})
}

// TestBrokerDownMovesLeadershipKeepsVoter: the liveness probe of a node
// (here the controller's own) finds its broker down; within seconds every
// node's metadata has it dead, the partitions it led led by another
// in-sync replica in a higher epoch, and it out of every ISR, while it
// stays a Raft voter. Its broker back, it is alive again, and it follows.
func TestBrokerDownMovesLeadershipKeepsVoter(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 3)
	for _, tn := range c.nodes {
		tn.health = &fakeHealth{}
		c.start(tn, lg)
	}
	victim := c.leader(15 * time.Second)
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	topics, _ := c.client(victim)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "orders",
		Config: &stratav1.TopicConfig{Partitions: 3, ReplicationFactor: 3}}); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, c, "orders", 3)
	before := victim.node.FSM().State().Topics["orders"]
	led := 0
	for _, p := range before.Partitions {
		if p.Leader == victim.id {
			led++
		}
	}
	if led == 0 {
		t.Fatalf("node %d leads no partition: %+v", victim.id, before.Partitions)
	}

	down := time.Now()
	victim.health.down.Store(true)
	testutil.Eventually(t, 10*time.Second, func() error {
		for _, tn := range c.running() {
			st := tn.node.FSM().State()
			if st.IsAlive(victim.id) {
				return fmt.Errorf("node %d sees broker %d alive", tn.id, victim.id)
			}
			for i, p := range st.Topics["orders"].Partitions {
				old := before.Partitions[i]
				if slices.Contains(p.ISR, victim.id) {
					return fmt.Errorf("node %d: partition %d ISR %v still has %d", tn.id, i, p.ISR, victim.id)
				}
				if old.Leader == victim.id && (p.Leader == victim.id || p.Leader == metadata.NoLeader || p.LeaderEpoch <= old.LeaderEpoch || !slices.Contains(old.ISR, p.Leader)) {
					return fmt.Errorf("node %d: partition %d led by %d in epoch %d (was %d in %d)", tn.id, i, p.Leader, p.LeaderEpoch, old.Leader, old.LeaderEpoch)
				}
			}
		}
		return nil
	})
	t.Logf("leadership moved off node %d %s after its broker went down", victim.id, time.Since(down).Round(time.Millisecond))
	servers, err := c.leader(10 * time.Second).node.Raft().Servers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(servers, func(s raft.Server) bool {
		return s.ID == raft.ServerID(strconv.Itoa(int(victim.id))) && s.Suffrage == raft.Voter
	}) {
		t.Fatalf("node %d is no longer a voter: %v", victim.id, servers)
	}
	if !strings.Contains(scrape(t, victim.node), "strata_local_broker_up 0") {
		t.Fatal("strata_local_broker_up is not 0 while the broker is down")
	}

	victim.health.down.Store(false)
	c.waitBrokers(10*time.Second, map[int32]bool{victim.id: true})
	waitApplied(t, c, "orders", 3)
}
