package applier

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeBroker records calls and can be made to fail.
type fakeBroker struct {
	mu     sync.Mutex
	calls  []*stratav1.ApplyPartitionStateRequest
	down   bool
	failed int
	ready  chan struct{}
	// releases are the known-topic lists of ReleaseUnknownTopics calls.
	releases [][]string
}

func (b *fakeBroker) ReleaseUnknownTopics(_ context.Context, known []string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, status.Error(codes.Unavailable, "broker down")
	}
	b.releases = append(b.releases, slices.Sorted(slices.Values(known)))
	return nil, nil
}

func (b *fakeBroker) releaseCalls() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.releases)
}

func (b *fakeBroker) ApplyPartitionState(_ context.Context, req *stratav1.ApplyPartitionStateRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		b.failed++
		return status.Error(codes.Unavailable, "broker down")
	}
	b.calls = append(b.calls, req)
	return nil
}

func (b *fakeBroker) failures() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

func (b *fakeBroker) Ready() <-chan struct{} { return b.ready }

func (b *fakeBroker) setDown(v bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down = v
}

// count returns how many calls were made for topic/partition and the last.
func (b *fakeBroker) count(topic string, p int32) (int, *stratav1.ApplyPartitionStateRequest) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	var last *stratav1.ApplyPartitionStateRequest
	for _, c := range b.calls {
		if c.Topic == topic && c.Partition == p {
			n++
			last = c
		}
	}
	return n, last
}

type env struct {
	fsm    *metadata.FSM
	broker *fakeBroker
	index  uint64
}

func (e *env) apply(t *testing.T, cmd metadata.Command) {
	t.Helper()
	e.index++
	if err := e.fsm.ApplyCommand(e.index, cmd); err != nil {
		t.Fatal(err)
	}
}

func start(t *testing.T) *env { return startWith(t) }

// startWith applies three brokers and cmds to the state before the applier
// starts, so that its first pass already sees them.
func startWith(t *testing.T, cmds ...metadata.Command) *env {
	t.Helper()
	e := &env{fsm: metadata.NewFSM(zaptest.NewLogger(t)), broker: &fakeBroker{ready: make(chan struct{}, 1)}}
	for id := int32(1); id <= 3; id++ {
		e.apply(t, metadata.Command{Type: metadata.CmdRegisterBroker, RegisterBroker: &metadata.RegisterBroker{ID: id,
			BrokerAddress: fmt.Sprintf("b%d:9092", id), ReplicatorAddress: "r", RaftAddress: "f", Alive: true}})
	}
	for _, c := range cmds {
		e.apply(t, c)
	}
	a := New(2, e.fsm, e.broker, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func waitCall(t *testing.T, b *fakeBroker, topic string, p int32, n int, check func(*stratav1.ApplyPartitionStateRequest) error) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		got, last := b.count(topic, p)
		if got < n {
			return fmt.Errorf("%s/%d: %d calls, want %d", topic, p, got, n)
		}
		if got > n {
			return testutil.Permanent(fmt.Errorf("%s/%d: %d calls, want exactly %d", topic, p, got, n))
		}
		return check(last)
	})
}

func TestAppliesOnlyLocalPartitionsAndChanges(t *testing.T) {
	e := start(t)
	// Partition 0 on [2 1], partition 1 on [1 3] (not ours), partition 2 on [3 2].
	e.apply(t, metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: "t",
		Config: topicconfig.Config{Partitions: 3, ReplicationFactor: 2}, Assignment: [][]int32{{2, 1}, {1, 3}, {3, 2}}}})
	waitCall(t, e.broker, "t", 0, 1, func(r *stratav1.ApplyPartitionStateRequest) error {
		if r.Role != stratav1.Role_ROLE_LEADER || r.LeaderId != 2 || r.LeaderAddress != "b2:9092" || len(r.Isr) != 2 || r.Config.GetReplicationFactor() != 2 {
			return fmt.Errorf("p0: %v", r)
		}
		return nil
	})
	waitCall(t, e.broker, "t", 2, 1, func(r *stratav1.ApplyPartitionStateRequest) error {
		if r.Role != stratav1.Role_ROLE_FOLLOWER || r.LeaderId != 3 || r.LeaderAddress != "b3:9092" {
			return fmt.Errorf("p2: %v", r)
		}
		return nil
	})
	if n, _ := e.broker.count("t", 1); n != 0 {
		t.Fatalf("applied a partition without a local replica %d times", n)
	}
	// A change to partition 2 only re-applies partition 2.
	e.apply(t, metadata.Command{Type: metadata.CmdElectLeader, ElectLeader: &metadata.ElectLeader{Topic: "t", Partition: 2, Leader: 2, ISR: []int32{2}}})
	waitCall(t, e.broker, "t", 2, 2, func(r *stratav1.ApplyPartitionStateRequest) error {
		if r.Role != stratav1.Role_ROLE_LEADER || r.LeaderEpoch != 1 {
			return fmt.Errorf("p2: %v", r)
		}
		return nil
	})
	if n, _ := e.broker.count("t", 0); n != 1 {
		t.Fatalf("unchanged partition re-applied: %d calls", n)
	}
	// Deleting the topic sends ROLE_NONE.
	e.apply(t, metadata.Command{Type: metadata.CmdDeleteTopic, DeleteTopic: &metadata.DeleteTopic{Name: "t"}})
	waitCall(t, e.broker, "t", 0, 2, func(r *stratav1.ApplyPartitionStateRequest) error {
		if r.Role != stratav1.Role_ROLE_NONE {
			return fmt.Errorf("p0 after delete: %v", r)
		}
		return nil
	})
}

func TestReappliesEverythingAfterBrokerRestart(t *testing.T) {
	e := start(t)
	e.apply(t, metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: "t",
		Config: topicconfig.Config{Partitions: 2, ReplicationFactor: 2}, Assignment: [][]int32{{2, 1}, {2, 1}}}})
	ok := func(*stratav1.ApplyPartitionStateRequest) error { return nil }
	waitCall(t, e.broker, "t", 0, 1, ok)
	waitCall(t, e.broker, "t", 1, 1, ok)

	// The broker goes down; a change to partition 0 fails (Unavailable)
	// and is retried with backoff; once the broker is back every
	// partition is applied again, not only the changed one.
	e.broker.setDown(true)
	e.apply(t, metadata.Command{Type: metadata.CmdChangeISR, ChangeISR: &metadata.ChangeISR{Topic: "t", Partition: 0, LeaderID: 2, ISR: []int32{2}}})
	testutil.Eventually(t, 5*time.Second, func() error {
		if e.broker.failures() < 2 {
			return fmt.Errorf("%d failed calls, want retries", e.broker.failures())
		}
		return nil
	})
	e.broker.setDown(false)
	waitCall(t, e.broker, "t", 0, 2, func(r *stratav1.ApplyPartitionStateRequest) error {
		if len(r.Isr) != 1 {
			return fmt.Errorf("%v", r)
		}
		return nil
	})
	waitCall(t, e.broker, "t", 1, 2, ok)

	// A restart seen through the readiness signal re-applies everything.
	e.broker.ready <- struct{}{}
	waitCall(t, e.broker, "t", 0, 3, ok)
	waitCall(t, e.broker, "t", 1, 3, ok)
}

// TestReleasesUnknownTopicsAfterEachBrokerStart: once every state is
// applied after the broker (re)starts, the applier tells it every topic
// the controller has, so that it drops the ones deleted while it was away;
// not again until the next restart.
func TestReleasesUnknownTopicsAfterEachBrokerStart(t *testing.T) {
	// The topics are in the state before the applier starts: its first
	// pass (the broker's start) names both. Applied after the start, the
	// first pass could run before them and name none, as it should.
	e := startWith(t,
		metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: "t",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 2}, Assignment: [][]int32{{2, 1}}}},
		metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: "elsewhere",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]int32{{3}}}})
	waitCall(t, e.broker, "t", 0, 1, func(*stratav1.ApplyPartitionStateRequest) error { return nil })
	testutil.Eventually(t, 5*time.Second, func() error {
		r := e.broker.releaseCalls()
		if len(r) == 0 {
			return fmt.Errorf("no release call yet")
		}
		if want := []string{"elsewhere", "t"}; !slices.Equal(r[len(r)-1], want) {
			return testutil.Permanent(fmt.Errorf("known topics %v, want %v (every topic, hosted here or not)", r[len(r)-1], want))
		}
		return nil
	})
	before := len(e.broker.releaseCalls())
	e.apply(t, metadata.Command{Type: metadata.CmdChangeISR, ChangeISR: &metadata.ChangeISR{Topic: "t", Partition: 0, LeaderID: 2, ISR: []int32{2}}})
	waitCall(t, e.broker, "t", 0, 2, func(*stratav1.ApplyPartitionStateRequest) error { return nil })
	if n := len(e.broker.releaseCalls()); n != before {
		t.Fatalf("release called again (%d -> %d) without a broker restart", before, n)
	}
	e.broker.ready <- struct{}{}
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := len(e.broker.releaseCalls()); n != before+1 {
			return fmt.Errorf("%d release calls after the restart, want %d", n, before+1)
		}
		return nil
	})
}

// storageBroker is a fakeBroker with a data directory id.
type storageBroker struct {
	*fakeBroker
	id string
}

func (b *storageBroker) StorageID(context.Context) (string, error) { return b.id, nil }

func TestWaitsForTheControllerToRecordANewStorageID(t *testing.T) {
	e := &env{fsm: metadata.NewFSM(zaptest.NewLogger(t)), broker: &fakeBroker{ready: make(chan struct{}, 1)}}
	for id := int32(1); id <= 3; id++ {
		e.apply(t, metadata.Command{Type: metadata.CmdRegisterBroker, RegisterBroker: &metadata.RegisterBroker{ID: id,
			BrokerAddress: fmt.Sprintf("b%d:9092", id), ReplicatorAddress: "r", RaftAddress: "f", Alive: true, StorageID: fmt.Sprintf("disk-%d", id)}})
	}
	// Broker 2 leads t/0; its data directory is then replaced.
	e.apply(t, metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: "t",
		Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 3}, Assignment: [][]int32{{2, 1, 3}}}})
	reported := make(chan string, 4)
	a := New(2, e.fsm, &storageBroker{fakeBroker: e.broker, id: "disk-new"}, Options{MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, OnStorageID: func(id string) { reported <- id }}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	select {
	case id := <-reported:
		if id != "disk-new" {
			t.Fatalf("reported storage id %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("storage id not reported")
	}
	// The controller records the new id: the FSM takes broker 2 out of the
	// ISR and gives t/0 to broker 1 in epoch 1. The first state the broker
	// is ever told is that one: the old leadership never reached it.
	e.apply(t, metadata.Command{Type: metadata.CmdRegisterBroker, RegisterBroker: &metadata.RegisterBroker{ID: 2,
		BrokerAddress: "b2:9092", ReplicatorAddress: "r", RaftAddress: "f", Alive: true, StorageID: "disk-new"}})
	waitCall(t, e.broker, "t", 0, 1, func(r *stratav1.ApplyPartitionStateRequest) error {
		if r.Role != stratav1.Role_ROLE_FOLLOWER || r.LeaderId != 1 || r.LeaderEpoch != 1 || slices.Contains(r.Isr, 2) || r.StorageId != "disk-new" {
			return testutil.Permanent(fmt.Errorf("first state applied: %v, want follower of 1 in epoch 1 out of the ISR for storage disk-new", r))
		}
		return nil
	})
}
