package isr

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeReplicator answers Metadata as a replicator would: down (Unavailable,
// as a dead replicator or one out of contact with the Raft leader), or with
// orders/2 led by leader in epoch, broker 1 alive or not.
type fakeReplicator struct {
	mu     sync.Mutex
	down   bool
	leader int32
	epoch  int32
	dead   bool // broker 1 marked dead
	gone   bool // topic orders deleted
	asked  [][]string
	calls  chan struct{}
}

func (f *fakeReplicator) set(fn func(*fakeReplicator)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// questions are the topic lists of every Metadata call.
func (f *fakeReplicator) questions() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.asked)
}

func (f *fakeReplicator) Metadata(ctx context.Context, in *stratav1.MetadataRequest, _ ...grpc.CallOption) (*stratav1.MetadataResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, in.GetTopics())
	if f.calls != nil {
		select {
		case f.calls <- struct{}{}:
		default:
		}
	}
	if f.down {
		return nil, status.Error(codes.Unavailable, "replicator is catching up with the cluster metadata; retry")
	}
	if f.gone {
		return &stratav1.MetadataResponse{Brokers: []*stratav1.BrokerInfo{{Id: 1, Alive: true}}}, nil
	}
	parts := []*stratav1.PartitionMetadata{{Partition: 0, LeaderId: 3, LeaderEpoch: 7}, {Partition: 1, LeaderId: 1, LeaderEpoch: 7}}
	parts = append(parts, &stratav1.PartitionMetadata{Partition: 2, LeaderId: f.leader, LeaderEpoch: f.epoch, Offline: f.leader < 0})
	return &stratav1.MetadataResponse{
		Brokers: []*stratav1.BrokerInfo{{Id: 1, Alive: !f.dead}, {Id: 2, Alive: true}, {Id: 3, Alive: true}},
		Topics:  []*stratav1.TopicMetadata{{Name: "orders", Partitions: parts}},
	}, nil
}

// events counts OnEvent calls by kind.
type events struct {
	mu sync.Mutex
	n  map[string]int
}

func (e *events) add(kind string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n[kind]++
}

func (e *events) get(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[kind]
}

// newLeasedLeader is orders/2 led by broker 1 in epoch 7 with a leader
// lease and two records, made leader by an applied state.
func newLeasedLeader(tb testing.TB, clk *fakeClock, lease time.Duration) *partition.Partition {
	tb.Helper()
	l, err := logstore.Open(tb.TempDir(), logstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	p := partition.New(l, partition.Options{Topic: "orders", ID: 2, MaxRecordBytes: 1 << 10, MinInsyncReplicas: 1,
		LeaderLease: lease, Now: clk.now, State: partition.State{Role: partition.RoleNone, LeaderID: -1}})
	tb.Cleanup(func() { p.Close() })
	if err := p.ApplyState(partition.State{Role: partition.RoleLeader, LeaderEpoch: 7, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1}}); err != nil {
		tb.Fatal(err)
	}
	for range 2 {
		if _, err := produce(p); err != nil {
			tb.Fatal(err)
		}
	}
	return p
}

func produce(p *partition.Partition) (partition.ProduceResult, error) {
	return p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("v")}}, stratav1.Acks_ACKS_LEADER)
}

// readable checks a consumer still reads the partition's records.
func readable(tb testing.TB, p *partition.Partition) {
	tb.Helper()
	c, err := p.NewCursor(0)
	if err != nil {
		tb.Fatalf("consumer cursor: %v", err)
	}
	defer c.Close()
	if n, err := c.Read(100, 1<<20, func(logstore.Frame, int32) {}); err != nil || n < 2 {
		tb.Fatalf("consumer read %d records (%v), want at least 2", n, err)
	}
}

// TestLeaseKeeperRenewsAndFences: while the replicator names this broker
// the leader in its epoch, each renewal keeps produce accepted; when it
// stops answering, answers from an older epoch or no longer has the
// partition, produce is refused one lease after the last confirmation;
// when it names another leader or a newer epoch, at once. Either is reported
// once; the first confirmation after that accepts produce again, reported
// once. Reads go on throughout; a broker marked dead but left the leader
// keeps its lease.
func TestLeaseKeeperRenewsAndFences(t *testing.T) {
	const lease = 2 * time.Second
	interval := lease / 4
	clk := &fakeClock{t: time.Unix(5000, 0)}
	p := newLeasedLeader(t, clk, lease)
	repl := &fakeReplicator{leader: 1, epoch: 7}
	ev := &events{n: map[string]int{}}
	k := NewLeaseKeeper(LeaseOptions{NodeID: 1, Lease: lease, Now: clk.now, OnEvent: ev.add,
		Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, repl, zaptest.NewLogger(t))
	ctx := context.Background()

	// Renewed every interval, the lease never runs out.
	for range 12 {
		clk.advance(interval)
		k.Renew(ctx)
		if _, err := produce(p); err != nil {
			t.Fatalf("produce with the lease renewed: %v", err)
		}
	}
	if got := repl.questions()[0]; len(got) != 1 || got[0] != "orders" {
		t.Fatalf("asked for topics %v, want the led [orders]", got)
	}

	for _, tc := range []struct {
		name    string
		breakIt func(*fakeReplicator)
		// denied: the answer names another leader or a newer epoch, and
		// the lease ends at the next renewal; else no confirmation comes
		// and it runs out.
		denied bool
	}{
		{"replicator down", func(f *fakeReplicator) { f.down = true }, false},
		{"older epoch", func(f *fakeReplicator) { f.epoch = 6 }, false},
		{"another leader", func(f *fakeReplicator) { f.leader, f.epoch = 2, 8 }, true},
		{"newer epoch", func(f *fakeReplicator) { f.epoch = 8 }, true},
		{"offline", func(f *fakeReplicator) { f.leader, f.epoch = -1, 8 }, true},
		{"topic gone", func(f *fakeReplicator) { f.gone = true }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repl.set(tc.breakIt)
			expired := ev.get("expired")
			if tc.denied {
				// Refused at the first answer, well within the lease.
				clk.advance(interval)
				k.Renew(ctx)
				var le *partition.LeaseExpiredError
				if _, err := produce(p); !errors.As(err, &le) || !le.Revoked {
					t.Fatalf("produce after a denial: %v, want a revoked lease", err)
				}
			} else {
				// Produce goes on until a lease has passed since the last
				// confirmation (one interval ago, at the last Renew).
				for elapsed := interval; elapsed <= lease; elapsed += interval {
					clk.advance(interval)
					k.Renew(ctx)
					if _, err := produce(p); err != nil {
						t.Fatalf("produce %s after the last confirmation, within the lease %s: %v", elapsed, lease, err)
					}
				}
				clk.advance(interval)
				k.Renew(ctx)
				if _, err := produce(p); !errors.Is(err, partition.ErrLeaseExpired) {
					t.Fatalf("produce %s after the last confirmation: %v, want ErrLeaseExpired", lease+interval, err)
				}
			}
			readable(t, p)
			if got := ev.get("expired"); got != expired+1 {
				t.Fatalf("%d expiries reported, want %d", got, expired+1)
			}
			// Still refused, reported once.
			for range 3 {
				clk.advance(interval)
				k.Renew(ctx)
			}
			if _, err := produce(p); !errors.Is(err, partition.ErrLeaseExpired) {
				t.Fatalf("produce later: %v, want ErrLeaseExpired", err)
			}
			readable(t, p)
			if got := ev.get("expired"); got != expired+1 {
				t.Fatalf("%d expiries reported, want %d (once per expiry)", got, expired+1)
			}

			// The replicator is back and names this broker leader in
			// epoch 7: the next renewal lets it accept again.
			renewed := ev.get("renewed")
			repl.set(func(f *fakeReplicator) { f.down, f.leader, f.epoch, f.gone = false, 1, 7, false })
			clk.advance(interval)
			k.Renew(ctx)
			if _, err := produce(p); err != nil {
				t.Fatalf("produce after the replicator confirmed again: %v", err)
			}
			if got := ev.get("renewed"); got != renewed+1 {
				t.Fatalf("%d renewals reported, want %d", got, renewed+1)
			}
			readable(t, p)
		})
	}

	// A broker the controller marked dead but left the leader (no other
	// replica may lead) goes on: nobody else can take writes.
	repl.set(func(f *fakeReplicator) { f.dead = true })
	for range 12 {
		clk.advance(interval)
		k.Renew(ctx)
	}
	if _, err := produce(p); err != nil {
		t.Fatalf("produce while marked dead but still the leader: %v", err)
	}
}

// TestLeaseKeeperAsksOnlyForLedTopics: a broker leading nothing does not
// ask; a follower's partitions are not confirmed.
func TestLeaseKeeperAsksOnlyForLedTopics(t *testing.T) {
	clk := &fakeClock{t: time.Unix(5000, 0)}
	p := newLeasedLeader(t, clk, time.Second)
	if err := p.ApplyState(partition.State{Role: partition.RoleFollower, LeaderEpoch: 8, LeaderID: 2, Replicas: []int32{1, 2, 3}, ISR: []int32{2}}); err != nil {
		t.Fatal(err)
	}
	repl := &fakeReplicator{leader: 1, epoch: 8}
	k := NewLeaseKeeper(LeaseOptions{NodeID: 1, Lease: time.Second, Now: clk.now,
		Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, repl, zaptest.NewLogger(t))
	k.Renew(context.Background())
	if got := repl.questions(); len(got) != 0 {
		t.Fatalf("asked %v while leading nothing", got)
	}
}

// TestLeaseKeeperRunStops: Run renews on its own every interval and
// returns when its context ends (goleak checks no goroutine is left).
func TestLeaseKeeperRunStops(t *testing.T) {
	p := newLeasedLeader(t, &fakeClock{t: time.Now()}, time.Hour)
	repl := &fakeReplicator{leader: 1, epoch: 7, calls: make(chan struct{}, 1)}
	k := NewLeaseKeeper(LeaseOptions{NodeID: 1, Lease: 40 * time.Millisecond,
		Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, repl, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		k.Run(ctx)
		close(done)
	}()
	for range 2 {
		select {
		case <-repl.calls:
		case <-time.After(10 * time.Second):
			t.Fatal("no renewal within 10 s")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
