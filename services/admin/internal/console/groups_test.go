package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// fakeGroups is the cluster's consumer groups and the partition offsets
// of their topics, as admin's cluster client answers them (httpapi.Groups
// and the Topics describe the lag is read with).
type fakeGroups struct {
	stratav1.TopicsClient // only DescribeTopic is called
	groups                map[string]*stratav1.DescribeGroupResponse
	topics                map[string]*stratav1.TopicMetadata
	unreached             []string
}

// sampleGroups: app-1 is stable with two members on orders, lagging on
// partition 0; app-2 is empty; a group named by markup (the fake allows
// what the broker would not).
func sampleGroups() *fakeGroups {
	tps := func(topic string, ps ...int32) []*stratav1.TopicPartitions {
		return []*stratav1.TopicPartitions{{Topic: topic, Partitions: ps}}
	}
	return &fakeGroups{
		groups: map[string]*stratav1.DescribeGroupResponse{
			"app-1": {Group: "app-1", State: "stable", GroupEpoch: 3, CoordinatorId: 2,
				Members: []*stratav1.GroupMember{
					{MemberId: "m-a", ClientId: xss, Identity: "app", MemberEpoch: 3, Topics: []string{"orders"}, Assigned: tps("orders", 0, 1)},
					{MemberId: "m-b", ClientId: "svc", Identity: "app", MemberEpoch: 3, Topics: []string{"orders"}, Assigned: tps("orders", 2), Pending: tps("orders", 1)},
				},
				Offsets: []*stratav1.PartitionOffset{
					{Topic: "orders", Partition: 0, Offset: 1200, CommitTimeMs: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()},
					{Topic: "orders", Partition: 1, Offset: 5},
				}},
			"app-2": {Group: "app-2", State: "empty", CoordinatorId: 1},
			xss:     {Group: xss, State: "reconciling", CoordinatorId: 1},
		},
		topics: map[string]*stratav1.TopicMetadata{"orders": {Name: "orders", Partitions: []*stratav1.PartitionMetadata{
			{Partition: 0, LogEndOffset: 2500, HighWatermark: 2400},
			{Partition: 1, LogEndOffset: 5, HighWatermark: 5},
			{Partition: 2, LogEndOffset: 9, HighWatermark: 9},
		}}},
		unreached: []string{"b2:9092"},
	}
}

func (f *fakeGroups) DescribeTopic(_ context.Context, in *stratav1.DescribeTopicRequest, _ ...grpc.CallOption) (*stratav1.DescribeTopicResponse, error) {
	t, ok := f.topics[in.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", in.GetName())
	}
	return &stratav1.DescribeTopicResponse{Topic: t}, nil
}

func (f *fakeGroups) ListGroups(context.Context) ([]*stratav1.GroupSummary, []string, error) {
	var out []*stratav1.GroupSummary
	for _, name := range []string{xss, "app-1", "app-2"} {
		g := f.groups[name]
		out = append(out, &stratav1.GroupSummary{Group: name, State: g.GetState(), Members: int32(len(g.GetMembers())), CoordinatorId: g.GetCoordinatorId()})
	}
	return out, f.unreached, nil
}

func (f *fakeGroups) DescribeGroup(_ context.Context, group string) (*stratav1.DescribeGroupResponse, error) {
	g, ok := f.groups[group]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "group: no such group: %q", group)
	}
	return g, nil
}

func (f *fakeGroups) FetchOffsets(context.Context, string, ...string) ([]*stratav1.PartitionOffset, error) {
	return nil, status.Error(codes.Unimplemented, "not on a page")
}

func (f *fakeGroups) DeleteGroup(context.Context, string) error {
	return status.Error(codes.Unimplemented, "not on a page")
}

func (f *fakeGroups) ResetOffsets(context.Context, *stratav1.ResetOffsetsRequest) error {
	return status.Error(codes.Unimplemented, "not on a page")
}

func (f *fakeGroups) OffsetForTime(context.Context, string, int32, time.Time) (int64, error) {
	return 0, status.Error(codes.Unimplemented, "not on a page")
}

// TestGroupsPage: every group the caller may describe, with its state and
// members, names escaped; the nodes that did not answer named.
func TestGroupsPage(t *testing.T) {
	f := newFixture(t, sampleCluster(), nil)
	body := mustPage(t, f.do(t, "operator", http.MethodGet, DefaultBase+"/groups", nil), http.StatusOK,
		`<tr data-group="app-1">`, `href="/console/groups/app-1"`, `<span class="badge ok">stable</span>`,
		`<span class="badge warn">reconciling</span>`, "&lt;script&gt;", "/console/groups/%3Cscript%3E",
		"Admin could not reach b2:9092")
	if !strings.Contains(body, `<td class="num">2</td>`) {
		t.Fatalf("app-1's two members not shown:\n%s", body)
	}
	// reader may describe app-* only.
	body = mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/groups", nil), http.StatusOK, `data-group="app-1"`, `data-group="app-2"`)
	if strings.Contains(body, "&lt;script&gt;</a>") {
		t.Fatalf("reader sees a group it may not describe:\n%s", body)
	}
	mustPage(t, f.do(t, "nobody", http.MethodGet, DefaultBase+"/groups", nil), http.StatusForbidden, "what the API route GET /v1/groups needs")
}

// TestGroupPage: members with their assignment, and per partition the
// owner, committed offset, log end, high watermark and lag, the total
// lag, unknown where nothing was committed; describe on the group is
// needed.
func TestGroupPage(t *testing.T) {
	f := newFixture(t, sampleCluster(), nil)
	body := mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/groups/app-1", nil), http.StatusOK,
		`id="group-members">2<`, `id="group-lag">1,200<`, "(unknown for 1 of 3 partitions)", "cooperative-sticky",
		`<tr data-member="m-a">`, "orders: 0, 1", "orders: 2", "&lt;script&gt;",
		`<tr data-topic="orders" data-partition="0">`, `<td class="lag">1,200</td>`, "2026-03-01 12:00:00Z",
		`<td class="lag">0</td>`, `<td class="lag"><span class="muted">unknown</span></td>`)
	if n := strings.Count(body, `<tr data-topic="orders"`); n != 3 {
		t.Fatalf("%d partition rows, want 3:\n%s", n, body)
	}
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/groups/app-2", nil), http.StatusOK, "No members", "No partitions")
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/groups/"+url.PathEscape(xss), nil), http.StatusForbidden, "on group &lt;script&gt;")
	mustPage(t, f.do(t, "operator", http.MethodGet, DefaultBase+"/groups/"+url.PathEscape(xss), nil), http.StatusOK, "reconciling")
	mustPage(t, f.do(t, "operator", http.MethodGet, DefaultBase+"/groups/nope", nil), http.StatusNotFound, "No group nope.")
}
