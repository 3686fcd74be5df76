package group

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// ErrGroupNotFound answers a describe, delete or reset of a group this
// coordinator has no record of.
var ErrGroupNotFound = errors.New("group: no such group")

// ErrNoPartition: a commit names a partition that does not exist.
var ErrNoPartition = errors.New("group: no such partition")

// OutOfRangeError refuses a commit of an offset the partition does not
// have yet (above its high watermark) or a negative one.
type OutOfRangeError struct {
	TP            TP
	Offset, HW    int64
	NegativeValue bool
}

func (e *OutOfRangeError) Error() string {
	if e.NegativeValue {
		return fmt.Sprintf("group: offset %d for %s/%d is negative", e.Offset, e.TP.Topic, e.TP.Partition)
	}
	return fmt.Sprintf("group: offset %d for %s/%d is above its high watermark %d", e.Offset, e.TP.Topic, e.TP.Partition, e.HW)
}

// Commit stores offsets for a member (or, with no member id, for a group
// without members), once they are in the offsets partition's every
// in-sync replica (acks=ALL). Committing the same offsets again is
// harmless.
func (c *Coordinator) Commit(ctx context.Context, req *stratav1.CommitOffsetsRequest, authorize Authorizer) error {
	if err := ValidateName(req.GetGroup()); err != nil {
		return err
	}
	if len(req.GetOffsets()) == 0 {
		return &BadRequestError{Field: "offsets", Reason: "at least one offset is required"}
	}
	tps := make([]TP, len(req.GetOffsets()))
	seen := map[string]bool{}
	for i, o := range req.GetOffsets() {
		tps[i] = TP{o.GetTopic(), o.GetPartition()}
		if !seen[o.GetTopic()] {
			seen[o.GetTopic()] = true
			if err := authorize(o.GetTopic(), acl.ActionConsume); err != nil {
				return err
			}
		}
	}
	if err := authorize(acl.GroupObject(req.GetGroup()), acl.ActionConsume); err != nil {
		return err
	}
	s, err := c.shardFor(ctx, req.GetGroup())
	if err != nil {
		return err
	}
	s.mu.Lock()
	g := s.l.groups[req.GetGroup()]
	if g != nil {
		err = g.CheckCommit(req.GetMemberId(), req.GetMemberEpoch(), tps)
	} else if req.GetMemberId() != "" {
		err = ErrUnknownMember
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := c.store(ctx, s, req.GetGroup(), req.GetOffsets()); err != nil {
		return err
	}
	c.m.commits.Observe(time.Since(start).Seconds())
	return nil
}

// store checks offsets against their partitions' high watermarks, writes
// them and applies them.
func (c *Coordinator) store(ctx context.Context, s *shard, group string, offsets []*stratav1.PartitionOffset) error {
	now := c.opts.Now().UnixMilli()
	recs := make([]*stratav1.Record, len(offsets))
	vals := make([]Offset, len(offsets))
	for i, o := range offsets {
		tp := TP{o.GetTopic(), o.GetPartition()}
		if o.GetOffset() < 0 {
			return &OutOfRangeError{TP: tp, Offset: o.GetOffset(), NegativeValue: true}
		}
		if err := c.checkHW(ctx, tp, o.GetOffset()); err != nil {
			return err
		}
		vals[i] = Offset{Offset: o.GetOffset(), Metadata: o.GetMetadata(), CommitTimeMs: now}
		rec, err := offsetRecord(group, tp, &vals[i])
		if err != nil {
			return err
		}
		recs[i] = rec
	}
	base, err := c.write(ctx, s, recs)
	if err != nil {
		return fmt.Errorf("group: write offsets: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range offsets {
		s.l.applyOffset(group, TP{o.GetTopic(), o.GetPartition()}, &vals[i], base+int64(i))
	}
	return nil
}

// checkHW refuses an offset above tp's high watermark. A high watermark
// only grows, so one heard before that is at least offset settles it
// without asking the partition's leader again.
func (c *Coordinator) checkHW(ctx context.Context, tp TP, offset int64) error {
	c.mu.Lock()
	known, ok := c.hw[tp]
	c.mu.Unlock()
	if ok && offset <= known {
		return nil
	}
	hw, err := c.cluster.HighWatermark(ctx, tp.Topic, tp.Partition)
	if err != nil {
		return fmt.Errorf("group: high watermark of %s/%d: %w", tp.Topic, tp.Partition, err)
	}
	c.mu.Lock()
	if len(c.hw) >= maxHWCache {
		clear(c.hw)
	}
	c.hw[tp] = max(c.hw[tp], hw)
	c.mu.Unlock()
	if offset > hw {
		return &OutOfRangeError{TP: tp, Offset: offset, HW: hw}
	}
	return nil
}

// maxHWCache bounds the high watermarks remembered.
const maxHWCache = 100_000

// Fetch answers a group's committed offsets (of the topics named, or
// all); an unknown group has none. It needs describe or consume on the
// group.
func (c *Coordinator) Fetch(ctx context.Context, req *stratav1.FetchOffsetsRequest, authorize Authorizer) (*stratav1.FetchOffsetsResponse, error) {
	if err := ValidateName(req.GetGroup()); err != nil {
		return nil, err
	}
	// A member needs its group's offsets to start from: consume on the
	// group is enough, as Kafka's READ implies DESCRIBE.
	if err := authorize(acl.GroupObject(req.GetGroup()), acl.ActionDescribe); err != nil {
		if authorize(acl.GroupObject(req.GetGroup()), acl.ActionConsume) != nil {
			return nil, err
		}
	}
	s, err := c.shardFor(ctx, req.GetGroup())
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, t := range req.GetTopics() {
		want[t] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &stratav1.FetchOffsetsResponse{}
	if g := s.l.groups[req.GetGroup()]; g != nil {
		resp.Offsets = offsetsOf(g, want)
	}
	return resp, nil
}

func offsetsOf(g *Group, want map[string]bool) []*stratav1.PartitionOffset {
	var out []*stratav1.PartitionOffset
	tps := make(Set, len(g.Offsets))
	for tp := range g.Offsets {
		tps[tp] = struct{}{}
	}
	for _, tp := range tps.Sorted() {
		if len(want) > 0 && !want[tp.Topic] {
			continue
		}
		o := g.Offsets[tp]
		out = append(out, &stratav1.PartitionOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o.Offset, Metadata: o.Metadata, CommitTimeMs: o.CommitTimeMs})
	}
	return out
}

// List answers the groups this broker coordinates, for those the caller
// may describe.
func (c *Coordinator) List(nodeID int32, allowed func(group string) bool) []*stratav1.GroupSummary {
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		shards = append(shards, s)
	}
	c.mu.Unlock()
	var out []*stratav1.GroupSummary
	for _, s := range shards {
		s.mu.Lock()
		if s.l != nil && !s.stopped && s.p.State().Role == partition.RoleLeader && s.p.State().LeaderEpoch == s.epoch {
			for name, g := range s.l.groups {
				if allowed(name) {
					out = append(out, &stratav1.GroupSummary{Group: name, State: g.State(), Members: int32(len(g.members)), CoordinatorId: nodeID})
				}
			}
		}
		s.mu.Unlock()
	}
	return out
}

// Describe answers a group's members, assignment and offsets.
func (c *Coordinator) Describe(ctx context.Context, name string, nodeID int32, authorize Authorizer) (*stratav1.DescribeGroupResponse, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := authorize(acl.GroupObject(name), acl.ActionDescribe); err != nil {
		return nil, err
	}
	s, err := c.shardFor(ctx, name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.l.groups[name]
	if g == nil {
		return nil, fmt.Errorf("%w: %q", ErrGroupNotFound, name)
	}
	resp := &stratav1.DescribeGroupResponse{Group: name, State: g.State(), GroupEpoch: g.Epoch, Assignor: g.Assignor,
		Offsets: offsetsOf(g, nil), CoordinatorId: nodeID}
	for _, m := range g.Members() {
		resp.Members = append(resp.Members, &stratav1.GroupMember{MemberId: m.ID, InstanceId: m.InstanceID, ClientId: m.ClientID,
			Identity: m.Identity, MemberEpoch: m.Epoch, Assigned: fromSet(m.Assigned), Pending: fromSet(m.Pending), Topics: m.Topics})
	}
	return resp, nil
}

// Delete removes a group without members and its committed offsets.
func (c *Coordinator) Delete(ctx context.Context, name string, authorize Authorizer) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := authorize(acl.GroupObject(name), acl.ActionDelete); err != nil {
		return err
	}
	s, err := c.shardFor(ctx, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	g := s.l.groups[name]
	var recs []*stratav1.Record
	switch {
	case g == nil:
		err = fmt.Errorf("%w: %q", ErrGroupNotFound, name)
	case len(g.members) > 0:
		err = fmt.Errorf("%w: %d members; stop them first", ErrHasMembers, len(g.members))
	default:
		for tp := range g.Offsets {
			r, rerr := offsetRecord(name, tp, nil)
			if rerr != nil {
				err = rerr
				break
			}
			recs = append(recs, r)
		}
		if r, rerr := groupRecord(g, true); rerr == nil {
			recs = append(recs, r)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := s.p.Produce(ctx, recs, stratav1.Acks_ACKS_ALL); err != nil {
		return fmt.Errorf("group: delete %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.l.groups[name]; g != nil && len(g.members) == 0 {
		delete(s.l.groups, name)
		delete(s.l.from, name)
		c.m.rebalances.DeleteLabelValues(name)
	}
	return nil
}

// Reset stores offsets for a group without live members (any group with
// force: its members then restart from the new offsets only after their
// next rebalance or restart, since they hold their positions).
func (c *Coordinator) Reset(ctx context.Context, req *stratav1.ResetOffsetsRequest, authorize Authorizer) error {
	if err := ValidateName(req.GetGroup()); err != nil {
		return err
	}
	if len(req.GetOffsets()) == 0 {
		return &BadRequestError{Field: "offsets", Reason: "at least one offset is required"}
	}
	if err := authorize(acl.GroupObject(req.GetGroup()), acl.ActionAlter); err != nil {
		return err
	}
	s, err := c.shardFor(ctx, req.GetGroup())
	if err != nil {
		return err
	}
	s.mu.Lock()
	g := s.l.group(req.GetGroup())
	n := len(g.members)
	s.mu.Unlock()
	if n > 0 && !req.GetForce() {
		return fmt.Errorf("%w: %d members; stop them or force", ErrHasMembers, n)
	}
	return c.store(ctx, s, req.GetGroup(), req.GetOffsets())
}
