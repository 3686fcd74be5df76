package cluster

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// fakeGroups is a node's consumer groups: the groups it coordinates, and
// the NotCoordinator it answers for any other (NotFound when nil).
type fakeGroups struct {
	mu      sync.Mutex
	coord   map[string]*stratav1.DescribeGroupResponse
	other   *stratav1.NotCoordinator
	listErr error
	calls   int
	// records are partition 0 of topic t, at offsets from 0.
	records []*stratav1.Record
}

func (n *fakeNode) setOther(nc *stratav1.NotCoordinator) {
	n.groups.mu.Lock()
	defer n.groups.mu.Unlock()
	n.groups.other = nc
}

func (n *fakeNode) callCount() int {
	n.groups.mu.Lock()
	defer n.groups.mu.Unlock()
	return n.groups.calls
}

func (n *fakeNode) ListGroups(context.Context, *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	n.groups.mu.Lock()
	defer n.groups.mu.Unlock()
	if n.groups.listErr != nil {
		return nil, n.groups.listErr
	}
	resp := &stratav1.ListGroupsResponse{}
	for name, g := range n.groups.coord {
		resp.Groups = append(resp.Groups, &stratav1.GroupSummary{Group: name, State: g.GetState(),
			Members: int32(len(g.GetMembers())), CoordinatorId: g.GetCoordinatorId()})
	}
	return resp, nil
}

// find answers the group this node coordinates, or its refusal.
func (n *fakeNode) find(group string) (*stratav1.DescribeGroupResponse, error) {
	n.groups.mu.Lock()
	defer n.groups.mu.Unlock()
	n.groups.calls++
	if g, ok := n.groups.coord[group]; ok {
		return g, nil
	}
	if n.groups.other == nil {
		return nil, status.Errorf(codes.NotFound, "group: no such group: %q", group)
	}
	st, err := status.New(codes.FailedPrecondition, "not the coordinator").WithDetails(n.groups.other)
	if err != nil {
		return nil, err
	}
	return nil, st.Err()
}

func (n *fakeNode) DescribeGroup(_ context.Context, req *stratav1.DescribeGroupRequest) (*stratav1.DescribeGroupResponse, error) {
	return n.find(req.GetGroup())
}

func (n *fakeNode) DeleteGroup(_ context.Context, req *stratav1.DeleteGroupRequest) (*stratav1.DeleteGroupResponse, error) {
	g, err := n.find(req.GetGroup())
	if err != nil {
		return nil, err
	}
	if len(g.GetMembers()) > 0 {
		return nil, status.Error(codes.FailedPrecondition, "group: the group has members: 1 members; stop them first")
	}
	return &stratav1.DeleteGroupResponse{}, nil
}

func (n *fakeNode) Consume(_ context.Context, req *stratav1.ConsumeRequest) (*stratav1.ConsumeResponse, error) {
	if _, ok := n.led[req.GetPartition()]; !ok {
		return nil, status.Error(codes.FailedPrecondition, "not the leader")
	}
	resp := &stratav1.ConsumeResponse{}
	if o := req.GetOffset(); o >= 0 && o < int64(len(n.groups.records)) {
		resp.Records = n.groups.records[o : o+1]
	}
	return resp, nil
}

// ConsumeStream sends the first record at or after the time and then
// holds the stream, as a broker does; a time past every record is a test
// failure (the real stream would wait for a record to come).
func (n *fakeNode) ConsumeStream(req *stratav1.ConsumeStreamRequest, stream grpc.ServerStreamingServer[stratav1.ConsumeResponse]) error {
	for _, r := range n.groups.records {
		if r.GetTimestampMs() >= req.GetTimestampMs() {
			if err := stream.Send(&stratav1.ConsumeResponse{Records: []*stratav1.Record{r}, NextOffset: r.GetOffset() + 1}); err != nil {
				return err
			}
			<-stream.Context().Done()
			return nil
		}
	}
	return status.Error(codes.Internal, "a stream was opened for a time past the newest record: it would wait")
}

// TestListGroupsMerges: every node lists the groups it coordinates; admin
// lists them all by name, once each, and names a node that did not answer.
func TestListGroupsMerges(t *testing.T) {
	g := func(coord int32) *stratav1.DescribeGroupResponse {
		return &stratav1.DescribeGroupResponse{State: "stable", CoordinatorId: coord}
	}
	down := &fakeNode{groups: fakeGroups{listErr: status.Error(codes.Unavailable, "broker shutting down")}}
	c := serveNodes(t,
		&fakeNode{groups: fakeGroups{coord: map[string]*stratav1.DescribeGroupResponse{"billing": g(1), "audit": g(1)}}},
		down,
		// A deposed coordinator still listing audit: one entry.
		&fakeNode{groups: fakeGroups{coord: map[string]*stratav1.DescribeGroupResponse{"orders": g(3), "audit": g(3)}}},
	)
	groups, unreached, err := c.ListGroups(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range groups {
		names = append(names, s.GetGroup())
	}
	if strings.Join(names, ",") != "audit,billing,orders" {
		t.Fatalf("groups %v", names)
	}
	if len(unreached) != 1 || unreached[0] != c.addrs[1] {
		t.Fatalf("unreached %v, want [%s]", unreached, c.addrs[1])
	}

	t.Run("no node answers", func(t *testing.T) {
		c := serveNodes(t, down, down)
		if _, unreached, err := c.ListGroups(context.Background()); status.Code(err) != codes.Unavailable || len(unreached) != 2 {
			t.Fatalf("ListGroups = %v, unreached %v", err, unreached)
		}
	})
}

// TestCallsReachTheCoordinator: a node that is not the coordinator names
// it; admin goes straight to it when it has its address, else tries the
// nodes in turn; every node refusing is Unavailable naming the
// coordinator; any other refusal is answered at once.
func TestCallsReachTheCoordinator(t *testing.T) {
	coordinated := map[string]*stratav1.DescribeGroupResponse{
		"billing": {Group: "billing", State: "empty", CoordinatorId: 3},
		"busy":    {Group: "busy", State: "stable", CoordinatorId: 3, Members: []*stratav1.GroupMember{{MemberId: "m1"}}},
	}
	nodes := []*fakeNode{{}, {}, {groups: fakeGroups{coord: coordinated}}}
	c := serveNodes(t, nodes...)
	ctx := context.Background()
	reset := func(named *stratav1.NotCoordinator) {
		for _, n := range nodes[:2] {
			n.setOther(named)
		}
		for _, n := range nodes {
			n.groups.mu.Lock()
			n.groups.calls = 0
			n.groups.mu.Unlock()
		}
	}
	calls := func() [3]int { return [3]int{nodes[0].callCount(), nodes[1].callCount(), nodes[2].callCount()} }

	t.Run("named address known: straight there", func(t *testing.T) {
		reset(&stratav1.NotCoordinator{CoordinatorId: 3, CoordinatorAddress: c.addrs[2]})
		g, err := c.DescribeGroup(ctx, "billing")
		if err != nil || g.GetCoordinatorId() != 3 {
			t.Fatalf("DescribeGroup = %v, %v", g, err)
		}
		if got := calls(); got != [3]int{1, 0, 1} {
			t.Fatalf("calls per node %v, want [1 0 1]", got)
		}
	})
	t.Run("named address unknown: in turn", func(t *testing.T) {
		reset(&stratav1.NotCoordinator{CoordinatorId: 3, CoordinatorAddress: "127.0.0.1:19093"})
		if err := c.DeleteGroup(ctx, "billing"); err != nil {
			t.Fatal(err)
		}
		if got := calls(); got != [3]int{1, 1, 1} {
			t.Fatalf("calls per node %v, want [1 1 1]", got)
		}
	})
	t.Run("a refusal of the coordinator is its answer", func(t *testing.T) {
		reset(&stratav1.NotCoordinator{CoordinatorId: 3, CoordinatorAddress: c.addrs[2]})
		err := c.DeleteGroup(ctx, "busy")
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "has members") {
			t.Fatalf("DeleteGroup(busy) = %v", err)
		}
	})
	t.Run("no node coordinates it", func(t *testing.T) {
		reset(&stratav1.NotCoordinator{CoordinatorId: 4, CoordinatorAddress: "10.0.0.4:9092"})
		nodes[2].setOther(&stratav1.NotCoordinator{CoordinatorId: 4, CoordinatorAddress: "10.0.0.4:9092"})
		_, err := c.DescribeGroup(ctx, "elsewhere")
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "broker 4, address 10.0.0.4:9092") {
			t.Fatalf("DescribeGroup(elsewhere) = %v", err)
		}
		if got := calls(); got != [3]int{1, 1, 1} {
			t.Fatalf("calls per node %v, want each node once", got)
		}
	})
}

// TestOffsetForTime: the first record at or after a time, read at the
// partition's leader; a time past the newest record is the high
// watermark, found without a stream that would wait.
func TestOffsetForTime(t *testing.T) {
	recs := []*stratav1.Record{{Offset: 0, TimestampMs: 1000}, {Offset: 1, TimestampMs: 2000}, {Offset: 2, TimestampMs: 3000}}
	topics := []*stratav1.TopicMetadata{{Name: "t", Partitions: []*stratav1.PartitionMetadata{
		{Partition: 0, LeaderId: 2, LeaderEpoch: 1}, {Partition: 1, LeaderId: 2, LeaderEpoch: 1},
	}}}
	c := serveNodes(t,
		&fakeNode{topics: topics},
		&fakeNode{topics: topics, led: map[int32][4]int64{0: {1, 0, 3, 3}, 1: {1, 5, 5, 5}}, groups: fakeGroups{records: recs}},
	)
	ms := func(v int64) time.Time { return time.UnixMilli(v) }
	tests := []struct {
		name      string
		partition int32
		at        time.Time
		want      int64
	}{
		{"before every record", 0, ms(10), 0},
		{"at a record", 0, ms(2000), 1},
		{"between records", 0, ms(2500), 2},
		{"at the newest", 0, ms(3000), 2},
		{"past the newest", 0, ms(3001), 3},
		{"empty partition", 1, ms(10), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.OffsetForTime(context.Background(), "t", tt.partition, tt.at)
			if err != nil || got != tt.want {
				t.Fatalf("OffsetForTime = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
	t.Run("no leader", func(t *testing.T) {
		if _, err := c.OffsetForTime(context.Background(), "t", 7, ms(10)); status.Code(err) != codes.Unavailable {
			t.Fatalf("OffsetForTime(t/7) = %v", err)
		}
	})
}
