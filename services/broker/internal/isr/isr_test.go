package isr

import (
	"context"
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
	mu    sync.Mutex
	reqs  []*stratav1.AlterPartitionRequest
	fail  bool
	calls chan struct{}
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
