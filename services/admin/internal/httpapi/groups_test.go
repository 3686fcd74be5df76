package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/adminapi"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// fakeGroups is an in-memory Groups: the groups of a cluster and what
// their coordinators would refuse.
type fakeGroups struct {
	mu        sync.Mutex
	groups    map[string]*stratav1.DescribeGroupResponse
	unreached []string
	// times answers OffsetForTime per partition.
	times  map[int32]int64
	resets []*stratav1.ResetOffsetsRequest
}

func newFakeGroups() *fakeGroups {
	return &fakeGroups{groups: map[string]*stratav1.DescribeGroupResponse{}, times: map[int32]int64{}}
}

func (f *fakeGroups) put(g *stratav1.DescribeGroupResponse) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.groups[g.GetGroup()] = g
}

func (f *fakeGroups) stored() []*stratav1.ResetOffsetsRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.resets)
}

func (f *fakeGroups) ListGroups(context.Context) ([]*stratav1.GroupSummary, []string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*stratav1.GroupSummary
	for name, g := range f.groups {
		out = append(out, &stratav1.GroupSummary{Group: name, State: g.GetState(), Members: int32(len(g.GetMembers())), CoordinatorId: g.GetCoordinatorId()})
	}
	slices.SortFunc(out, func(a, b *stratav1.GroupSummary) int { return strings.Compare(a.GetGroup(), b.GetGroup()) })
	return out, f.unreached, nil
}

func (f *fakeGroups) DescribeGroup(_ context.Context, group string) (*stratav1.DescribeGroupResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[group]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "group: no such group: %q", group)
	}
	return proto.Clone(g).(*stratav1.DescribeGroupResponse), nil
}

func (f *fakeGroups) FetchOffsets(_ context.Context, group string, topics ...string) ([]*stratav1.PartitionOffset, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*stratav1.PartitionOffset
	for _, o := range f.groups[group].GetOffsets() {
		if len(topics) == 0 || slices.Contains(topics, o.GetTopic()) {
			out = append(out, o)
		}
	}
	return out, nil
}

func (f *fakeGroups) DeleteGroup(_ context.Context, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.groups[group]
	switch {
	case !ok:
		return status.Errorf(codes.NotFound, "group: no such group: %q", group)
	case len(g.GetMembers()) > 0:
		return status.Errorf(codes.FailedPrecondition, "group: the group has members: %d members; stop them first", len(g.GetMembers()))
	}
	delete(f.groups, group)
	return nil
}

func (f *fakeGroups) ResetOffsets(_ context.Context, req *stratav1.ResetOffsetsRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := len(f.groups[req.GetGroup()].GetMembers()); n > 0 && !req.GetForce() {
		return status.Errorf(codes.FailedPrecondition, "group: the group has members: %d members; stop them or force", n)
	}
	f.resets = append(f.resets, req)
	return nil
}

func (f *fakeGroups) OffsetForTime(_ context.Context, _ string, partition int32, _ time.Time) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.times[partition], nil
}

// putTopic puts a topic whose partition i has offsets[i] (log start, log
// end, high watermark) at its leader.
func (f *fakeTopics) putTopic(name string, offsets ...[3]int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &stratav1.TopicMetadata{Name: name, Config: &stratav1.TopicConfig{Partitions: int32(len(offsets))}}
	for i, o := range offsets {
		t.Partitions = append(t.Partitions, &stratav1.PartitionMetadata{Partition: int32(i), LeaderId: 1,
			LogStartOffset: o[0], LogEndOffset: o[1], HighWatermark: o[2]})
	}
	f.topics[name] = t
}

func tps(topic string, partitions ...int32) []*stratav1.TopicPartitions {
	return []*stratav1.TopicPartitions{{Topic: topic, Partitions: partitions}}
}

// groupsFixture: orders has three partitions, app-1 is a stable group of
// two members consuming it with offsets committed for two partitions,
// app-2 and billing are empty groups.
func groupsFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, t.TempDir())
	f.topics.putTopic("orders", [3]int64{0, 100, 100}, [3]int64{10, 50, 40}, [3]int64{0, 7, 7})
	f.groups.put(&stratav1.DescribeGroupResponse{Group: "app-1", State: "stable", GroupEpoch: 4,
		Assignor: stratav1.Assignor_ASSIGNOR_RANGE, CoordinatorId: 2,
		Members: []*stratav1.GroupMember{
			{MemberId: "m-b", ClientId: "svc", Identity: "app", MemberEpoch: 4, Topics: []string{"orders"}, Assigned: tps("orders", 2)},
			{MemberId: "m-a", InstanceId: "i-1", Identity: "app", MemberEpoch: 4, Topics: []string{"orders"}, Assigned: tps("orders", 0, 1)},
		},
		Offsets: []*stratav1.PartitionOffset{
			{Topic: "orders", Partition: 0, Offset: 60, Metadata: "m", CommitTimeMs: 1_700_000_000_000},
			{Topic: "orders", Partition: 1, Offset: 40},
			// A topic since deleted: offsets unknown.
			{Topic: "gone", Partition: 0, Offset: 5},
		},
	})
	f.groups.put(&stratav1.DescribeGroupResponse{Group: "app-2", State: "empty", CoordinatorId: 1,
		Offsets: []*stratav1.PartitionOffset{{Topic: "orders", Partition: 1, Offset: 20}}})
	f.groups.put(&stratav1.DescribeGroupResponse{Group: "billing", State: "empty", CoordinatorId: 3})
	return f
}

func groupNames(l adminapi.GroupList) []string {
	var names []string
	for _, g := range l.Groups {
		names = append(names, g.Group)
	}
	return names
}

// TestGroupRoutesACL: listing needs describe on cluster and shows only
// the groups the caller may describe; describe, delete and reset need
// describe, delete and alter on group:NAME; a topic rule never grants a
// group.
func TestGroupRoutesACL(t *testing.T) {
	f := groupsFixture(t)
	f.groups.unreached = []string{"broker-3:9092"}
	tests := []struct {
		name, who, method, path, body string
		want                          int
	}{
		{"operator lists", "operator", http.MethodGet, "/v1/groups", "", http.StatusOK},
		{"nobody may not list", "nobody", http.MethodGet, "/v1/groups", "", http.StatusForbidden},
		{"grouper describes app-1", "grouper", http.MethodGet, "/v1/groups/app-1", "", http.StatusOK},
		{"grouper may not describe billing", "grouper", http.MethodGet, "/v1/groups/billing", "", http.StatusForbidden},
		{"writer's topic rules grant no group", "writer", http.MethodGet, "/v1/groups/app-1", "", http.StatusForbidden},
		{"grouper may not delete app-2", "grouper", http.MethodDelete, "/v1/groups/app-2", "", http.StatusForbidden},
		{"grouper may not reset app-2", "grouper", http.MethodPost, "/v1/groups/app-2/offsets", `{"topic": "orders", "to_earliest": true}`, http.StatusForbidden},
		{"grouper resets app-1 (dry run)", "grouper", http.MethodPost, "/v1/groups/app-1/offsets", `{"topic": "orders", "to_earliest": true, "dry_run": true}`, http.StatusOK},
		{"escaped group name is the same group", "grouper", http.MethodGet, "/v1/groups/%62illing", "", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := f.do(t, as(tt.who), tt.method, tt.path, tt.body)
			if rec.Code != tt.want {
				t.Fatalf("%s %s as %s = %d, want %d: %s", tt.method, tt.path, tt.who, rec.Code, tt.want, rec.Body)
			}
		})
	}
	t.Run("each sees what it may describe", func(t *testing.T) {
		for who, want := range map[string]string{"operator": "app-1,app-2,billing", "grouper": "app-1,app-2", "reader": ""} {
			l := decodeRec[adminapi.GroupList](t, f.do(t, as(who), http.MethodGet, "/v1/groups", ""), http.StatusOK)
			if got := strings.Join(groupNames(l), ","); got != want {
				t.Errorf("%s lists %q, want %q", who, got, want)
			}
			if len(l.Unreached) != 1 {
				t.Errorf("%s: unreached %v", who, l.Unreached)
			}
		}
	})
	if n := len(f.groups.stored()); n != 0 {
		t.Fatalf("%d resets stored by dry runs and refusals", n)
	}
}

// TestDescribeGroupLag: members by id, every partition the group
// committed or owns, with its owner, the leader's offsets and the lag
// (high watermark minus committed offset); unknown stays -1 and out of
// the total.
func TestDescribeGroupLag(t *testing.T) {
	f := groupsFixture(t)
	g := decodeRec[adminapi.Group](t, f.do(t, as("grouper"), http.MethodGet, "/v1/groups/app-1", ""), http.StatusOK)
	if g.State != "stable" || g.GroupEpoch != 4 || g.Assignor != "range" || g.CoordinatorID != 2 {
		t.Fatalf("group %+v", g)
	}
	if len(g.Members) != 2 || g.Members[0].MemberID != "m-a" || g.Members[0].InstanceID != "i-1" || g.Members[1].ClientID != "svc" {
		t.Fatalf("members %+v", g.Members)
	}
	commit := time.UnixMilli(1_700_000_000_000).UTC()
	want := []adminapi.GroupPartition{
		{Topic: "gone", Partition: 0, CommittedOffset: 5, LogStartOffset: -1, LogEndOffset: -1, HighWatermark: -1, Lag: -1},
		{Topic: "orders", Partition: 0, MemberID: "m-a", CommittedOffset: 60, Metadata: "m", CommitTime: &commit,
			LogStartOffset: 0, LogEndOffset: 100, HighWatermark: 100, Lag: 40},
		{Topic: "orders", Partition: 1, MemberID: "m-a", CommittedOffset: 40, LogStartOffset: 10, LogEndOffset: 50, HighWatermark: 40, Lag: 0},
		{Topic: "orders", Partition: 2, MemberID: "m-b", CommittedOffset: -1, LogStartOffset: 0, LogEndOffset: 7, HighWatermark: 7, Lag: -1},
	}
	if len(g.Partitions) != len(want) {
		t.Fatalf("partitions %+v", g.Partitions)
	}
	for i, w := range want {
		got := g.Partitions[i]
		if (got.CommitTime == nil) != (w.CommitTime == nil) || got.CommitTime != nil && !got.CommitTime.Equal(*w.CommitTime) {
			t.Errorf("%s/%d commit time %v, want %v", w.Topic, w.Partition, got.CommitTime, w.CommitTime)
		}
		got.CommitTime, w.CommitTime = nil, nil
		if got != w {
			t.Errorf("row %d = %+v\nwant %+v", i, got, w)
		}
	}
	if g.Lag != 40 {
		t.Fatalf("total lag %d, want 40", g.Lag)
	}
	assertJSONError(t, f.do(t, as("operator"), http.MethodGet, "/v1/groups/nope", ""), http.StatusNotFound)
}

// TestResetOffsets: each target resolved against the leader's offsets
// and kept within [log start, high watermark]; a dry run stores nothing;
// a group with members is refused unless forced; bad bodies are 400.
func TestResetOffsets(t *testing.T) {
	f := groupsFixture(t)
	f.groups.times = map[int32]int64{0: 33, 1: 12, 2: 7}
	// orders: [0,100] HW 100, [10,50] HW 40, [0,7] HW 7; app-2 committed 20 on partition 1.
	tests := []struct {
		name  string
		group string
		body  string
		want  []int64 // offsets of partitions 0, 1, 2 (or those asked)
	}{
		{"to earliest", "app-2", `{"topic": "orders", "to_earliest": true}`, []int64{0, 10, 0}},
		{"to latest", "app-2", `{"topic": "orders", "to_latest": true}`, []int64{100, 40, 7}},
		{"to offset, clamped", "app-2", `{"topic": "orders", "to_offset": 30}`, []int64{30, 30, 7}},
		{"to offset below log start", "app-2", `{"topic": "orders", "to_offset": 3, "partitions": [1]}`, []int64{10}},
		{"to time", "app-2", `{"topic": "orders", "to_time": "2026-03-01T12:00:00Z"}`, []int64{33, 12, 7}},
		{"shift back, clamped", "app-2", `{"topic": "orders", "shift_by": -15, "partitions": [1]}`, []int64{10}},
		{"shift forward", "app-2", `{"topic": "orders", "shift_by": 5, "partitions": [1]}`, []int64{25}},
		{"members, forced", "app-1", `{"topic": "orders", "to_latest": true, "partitions": [2, 0], "force": true}`, []int64{100, 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.groups.stored())
			res := decodeRec[adminapi.ResetOffsetsResult](t, f.do(t, as("operator"), http.MethodPost, "/v1/groups/"+tt.group+"/offsets", tt.body), http.StatusOK)
			var got []int64
			for _, o := range res.Offsets {
				got = append(got, o.Offset)
			}
			if !slices.Equal(got, tt.want) || res.Group != tt.group || res.DryRun {
				t.Fatalf("result %+v, want offsets %v", res, tt.want)
			}
			stored := f.groups.stored()
			if len(stored) != before+1 {
				t.Fatalf("%d resets stored, want 1", len(stored)-before)
			}
			last := stored[len(stored)-1]
			for i, o := range last.GetOffsets() {
				if o.GetOffset() != tt.want[i] || o.GetTopic() != "orders" {
					t.Fatalf("stored %v, want offsets %v", last.GetOffsets(), tt.want)
				}
			}
		})
	}
	t.Run("previous offsets are reported", func(t *testing.T) {
		res := decodeRec[adminapi.ResetOffsetsResult](t, f.do(t, as("operator"), http.MethodPost, "/v1/groups/app-2/offsets",
			`{"topic": "orders", "to_latest": true, "dry_run": true}`), http.StatusOK)
		if !res.DryRun || len(res.Offsets) != 3 || res.Offsets[0].Previous != -1 || res.Offsets[1].Previous != 20 {
			t.Fatalf("dry run %+v", res)
		}
	})
	refusals := []struct {
		name, group, body string
		want              int
		says              string
	}{
		{"members, not forced", "app-1", `{"topic": "orders", "to_latest": true}`, http.StatusPreconditionFailed, "force"},
		{"no target", "app-2", `{"topic": "orders"}`, http.StatusBadRequest, "exactly one"},
		{"two targets", "app-2", `{"topic": "orders", "to_earliest": true, "to_offset": 4}`, http.StatusBadRequest, "exactly one"},
		{"no topic", "app-2", `{"to_earliest": true}`, http.StatusBadRequest, "topic must be set"},
		{"unknown field", "app-2", `{"topic": "orders", "to_earliest": true, "to_everything": 1}`, http.StatusBadRequest, "unknown field"},
		{"bad time", "app-2", `{"topic": "orders", "to_time": "yesterday"}`, http.StatusBadRequest, "body must be JSON"},
		{"negative offset", "app-2", `{"topic": "orders", "to_offset": -1}`, http.StatusBadRequest, "negative"},
		{"no such partition", "app-2", `{"topic": "orders", "to_earliest": true, "partitions": [9]}`, http.StatusBadRequest, "no partition 9"},
		{"nothing to shift", "app-2", `{"topic": "orders", "shift_by": 1}`, http.StatusBadRequest, "orders/0 has no committed offset"},
		{"no such topic", "app-2", `{"topic": "nope", "to_earliest": true}`, http.StatusNotFound, "nope"},
	}
	before := len(f.groups.stored())
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			msg := assertJSONError(t, f.do(t, as("operator"), http.MethodPost, "/v1/groups/"+tt.group+"/offsets", tt.body), tt.want)
			if !strings.Contains(msg, tt.says) {
				t.Fatalf("error %q does not say %q", msg, tt.says)
			}
		})
	}
	if n := len(f.groups.stored()) - before; n != 0 {
		t.Fatalf("%d refused resets stored", n)
	}
	if n := len(f.auditEntries("audit: group offsets reset", "operator")); n != len(tests) {
		t.Fatalf("%d audit entries, want %d", n, len(tests))
	}
}

func TestDeleteGroup(t *testing.T) {
	f := groupsFixture(t)
	if rec := f.do(t, as("grouper"), http.MethodDelete, "/v1/groups/app-1", ""); rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("delete of a group with members = %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(t, as("operator"), http.MethodDelete, "/v1/groups/billing", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("delete billing = %d %s", rec.Code, rec.Body)
	}
	if len(f.auditEntries("audit: group deleted", "operator")) != 1 {
		t.Fatal("delete not audit-logged")
	}
	assertJSONError(t, f.do(t, as("operator"), http.MethodGet, "/v1/groups/billing", ""), http.StatusNotFound)
}

func TestGroupsOffWithoutCluster(t *testing.T) {
	f := newFixtureWith(t, t.TempDir(), fixtureOptions{noTopics: true})
	for _, path := range []string{"/v1/groups", "/v1/groups/app-1"} {
		if msg := assertJSONError(t, f.do(t, as("operator"), http.MethodGet, path, ""), http.StatusServiceUnavailable); !strings.Contains(msg, "--cluster-addrs") {
			t.Fatalf("%s: %q", path, msg)
		}
	}
}
