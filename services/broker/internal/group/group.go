// Package group is consumer groups on the broker: each group's membership
// and incremental assignment (Group), the assignors, and the coordinator
// that keeps groups and their committed offsets in the internal topic
// __consumer_offsets, for the partitions of that topic this broker leads.
//
// Assignment follows KIP-848 (Kafka's next-generation rebalance
// protocol), computed by the coordinator: a change of membership or of
// subscribed partitions bumps the group epoch and computes a target
// assignment; each member is then moved towards its target in steps that
// never give a partition to two members. A member first gives up what it
// must (its assignment shrinks; it stops consuming those partitions,
// commits and acknowledges), and only then do those partitions go to
// their new owners. Partitions a member keeps are never interrupted.
package group

import (
	"errors"
	"fmt"
	"slices"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Errors of the membership and commit checks.
var (
	// ErrUnknownMember: a member id the group does not know (it left, its
	// session expired, or a static member with its instance id replaced
	// it): a zombie. FAILED_PRECONDITION.
	ErrUnknownMember = errors.New("group: unknown member (it left or was fenced); rejoin")
	// ErrStaleEpoch: a member epoch older than the member's current one.
	ErrStaleEpoch = errors.New("group: stale member epoch")
	// ErrNotOwned: a commit for a partition the member does not own.
	ErrNotOwned = errors.New("group: partition not owned by this member in its current epoch")
	// ErrHasMembers: an operation that needs a group without members.
	ErrHasMembers = errors.New("group: the group has active members")
)

// Offset is one committed offset.
type Offset struct {
	Offset       int64
	Metadata     string
	CommitTimeMs int64
}

// Member is one member of a group.
type Member struct {
	ID         string
	InstanceID string
	ClientID   string
	Identity   string
	Topics     []string
	// SessionTimeout is how long the member may go without an Ack (and a
	// static member may be away) before it is removed.
	SessionTimeout time.Duration

	// Epoch is the group epoch whose target the member has reached or is
	// being moved to; it advances only once the member holds nothing
	// outside its target.
	Epoch int64
	// Assigned is what the member was last told it may own; Pending what
	// it will get once other members give it up.
	Assigned Set
	Pending  Set
	// Owned is what the member last said it owns (its Acks).
	Owned Set
	// Revoking is what the member was told to give up and has not yet
	// confirmed giving up by an Ack of that assignment: still its own,
	// since it may be consuming them until it applies the assignment.
	Revoking Set
	// Sent numbers the assignments built for the member's session.
	Sent uint64
	// prevEpoch is the epoch before the last advance: commits made just
	// before the member heard of the advance are still its own.
	prevEpoch int64
	// Connected is false for a static member whose session ended and
	// that may still come back within its session timeout.
	Connected bool
	// changed is set when Assigned, Pending or Epoch changed and the
	// member has not been sent them yet.
	changed bool
}

// held is every partition the member may be consuming: what it was told
// it may own, what it says it owns, and what it was told to give up but
// has not confirmed.
func (m *Member) held() Set {
	s := m.Assigned.clone()
	for tp := range m.Owned {
		s[tp] = struct{}{}
	}
	for tp := range m.Revoking {
		s[tp] = struct{}{}
	}
	return s
}

// Group is one consumer group. It is not safe for concurrent use: the
// coordinator serialises every call.
type Group struct {
	Name     string
	Epoch    int64
	Assignor stratav1.Assignor
	Offsets  map[TP]Offset

	members map[string]*Member
	target  map[string]Set
	// partitions is each subscribed topic's partition count at the last
	// target computation.
	partitions map[string]int32
}

// New returns an empty group at epoch.
func New(name string, epoch int64) *Group {
	return &Group{Name: name, Epoch: epoch, Offsets: map[TP]Offset{}, members: map[string]*Member{},
		target: map[string]Set{}, partitions: map[string]int32{}}
}

// Members is the members in id order.
func (g *Group) Members() []*Member {
	out := make([]*Member, 0, len(g.members))
	for _, m := range g.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *Member) int { return compareStrings(a.ID, b.ID) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Member is the member with id, or nil.
func (g *Group) Member(id string) *Member { return g.members[id] }

// ByInstance is the static member with instance id, or nil.
func (g *Group) ByInstance(instanceID string) *Member {
	if instanceID == "" {
		return nil
	}
	for _, m := range g.members {
		if m.InstanceID == instanceID {
			return m
		}
	}
	return nil
}

// State is "empty" without members, "stable" when every member holds
// exactly its target at the group epoch, else "reconciling".
func (g *Group) State() string {
	if len(g.members) == 0 {
		return "empty"
	}
	for id, m := range g.members {
		if m.Epoch != g.Epoch || len(m.Pending) > 0 || !m.held().Equal(g.target[id]) {
			return "reconciling"
		}
	}
	return "stable"
}

// Join adds m (its ID set by the caller) and rebalances. A static member
// whose instance id is already in the group takes that member's place:
// the old id is fenced, and the new one inherits its assignment without a
// rebalance when its subscription is the same.
func (g *Group) Join(m *Member, partitions map[string]int32) {
	m.Connected = true
	if m.Assigned == nil {
		m.Assigned = Set{}
	}
	if m.Pending == nil {
		m.Pending = Set{}
	}
	if m.Owned == nil {
		m.Owned = Set{}
	}
	m.Revoking = Set{}
	if old := g.ByInstance(m.InstanceID); old != nil {
		delete(g.members, old.ID)
		m.Epoch, m.prevEpoch = old.Epoch, old.prevEpoch
		// The old process is gone: what it held is the new one's to
		// take back or give up.
		m.Assigned, m.Pending, m.Owned = old.held(), old.Pending, Set{}
		g.target[m.ID] = g.target[old.ID]
		delete(g.target, old.ID)
		g.members[m.ID] = m
		m.changed = true
		if slices.Equal(sortedCopy(old.Topics), sortedCopy(m.Topics)) {
			g.reconcile()
			return
		}
		g.Rebalance(partitions)
		return
	}
	// A member reconnecting after its coordinator moved claims what it
	// still owns; claims another member holds are dropped.
	for tp := range m.Owned {
		for _, o := range g.members {
			if _, taken := o.held()[tp]; taken {
				delete(m.Owned, tp)
				break
			}
		}
	}
	m.Assigned = m.Owned.clone()
	g.members[m.ID] = m
	m.changed = true
	g.Rebalance(partitions)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// Leave removes member id (it left, its session ended or expired) and
// rebalances; its partitions are free at once.
func (g *Group) Leave(id string, partitions map[string]int32) {
	if _, ok := g.members[id]; !ok {
		return
	}
	delete(g.members, id)
	delete(g.target, id)
	g.Rebalance(partitions)
}

// Ack records what member id owns now, having applied the assignment
// numbered seq (epoch is the member epoch it acknowledges, informative). Partitions it was never given are ignored; partitions it
// was told to give up are released only by an Ack of the latest
// assignment (an older Ack may predate the member's taking them). It
// moves the member (and others waiting for what it gave up) towards their
// targets.
func (g *Group) Ack(id string, _ int64, seq uint64, owned Set) error {
	m := g.members[id]
	if m == nil {
		return ErrUnknownMember
	}
	// An Ack from before the member heard of its latest epoch is no
	// error: it can only narrow Owned (what it may hold stays in held()),
	// and revocations are released by seq alone.
	held := m.held()
	m.Owned = Set{}
	for tp := range owned {
		if _, ok := held[tp]; ok {
			m.Owned[tp] = struct{}{}
		}
	}
	if seq >= m.Sent {
		for tp := range m.Revoking {
			if _, still := owned[tp]; !still {
				delete(m.Revoking, tp)
			}
		}
	}
	g.reconcile()
	return nil
}

// Rebalance computes a new target at the next epoch when the members'
// subscriptions or the subscribed topics' partition counts changed since
// the last one (partitions is every topic's partition count; a topic
// missing from it does not exist), then moves members towards it.
func (g *Group) Rebalance(partitions map[string]int32) {
	in := AssignInput{Topics: map[string][]string{}, Partitions: map[string]int32{}, Current: map[string]Set{}}
	for _, m := range g.Members() {
		in.Members = append(in.Members, m.ID)
		in.Topics[m.ID] = m.Topics
		in.Current[m.ID] = m.held()
		for _, t := range m.Topics {
			if n, ok := partitions[t]; ok {
				in.Partitions[t] = n
			}
		}
	}
	// Static members sort by instance id so that a restart does not
	// reorder range and round-robin layouts.
	slices.SortFunc(in.Members, func(a, b string) int {
		return compareStrings(sortKey(g.members[a]), sortKey(g.members[b]))
	})
	target := Assign(g.Assignor, in)
	if g.sameTarget(target) && mapsEqual(g.partitions, in.Partitions) {
		g.reconcile()
		return
	}
	g.Epoch++
	g.target = target
	g.partitions = in.Partitions
	g.reconcile()
}

func sortKey(m *Member) string {
	if m.InstanceID != "" {
		return "0" + m.InstanceID
	}
	return "1" + m.ID
}

func mapsEqual(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (g *Group) sameTarget(t map[string]Set) bool {
	if len(t) != len(g.target) {
		return false
	}
	for id, s := range t {
		if !s.Equal(g.target[id]) {
			return false
		}
	}
	return true
}

// reconcile moves every member one step towards its target: a member
// holding partitions outside its target is told to give them up (its
// assignment shrinks, its epoch stays); a member holding nothing outside
// it gets every target partition no other member holds, the rest pending,
// and advances to the group epoch.
func (g *Group) reconcile() {
	// holders counts, per partition, the members holding it, kept current
	// as members change: one pass over every member's holdings, not one
	// per partition of each member's target.
	members := g.Members()
	holders := map[TP]int{}
	for _, m := range members {
		for tp := range m.held() {
			holders[tp]++
		}
	}
	for _, m := range members {
		held := m.held()
		g.reconcileMember(m, held, func(tp TP) bool {
			n := holders[tp]
			if _, own := held[tp]; own {
				n--
			}
			return n > 0
		})
		for tp := range held {
			holders[tp]--
		}
		for tp := range m.held() {
			holders[tp]++
		}
	}
}

// reconcileMember moves m one step towards its target (see reconcile);
// held is what m holds now, heldByOther whether another member does.
func (g *Group) reconcileMember(m *Member, held Set, heldByOther func(TP) bool) {
	target := g.target[m.ID]
	for tp := range target {
		delete(m.Revoking, tp) // told to give it up, now its own again
	}
	revoking := false
	for tp := range held {
		if _, ok := target[tp]; !ok {
			revoking = true
			break
		}
	}
	assigned, pending := Set{}, Set{}
	for tp := range target {
		if heldByOther(tp) {
			pending[tp] = struct{}{}
			continue
		}
		if _, ok := held[tp]; revoking && !ok {
			pending[tp] = struct{}{}
			continue
		}
		assigned[tp] = struct{}{}
	}
	epoch := m.Epoch
	if !revoking {
		epoch = g.Epoch
	}
	if assigned.Equal(m.Assigned) && pending.Equal(m.Pending) && epoch == m.Epoch {
		return
	}
	if epoch != m.Epoch {
		m.prevEpoch = m.Epoch
	}
	for tp := range m.Assigned {
		if _, kept := assigned[tp]; !kept {
			m.Revoking[tp] = struct{}{}
		}
	}
	m.Assigned, m.Pending, m.Epoch, m.changed = assigned, pending, epoch, true
}

// TakeChanged returns the members whose assignment changed since the last
// call, so that the caller sends them their new Assignment.
func (g *Group) TakeChanged() []*Member {
	var out []*Member
	for _, m := range g.Members() {
		if m.changed {
			m.changed = false
			out = append(out, m)
		}
	}
	return out
}

// CheckCommit refuses a commit by a member that is not in the group, at
// an epoch older than the one before its current one, or for a partition
// it does not hold. An empty member id commits for a group without
// members (a consumer that assigns itself partitions).
func (g *Group) CheckCommit(memberID string, epoch int64, tps []TP) error {
	if memberID == "" {
		if len(g.members) > 0 {
			return fmt.Errorf("%w: a commit without a member id", ErrHasMembers)
		}
		return nil
	}
	m := g.members[memberID]
	if m == nil {
		return ErrUnknownMember
	}
	if epoch < m.prevEpoch || epoch > m.Epoch {
		return fmt.Errorf("%w: %d, member is at %d", ErrStaleEpoch, epoch, m.Epoch)
	}
	held := m.held()
	for _, tp := range tps {
		if _, ok := held[tp]; !ok {
			return fmt.Errorf("%w: %s/%d", ErrNotOwned, tp.Topic, tp.Partition)
		}
	}
	return nil
}

// Target is member id's target assignment at the group epoch.
func (g *Group) Target(id string) Set { return g.target[id] }
