package broker

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// coordinatorReady waits until the broker coordinates group (the offsets
// topic is created on first use).
func coordinatorReady(t *testing.T, g stratav1.GroupsClient, group string) *stratav1.FindCoordinatorResponse {
	t.Helper()
	var resp *stratav1.FindCoordinatorResponse
	eventually(t, 10*time.Second, func() bool {
		var err error
		resp, err = g.FindCoordinator(ctxT(t), &stratav1.FindCoordinatorRequest{Group: group})
		return err == nil
	})
	return resp
}

// TestGroupsEndToEnd: over real gRPC on one broker, a member joins a
// group and gets every partition of its topic, commits an offset, and the
// offsets survive a broker restart (rebuilt from __consumer_offsets); a
// commit above the high watermark is OutOfRange, an unknown group NotFound,
// and a zombie's commit FailedPrecondition.
func TestGroupsEndToEnd(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	b, c := startBroker(t, cfg)
	createTopic(t, c, "orders", &stratav1.TopicConfig{Partitions: 3})
	for p := range int32(3) {
		if _, err := c.log.Produce(ctxT(t), &stratav1.ProduceRequest{Topic: "orders", Partition: p, Records: values(5, "r")}); err != nil {
			t.Fatal(err)
		}
	}
	groups := stratav1.NewGroupsClient(c.conn)
	fc := coordinatorReady(t, groups, "app")
	if fc.GetCoordinatorId() != cfg.NodeID {
		t.Fatalf("coordinator %v", fc)
	}

	ctx, cancel := context.WithCancel(ctxT(t))
	sess, err := groups.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Join{Join: &stratav1.Join{Group: "app", Topics: []string{"orders"}, ClientId: "test"}}}); err != nil {
		t.Fatal(err)
	}
	joined, err := sess.Recv()
	if err != nil || joined.GetJoined() == nil {
		t.Fatalf("join: %v %v", joined, err)
	}
	a, err := sess.Recv()
	if err != nil || len(a.GetAssignment().GetPartitions()) != 1 || len(a.GetAssignment().GetPartitions()[0].GetPartitions()) != 3 {
		t.Fatalf("assignment: %v %v", a, err)
	}
	member, epoch := joined.GetJoined().GetMemberId(), a.GetAssignment().GetMemberEpoch()
	commit := func(memberID string, off int64) error {
		_, err := groups.CommitOffsets(ctxT(t), &stratav1.CommitOffsetsRequest{Group: "app", MemberId: memberID, MemberEpoch: epoch,
			Offsets: []*stratav1.PartitionOffset{{Topic: "orders", Partition: 1, Offset: off, Metadata: "batch-1"}}})
		return err
	}
	if err := commit(member, 3); err != nil {
		t.Fatal(err)
	}
	if code := status.Code(commit(member, 6)); code != codes.OutOfRange {
		t.Fatalf("commit above the high watermark: %v, want OutOfRange", code)
	}
	if code := status.Code(commit("zombie", 2)); code != codes.FailedPrecondition {
		t.Fatalf("zombie commit: %v, want FailedPrecondition", code)
	}
	for series, want := range map[string]float64{
		`strata_group_committed_offset{group="app",partition="1",topic="orders"}`: 3,
		`strata_group_lag_records{group="app",partition="1",topic="orders"}`:      2,
		`strata_group_members{group="app"}`:                                       1,
		`strata_group_state{group="app",state="stable"}`:                          1,
	} {
		if got := metricValue(t, b, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	d, err := groups.DescribeGroup(ctxT(t), &stratav1.DescribeGroupRequest{Group: "app"})
	if err != nil || len(d.GetMembers()) != 1 || d.GetMembers()[0].GetClientId() != "test" {
		t.Fatalf("describe: %v %v", d, err)
	}
	if _, err := groups.DescribeGroup(ctxT(t), &stratav1.DescribeGroupRequest{Group: "nobody"}); status.Code(err) != codes.NotFound {
		t.Fatalf("describe of an unknown group: %v", err)
	}
	if err := sess.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Leave{Leave: &stratav1.Leave{}}}); err != nil {
		t.Fatal(err)
	}
	cancel()

	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, c2 := startBroker(t, cfg)
	groups2 := stratav1.NewGroupsClient(c2.conn)
	coordinatorReady(t, groups2, "app")
	resp, err := groups2.FetchOffsets(ctxT(t), &stratav1.FetchOffsetsRequest{Group: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.GetOffsets(); len(got) != 1 || got[0].GetOffset() != 3 || got[0].GetMetadata() != "batch-1" {
		t.Fatalf("offsets after restart: %v", got)
	}
}
