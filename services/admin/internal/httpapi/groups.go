package httpapi

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Groups is the cluster's consumer groups as admin reaches them, under its
// own identity (*cluster.Client): each call but ListGroups finds the
// group's coordinator itself.
type Groups interface {
	// ListGroups merges every node's groups; unreached names the nodes
	// that did not answer.
	ListGroups(ctx context.Context) (groups []*stratav1.GroupSummary, unreached []string, err error)
	DescribeGroup(ctx context.Context, group string) (*stratav1.DescribeGroupResponse, error)
	FetchOffsets(ctx context.Context, group string, topics ...string) ([]*stratav1.PartitionOffset, error)
	DeleteGroup(ctx context.Context, group string) error
	ResetOffsets(ctx context.Context, req *stratav1.ResetOffsetsRequest) error
	// OffsetForTime is the first offset of a partition whose record is at
	// or after t, or its high watermark.
	OffsetForTime(ctx context.Context, topic string, partition int32, t time.Time) (int64, error)
}

// groupsResource serves consumer groups. Authorization happens here first,
// by the caller's identity, on group objects (acl.GroupObject): listing
// needs describe on cluster and shows only the groups the caller may
// describe; describe, delete and reset need describe, delete and alter on
// the group (checked by the guard). The cluster then authorizes admin
// itself. Partition offsets (log end, for lag; log start and high
// watermark, for a reset) come from each partition's leader, as the topic
// routes' do.
type groupsResource struct {
	groups Groups                // nil without --cluster-addrs
	topics stratav1.TopicsClient // partition offsets
	authz  Authorizer
	lg     *zap.Logger
}

// Routes serves /groups.
func (gr *groupsResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/", gr.list)
	r.Get("/{name}", gr.describe)
	r.Delete("/{name}", gr.delete)
	r.Post("/{name}/offsets", gr.reset)
	return r
}

func (gr *groupsResource) rules(prefix string) map[string]Rule {
	onGroup := func(action string) Rule {
		return Rule{Action: action, ObjectParam: "name", ObjectPrefix: acl.GroupPrefix}
	}
	return map[string]Rule{
		routeKey(http.MethodGet, prefix+"/"):                ruleCluster(acl.ActionDescribe),
		routeKey(http.MethodGet, prefix+"/{name}"):          onGroup(acl.ActionDescribe),
		routeKey(http.MethodDelete, prefix+"/{name}"):       onGroup(acl.ActionDelete),
		routeKey(http.MethodPost, prefix+"/{name}/offsets"): onGroup(acl.ActionAlter),
	}
}

// ErrGroupsOff answers every group route (503) when admin has no cluster
// to ask (no --cluster-addrs).
var ErrGroupsOff = errorf(http.StatusServiceUnavailable, "consumer groups are off: admin runs without --cluster-addrs")

// clusterErr is a cluster call's error as the caller sees it: an
// *apiError with the HTTP status of its gRPC code.
func clusterErr(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return err
	}
	code, msg := grpcToHTTP(err)
	return errorf(code, "%s", msg)
}

// listFor answers the groups identity id may describe.
func (gr *groupsResource) listFor(ctx context.Context, id string) (adminapi.GroupList, error) {
	if gr.groups == nil {
		return adminapi.GroupList{}, ErrGroupsOff
	}
	groups, unreached, err := gr.groups.ListGroups(ctx)
	if err != nil {
		return adminapi.GroupList{}, clusterErr(err)
	}
	out := adminapi.GroupList{Groups: []adminapi.GroupSummary{}, Unreached: unreached}
	for _, g := range groups {
		if ok, err := gr.authz.Allowed(id, acl.GroupObject(g.GetGroup()), acl.ActionDescribe); err != nil || !ok {
			continue
		}
		out.Groups = append(out.Groups, adminapi.GroupSummary{Group: g.GetGroup(), State: g.GetState(),
			Members: g.GetMembers(), CoordinatorID: g.GetCoordinatorId()})
	}
	return out, nil
}

// describeGroup answers a group with the log end and lag of every
// partition it committed or is assigned. The caller is authorized.
func (gr *groupsResource) describeGroup(ctx context.Context, name string) (adminapi.Group, error) {
	if gr.groups == nil {
		return adminapi.Group{}, ErrGroupsOff
	}
	resp, err := gr.groups.DescribeGroup(ctx, name)
	if err != nil {
		return adminapi.Group{}, clusterErr(err)
	}
	g := adminapi.Group{Group: resp.GetGroup(), State: resp.GetState(), GroupEpoch: resp.GetGroupEpoch(),
		Assignor: assignorName(resp.GetAssignor()), CoordinatorID: resp.GetCoordinatorId(),
		Members: []adminapi.GroupMember{}, Partitions: []adminapi.GroupPartition{}}
	type key struct {
		topic     string
		partition int32
	}
	rows := map[key]*adminapi.GroupPartition{}
	row := func(topic string, partition int32) *adminapi.GroupPartition {
		k := key{topic, partition}
		if rows[k] == nil {
			rows[k] = &adminapi.GroupPartition{Topic: topic, Partition: partition, CommittedOffset: -1,
				LogStartOffset: -1, LogEndOffset: -1, HighWatermark: -1, Lag: -1}
		}
		return rows[k]
	}
	members := slices.Clone(resp.GetMembers())
	slices.SortFunc(members, func(a, b *stratav1.GroupMember) int { return strings.Compare(a.GetMemberId(), b.GetMemberId()) })
	for _, m := range members {
		g.Members = append(g.Members, adminapi.GroupMember{MemberID: m.GetMemberId(), InstanceID: m.GetInstanceId(),
			ClientID: m.GetClientId(), Identity: m.GetIdentity(), MemberEpoch: m.GetMemberEpoch(),
			Topics: nonNil(m.GetTopics()), Assigned: topicPartitions(m.GetAssigned()), Pending: topicPartitions(m.GetPending())})
		for _, tp := range m.GetAssigned() {
			for _, p := range tp.GetPartitions() {
				row(tp.GetTopic(), p).MemberID = m.GetMemberId()
			}
		}
	}
	for _, o := range resp.GetOffsets() {
		r := row(o.GetTopic(), o.GetPartition())
		r.CommittedOffset, r.Metadata = o.GetOffset(), o.GetMetadata()
		if ms := o.GetCommitTimeMs(); ms > 0 {
			at := time.UnixMilli(ms).UTC()
			r.CommitTime = &at
		}
	}
	var topics []string
	for k := range rows {
		if !slices.Contains(topics, k.topic) {
			topics = append(topics, k.topic)
		}
	}
	slices.Sort(topics)
	for _, topic := range topics {
		// A deleted topic or a leader that does not answer leaves the
		// offsets unknown (-1); the rest of the group is still shown.
		d, err := gr.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: topic})
		if err != nil {
			gr.lg.Info("group partition offsets unknown", zap.String("group", name), zap.String("topic", topic), zap.Error(err))
			continue
		}
		for _, p := range d.GetTopic().GetPartitions() {
			if r := rows[key{topic, p.GetPartition()}]; r != nil {
				r.LogStartOffset, r.LogEndOffset, r.HighWatermark = p.GetLogStartOffset(), p.GetLogEndOffset(), p.GetHighWatermark()
			}
		}
	}
	for _, r := range rows {
		if r.CommittedOffset >= 0 && r.HighWatermark >= 0 {
			r.Lag = max(0, r.HighWatermark-r.CommittedOffset)
			g.Lag += r.Lag
		}
		g.Partitions = append(g.Partitions, *r)
	}
	slices.SortFunc(g.Partitions, func(a, b adminapi.GroupPartition) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	return g, nil
}

// assignorName is the assignor as Kafka names it.
func assignorName(a stratav1.Assignor) string {
	switch a {
	case stratav1.Assignor_ASSIGNOR_RANGE:
		return "range"
	case stratav1.Assignor_ASSIGNOR_ROUND_ROBIN:
		return "round-robin"
	default: // unspecified means cooperative sticky
		return "cooperative-sticky"
	}
}

func topicPartitions(in []*stratav1.TopicPartitions) []adminapi.TopicPartitions {
	out := []adminapi.TopicPartitions{}
	for _, tp := range in {
		out = append(out, adminapi.TopicPartitions{Topic: tp.GetTopic(), Partitions: nonNil(tp.GetPartitions())})
	}
	return out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// resetGroup resolves a reset against the partitions' leaders and, unless
// it is a dry run, stores it for identity id. The caller is authorized.
func (gr *groupsResource) resetGroup(ctx context.Context, id, name string, req adminapi.ResetOffsetsRequest) (adminapi.ResetOffsetsResult, error) {
	if gr.groups == nil {
		return adminapi.ResetOffsetsResult{}, ErrGroupsOff
	}
	if err := checkReset(req); err != nil {
		return adminapi.ResetOffsetsResult{}, err
	}
	d, err := gr.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: req.Topic})
	if err != nil {
		return adminapi.ResetOffsetsResult{}, clusterErr(err)
	}
	parts := map[int32]*stratav1.PartitionMetadata{}
	for _, p := range d.GetTopic().GetPartitions() {
		parts[p.GetPartition()] = p
	}
	want := slices.Clone(req.Partitions)
	if len(want) == 0 {
		for p := range parts {
			want = append(want, p)
		}
	}
	if len(want) == 0 {
		return adminapi.ResetOffsetsResult{}, errorf(http.StatusBadRequest, "topic %s has no partitions", req.Topic)
	}
	slices.Sort(want)
	committed, err := gr.groups.FetchOffsets(ctx, name, req.Topic)
	if err != nil {
		return adminapi.ResetOffsetsResult{}, clusterErr(err)
	}
	previous := map[int32]int64{}
	for _, o := range committed {
		previous[o.GetPartition()] = o.GetOffset()
	}
	res := adminapi.ResetOffsetsResult{Group: name, DryRun: req.DryRun, Offsets: []adminapi.PartitionReset{}}
	store := &stratav1.ResetOffsetsRequest{Group: name, Force: req.Force}
	for _, n := range want {
		p, ok := parts[n]
		if !ok {
			return res, errorf(http.StatusBadRequest, "topic %s has no partition %d", req.Topic, n)
		}
		start, hw := p.GetLogStartOffset(), p.GetHighWatermark()
		if start < 0 || hw < 0 {
			return res, errorf(http.StatusServiceUnavailable, "offsets of %s/%d are unknown: its leader did not answer admin", req.Topic, n)
		}
		prev, had := previous[n]
		if !had {
			prev = -1
		}
		var to int64
		switch {
		case req.ToEarliest:
			to = start
		case req.ToLatest:
			to = hw
		case req.ToOffset != nil:
			to = *req.ToOffset
		case req.ShiftBy != nil:
			if !had {
				return res, errorf(http.StatusBadRequest, "%s/%d has no committed offset to shift", req.Topic, n)
			}
			to = prev + *req.ShiftBy
		case req.ToTime != nil:
			if to, err = gr.groups.OffsetForTime(ctx, req.Topic, n, *req.ToTime); err != nil {
				return res, clusterErr(err)
			}
		}
		to = min(max(to, start), hw)
		res.Offsets = append(res.Offsets, adminapi.PartitionReset{Topic: req.Topic, Partition: n, Previous: prev, Offset: to})
		store.Offsets = append(store.Offsets, &stratav1.PartitionOffset{Topic: req.Topic, Partition: n, Offset: to})
	}
	if req.DryRun {
		return res, nil
	}
	if err := gr.groups.ResetOffsets(ctx, store); err != nil {
		return res, clusterErr(err)
	}
	gr.lg.Info("audit: group offsets reset", zap.String("identity", id), zap.String("group", name),
		zap.String("topic", req.Topic), zap.Int("partitions", len(store.Offsets)), zap.Bool("force", req.Force))
	return res, nil
}

// checkReset refuses a reset body that does not name a topic and exactly
// one target.
func checkReset(req adminapi.ResetOffsetsRequest) error {
	if req.Topic == "" {
		return errorf(http.StatusBadRequest, "topic must be set")
	}
	n := 0
	for _, set := range []bool{req.ToEarliest, req.ToLatest, req.ToOffset != nil, req.ToTime != nil, req.ShiftBy != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errorf(http.StatusBadRequest, "give exactly one of to_earliest, to_latest, to_offset, to_time and shift_by (got %d)", n)
	}
	if req.ToOffset != nil && *req.ToOffset < 0 {
		return errorf(http.StatusBadRequest, "to_offset %d is negative", *req.ToOffset)
	}
	seen := map[int32]bool{}
	for _, p := range req.Partitions {
		if p < 0 || seen[p] {
			return errorf(http.StatusBadRequest, "partitions: %d is negative or given twice", p)
		}
		seen[p] = true
	}
	return nil
}

// callCtx bounds one route's cluster calls.
func callCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), forwardTimeout)
}

func (gr *groupsResource) list(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := callCtx(r)
	defer cancel()
	out, err := gr.listFor(ctx, identityFrom(r.Context()))
	if err != nil {
		gr.fail(w, r, err)
		return
	}
	writeJSON(w, gr.lg, http.StatusOK, out)
}

func (gr *groupsResource) describe(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := callCtx(r)
	defer cancel()
	g, err := gr.describeGroup(ctx, chi.URLParam(r, "name"))
	if err != nil {
		gr.fail(w, r, err)
		return
	}
	writeJSON(w, gr.lg, http.StatusOK, g)
}

func (gr *groupsResource) delete(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	if gr.groups == nil {
		gr.fail(w, r, ErrGroupsOff)
		return
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	if err := gr.groups.DeleteGroup(ctx, name); err != nil {
		gr.fail(w, r, clusterErr(err))
		return
	}
	gr.lg.Info("audit: group deleted", zap.String("identity", identityFrom(r.Context())), zap.String("group", name))
	w.WriteHeader(http.StatusNoContent)
}

func (gr *groupsResource) reset(w http.ResponseWriter, r *http.Request) {
	b, err := readBody(w, r)
	if err != nil {
		writeErr(w, gr.lg, err)
		return
	}
	var req adminapi.ResetOffsetsRequest
	if err := decodeStrict(b, &req, `{"topic": "...", one of "to_earliest": true, "to_latest": true, "to_offset": N, "to_time": "RFC 3339", "shift_by": N; "partitions": [...], "dry_run": true, "force": true}`); err != nil {
		writeErr(w, gr.lg, err)
		return
	}
	ctx, cancel := callCtx(r)
	defer cancel()
	res, err := gr.resetGroup(ctx, identityFrom(r.Context()), chi.URLParam(r, "name"), req)
	if err != nil {
		gr.fail(w, r, err)
		return
	}
	writeJSON(w, gr.lg, http.StatusOK, res)
}

// fail answers err, logging what the cluster failed at.
func (gr *groupsResource) fail(w http.ResponseWriter, r *http.Request, err error) {
	if code, _ := ErrorStatus(err); code >= 500 && !errors.Is(err, ErrGroupsOff) {
		gr.lg.Warn("group call failed", zap.String("route", r.URL.Path), zap.Error(err))
	}
	writeErr(w, gr.lg, err)
}
