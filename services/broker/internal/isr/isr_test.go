package isr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeController struct {
	mu      sync.Mutex
	reqs    []*stratav1.AlterPartitionRequest
	resigns []*stratav1.ResignLeadershipRequest
	fail    bool
	calls   chan struct{}
}

func (f *fakeController) ResignLeadership(ctx context.Context, in *stratav1.ResignLeadershipRequest, _ ...grpc.CallOption) (*stratav1.ResignLeadershipResponse, error) {
	f.mu.Lock()
	f.resigns = append(f.resigns, in)
	fail := f.fail
	f.mu.Unlock()
	select {
	case f.calls <- struct{}{}:
	default:
	}
	if fail {
		return nil, status.Error(codes.FailedPrecondition, "no other alive in-sync replica")
	}
	return &stratav1.ResignLeadershipResponse{LeaderId: 2, LeaderEpoch: in.GetLeaderEpoch() + 1, Isr: []int32{2, 3}}, nil
}

// counts is how many ISR changes and resignations the controller saw.
func (f *fakeController) counts() (alters, resigns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs), len(f.resigns)
}

func (f *fakeController) AlterPartition(ctx context.Context, in *stratav1.AlterPartitionRequest, _ ...grpc.CallOption) (*stratav1.AlterPartitionResponse, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, in)
	fail := f.fail
	f.mu.Unlock()
	select {
	case f.calls <- struct{}{}:
	default:
	}
	if fail {
		return nil, status.Error(codes.FailedPrecondition, "stale leader epoch")
	}
	return &stratav1.AlterPartitionResponse{LeaderEpoch: in.GetLeaderEpoch(), Isr: in.GetIsr()}, nil
}

// TestManagerProposesShrink: a follower that never reports is proposed
// out of the ISR after the lag bound, with the leader's epoch; the
// committed ISR is not touched by the manager itself.
func TestManagerProposesShrink(t *testing.T) {
	l, err := logstore.Open(t.TempDir(), logstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := partition.New(l, partition.Options{Topic: "orders", ID: 2, MaxRecordBytes: 1 << 10,
		State: partition.State{Role: partition.RoleLeader, LeaderEpoch: 7, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}})
	defer p.Close()
	if err := p.FollowerFetched(2, 7, 0); err != nil {
		t.Fatal(err)
	}
	fc := &fakeController{calls: make(chan struct{}, 1)}
	m := New(Options{NodeID: 1, LagMax: 200 * time.Millisecond, Interval: 20 * time.Millisecond,
		Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, fc, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx)
		close(done)
	}()
	// Keep follower 2 caught up; 3 stays silent.
	deadline := time.After(10 * time.Second)
wait:
	for {
		if err := p.FollowerFetched(2, 7, 0); err != nil {
			t.Fatal(err)
		}
		select {
		case <-fc.calls:
			break wait
		case <-deadline:
			t.Fatal("no proposal within 10 s")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	<-done
	fc.mu.Lock()
	defer fc.mu.Unlock()
	req := fc.reqs[0]
	if req.GetTopic() != "orders" || req.GetPartition() != 2 || req.GetLeaderId() != 1 || req.GetLeaderEpoch() != 7 || !slices.Equal(req.GetIsr(), []int32{1, 2}) {
		t.Fatalf("proposal %v, want orders/2 by 1 in epoch 7 with ISR [1 2]", req)
	}
	if isr := p.State().ISR; !slices.Equal(isr, []int32{1, 2, 3}) {
		t.Fatalf("ISR changed to %v before the controller's state came back", isr)
	}
}

// damagedLog is a real log that reports the damage a test sets.
type damagedLog struct {
	partition.Log
	mu  sync.Mutex
	err error
}

func (l *damagedLog) Healthy() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *damagedLog) set(err error) {
	l.mu.Lock()
	l.err = err
	l.mu.Unlock()
}

// newLeader is orders/2 led by broker 1 in epoch 7 with 5 records.
func newLeader(tb testing.TB, isr []int32) (*partition.Partition, *damagedLog) {
	tb.Helper()
	l, err := logstore.Open(tb.TempDir(), logstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	dl := &damagedLog{Log: l}
	p := partition.New(dl, partition.Options{Topic: "orders", ID: 2, MaxRecordBytes: 1 << 10, MinInsyncReplicas: 1,
		State: partition.State{Role: partition.RoleLeader, LeaderEpoch: 7, LeaderID: 1, Replicas: []int32{1, 2, 3}, ISR: isr}})
	tb.Cleanup(func() { p.Close() })
	for range 5 {
		if _, err := p.Produce(context.Background(), []*stratav1.Record{{Value: []byte("v")}}, stratav1.Acks_ACKS_LEADER); err != nil {
			tb.Fatal(err)
		}
	}
	return p, dl
}

// TestManagerResignsWithDamagedLog: a leader whose log failed or holds a
// corrupt record below its log end asks the controller to move leadership
// when another replica is in sync, once per epoch; a leader alone in its
// ISR, or with corruption no longer in its log, keeps leading.
func TestManagerResignsWithDamagedLog(t *testing.T) {
	failed := fmt.Errorf("%w: %w", logstore.ErrFailed, errors.New("fsync: input/output error"))
	corrupt := &logstore.CorruptError{Segment: "00000000000000000000.log", Position: 48, Offset: 2, Reason: "checksum mismatch"}
	for _, tc := range []struct {
		name   string
		isr    []int32
		damage error
		resign bool
	}{
		{"corrupt record below the log end", []int32{1, 2, 3}, corrupt, true},
		{"failed log", []int32{1, 3}, failed, true},
		{"alone in the ISR with a corrupt record", []int32{1}, corrupt, false},
		{"alone in the ISR with a failed log", []int32{1}, failed, false},
		{"corrupt record past the log end", []int32{1, 2, 3}, &logstore.CorruptError{Offset: 9, Reason: "truncated away"}, false},
		{"corrupt record at an unknown offset", []int32{1, 2, 3}, &logstore.CorruptError{Offset: -1, Reason: "unknown"}, false},
		{"healthy", []int32{1, 2, 3}, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, dl := newLeader(t, tc.isr)
			dl.set(tc.damage)
			fc := &fakeController{calls: make(chan struct{}, 1)}
			m := New(Options{NodeID: 1, LagMax: time.Hour, Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, fc, nil)
			if got := m.resign(context.Background(), p); got != tc.resign {
				t.Fatalf("resign = %v, want %v", got, tc.resign)
			}
			_, n := fc.counts()
			if !tc.resign {
				if n != 0 {
					t.Fatalf("%d resignations, want none", n)
				}
				return
			}
			if n != 1 {
				t.Fatalf("%d resignations, want 1", n)
			}
			req := fc.resigns[0]
			if req.GetTopic() != "orders" || req.GetPartition() != 2 || req.GetLeaderId() != 1 || req.GetLeaderEpoch() != 7 || req.GetReason() != tc.damage.Error() {
				t.Fatalf("resignation %v, want orders/2 by 1 in epoch 7 for %q", req, tc.damage)
			}
			// The new state takes a moment to arrive: no second request
			// in the same epoch.
			m.resign(context.Background(), p)
			if _, n := fc.counts(); n != 1 {
				t.Fatalf("%d resignations in one epoch, want 1", n)
			}
			if st := p.State(); st.Role != partition.RoleLeader || st.LeaderEpoch != 7 {
				t.Fatalf("the manager changed the state itself: %+v", st)
			}
		})
	}

	t.Run("a refused resignation is asked again", func(t *testing.T) {
		p, dl := newLeader(t, []int32{1, 2})
		dl.set(failed)
		fc := &fakeController{calls: make(chan struct{}, 1), fail: true}
		m := New(Options{NodeID: 1, LagMax: time.Hour, Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, fc, nil)
		for range 2 {
			if m.resign(context.Background(), p) {
				t.Fatal("a refused resignation reported leadership moving")
			}
		}
		if _, n := fc.counts(); n != 2 {
			t.Fatalf("%d resignations, want 2", n)
		}
	})

	t.Run("Run resigns instead of shrinking the ISR", func(t *testing.T) {
		p, dl := newLeader(t, []int32{1, 2, 3})
		dl.set(corrupt)
		fc := &fakeController{calls: make(chan struct{}, 1)}
		// Followers 2 and 3 never report: past LagMax a shrink would be due.
		m := New(Options{NodeID: 1, LagMax: time.Millisecond, Interval: 10 * time.Millisecond,
			Partitions: func() []*partition.Partition { return []*partition.Partition{p} }}, fc, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			m.Run(ctx)
			close(done)
		}()
		select {
		case <-fc.calls:
		case <-time.After(10 * time.Second):
			t.Fatal("no call within 10 s")
		}
		cancel()
		<-done
		if alters, resigns := fc.counts(); alters != 0 || resigns != 1 {
			t.Fatalf("%d ISR changes and %d resignations, want 0 and 1", alters, resigns)
		}
	})
}
