package group

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// Session timeouts.
const (
	DefaultSessionTimeout = 10 * time.Second
	MinSessionTimeout     = time.Second
	MaxSessionTimeout     = 5 * time.Minute
)

// SessionStream is the server side of a Session stream.
type SessionStream interface {
	Context() context.Context
	Recv() (*stratav1.SessionRequest, error)
	Send(*stratav1.SessionResponse) error
}

// Authorizer checks the caller of a call: nil when it may do action on
// object (a topic, or "group:<name>").
type Authorizer func(object, action string) error

// BadRequestError is a request the coordinator refuses as invalid.
type BadRequestError struct{ Field, Reason string }

func (e *BadRequestError) Error() string { return fmt.Sprintf("group: %s: %s", e.Field, e.Reason) }

// ErrSessionExpired ends a session that sent nothing for its timeout.
var ErrSessionExpired = errors.New("group: session expired (no ack within the session timeout)")

// ValidateName checks a group name: the rules of topic names.
func ValidateName(name string) error {
	if err := topicconfig.ValidateName(name); err != nil {
		return &BadRequestError{Field: "group", Reason: err.Error()}
	}
	return nil
}

// Session serves one member's session stream until it leaves, its session
// expires, the stream ends, or this broker stops coordinating the group.
func (c *Coordinator) Session(stream SessionStream, identity string, authorize Authorizer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	join := first.GetJoin()
	if join == nil {
		return &BadRequestError{Field: "join", Reason: "a session starts with a join"}
	}
	if err := ValidateName(join.GetGroup()); err != nil {
		return err
	}
	if len(join.GetTopics()) == 0 {
		return &BadRequestError{Field: "topics", Reason: "subscribe to at least one topic"}
	}
	for _, t := range join.GetTopics() {
		if err := topicconfig.ValidateName(t); err != nil {
			return &BadRequestError{Field: "topics", Reason: err.Error()}
		}
		if err := authorize(t, acl.ActionConsume); err != nil {
			return err
		}
	}
	if err := authorize(acl.GroupObject(join.GetGroup()), acl.ActionConsume); err != nil {
		return err
	}
	timeout := DefaultSessionTimeout
	if ms := join.GetSessionTimeoutMs(); ms != 0 {
		timeout = time.Duration(ms) * time.Millisecond
		if timeout < MinSessionTimeout || timeout > MaxSessionTimeout {
			return &BadRequestError{Field: "session_timeout_ms", Reason: fmt.Sprintf("%d, want between %d and %d", ms, MinSessionTimeout.Milliseconds(), MaxSessionTimeout.Milliseconds())}
		}
	}
	s, err := c.shardFor(ctx, join.GetGroup())
	if err != nil {
		return err
	}
	counts, err := c.partitionCounts(ctx, join.GetTopics())
	if err != nil {
		return err
	}

	notify := make(chan struct{}, 1)
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return c.notCoordinator(ctx, join.GetGroup())
	}
	g := s.l.group(join.GetGroup())
	before := g.Epoch
	if len(g.members) == 0 {
		g.Assignor = join.GetAssignor()
	}
	id := join.GetMemberId()
	if id == "" || g.Member(id) != nil {
		id = newMemberID()
	}
	m := &Member{ID: id, InstanceID: join.GetInstanceId(), ClientID: join.GetClientId(), Identity: identity,
		Topics: join.GetTopics(), SessionTimeout: timeout, Owned: toSet(join.GetOwned())}
	if old := g.ByInstance(m.InstanceID); old != nil {
		if t := s.timers[old.ID]; t != nil {
			t.Stop()
			delete(s.timers, old.ID)
		}
		if ch := s.sessions[old.ID]; ch != nil {
			delete(s.sessions, old.ID)
			signal(ch) // the old session finds itself fenced and ends
		}
	}
	g.Join(m, counts)
	s.sessions[id] = notify
	s.notifyLocked(g.TakeChanged())
	var epochRec *stratav1.Record
	if g.Epoch != before {
		epochRec = epochRecordLocked(g)
		c.m.rebalances.WithLabelValues(g.Name).Inc()
	}
	epoch := g.Epoch
	s.mu.Unlock()
	c.lg.Info("member joined", zap.String("group", g.Name), zap.String("member", id), zap.String("instance", m.InstanceID),
		zap.String("identity", identity), zap.Int64("group_epoch", epoch))
	c.persistEpoch(ctx, s, g.Name, epochRec)
	if err := stream.Send(&stratav1.SessionResponse{Kind: &stratav1.SessionResponse_Joined{Joined: &stratav1.Joined{
		MemberId: id, HeartbeatIntervalMs: int32(timeout.Milliseconds() / 4), SessionTimeoutMs: int32(timeout.Milliseconds()),
	}}}); err != nil {
		c.endSession(s, g, id, m.InstanceID != "")
		return err
	}
	return c.serveSession(stream, s, g, id, notify)
}

// serveSession is a joined member's loop.
func (c *Coordinator) serveSession(stream SessionStream, s *shard, g *Group, id string, notify chan struct{}) error {
	ctx := stream.Context()
	msgs := make(chan *stratav1.SessionRequest)
	recvErr := make(chan error, 1)
	done := make(chan struct{})
	defer close(done)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case msgs <- req:
			case <-done:
				return
			}
		}
	}()
	s.mu.Lock()
	m := g.Member(id)
	timeout := m.SessionTimeout
	static := m.InstanceID != ""
	s.mu.Unlock()
	expiry := time.NewTimer(timeout)
	defer expiry.Stop()
	for {
		stateChanged := s.p.StateChanged()
		select {
		case <-notify:
			s.mu.Lock()
			m := g.Member(id)
			stopped := s.stopped
			var a *stratav1.Assignment
			if m != nil {
				m.Sent++
				a = &stratav1.Assignment{MemberEpoch: m.Epoch, GroupEpoch: g.Epoch, Partitions: fromSet(m.Assigned), Pending: fromSet(m.Pending), Seq: m.Sent}
			}
			s.mu.Unlock()
			switch {
			case stopped:
				return c.notCoordinator(ctx, g.Name)
			case m == nil:
				return ErrUnknownMember // fenced: a static member took its place
			}
			if err := stream.Send(&stratav1.SessionResponse{Kind: &stratav1.SessionResponse_Assignment{Assignment: a}}); err != nil {
				c.endSession(s, g, id, static)
				return err
			}
		case req := <-msgs:
			if !expiry.Stop() {
				<-expiry.C
			}
			expiry.Reset(timeout)
			switch {
			case req.GetAck() != nil:
				s.mu.Lock()
				err := g.Ack(id, req.GetAck().GetMemberEpoch(), req.GetAck().GetSeq(), toSet(req.GetAck().GetOwned()))
				s.notifyLocked(g.TakeChanged())
				s.mu.Unlock()
				if err != nil {
					// Fenced (no longer a member): nothing to hold for it.
					c.endSession(s, g, id, false)
					return err
				}
			case req.GetLeave() != nil:
				c.endSession(s, g, id, false)
				return nil
			default:
				return &BadRequestError{Field: "kind", Reason: "after the join, only ack and leave"}
			}
		case err := <-recvErr:
			c.endSession(s, g, id, static)
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return nil
			}
			return nil // the client closed its side: it left
		case <-expiry.C:
			c.lg.Info("member session expired", zap.String("group", g.Name), zap.String("member", id))
			c.endSession(s, g, id, false)
			return ErrSessionExpired
		case <-stateChanged:
			if st := s.p.State(); st.Role != partition.RoleLeader || st.LeaderEpoch != s.epoch {
				return c.notCoordinator(ctx, g.Name)
			}
		case <-c.closed:
			return errStopping
		case <-ctx.Done():
			c.endSession(s, g, id, static)
			return nil
		}
	}
}

// endSession removes a member whose session ended. A static member stays
// (its partitions held for it) until its session timeout passes without
// it coming back.
func (c *Coordinator) endSession(s *shard, g *Group, id string, keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, id)
	m := g.Member(id)
	if m == nil || s.stopped {
		return
	}
	if keep {
		m.Connected = false
		s.timers[id] = time.AfterFunc(m.SessionTimeout, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.stopped || s.timers[id] == nil {
				return
			}
			delete(s.timers, id)
			if m := g.Member(id); m != nil && !m.Connected {
				c.removeLocked(s, g, id)
			}
		})
		return
	}
	c.removeLocked(s, g, id)
}

// removeLocked takes member id out of g and tells the others.
func (c *Coordinator) removeLocked(s *shard, g *Group, id string) {
	before := g.Epoch
	// The partition counts of the last target still hold: a leave only
	// redistributes.
	g.Leave(id, g.partitions)
	s.notifyLocked(g.TakeChanged())
	c.lg.Info("member left", zap.String("group", g.Name), zap.String("member", id), zap.Int64("group_epoch", g.Epoch))
	if g.Epoch != before {
		c.m.rebalances.WithLabelValues(g.Name).Inc()
		c.persistEpochAsync(s, g.Name, epochRecordLocked(g))
	}
}
