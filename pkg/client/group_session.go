package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
)

// errSessionEnded is a session stream the coordinator ended without an
// error status (it stopped coordinating the group, or is shutting down).
var errSessionEnded = errors.New("client: group session ended by the coordinator")

// runSession keeps the member in its group: it joins the coordinator,
// heartbeats, hands assignments to Poll, and joins again after the
// stream fails (the coordinator moved, a broker restarted, the session
// expired), claiming the partitions the member still owns. It returns
// when the consumer closes or fails.
func (gc *GroupConsumer) runSession() {
	hint := ""
	for attempt := 0; ; attempt++ {
		joined, err := gc.session(hint)
		select {
		case <-gc.leave:
			return
		default:
		}
		if gc.ctx.Err() != nil {
			return
		}
		if joined {
			attempt = 0
		}
		hint = ""
		var nc *NotCoordinatorError
		switch {
		case errors.As(err, &nc):
			if nc.CoordinatorID >= 0 && nc.CoordinatorAddress != "" {
				hint = nc.CoordinatorAddress
			}
		case gc.fatal(err) != nil:
			gc.lg.Warn("group membership failed", zap.Error(err))
			gc.fail(gc.fatal(err))
			return
		}
		gc.lg.Debug("group session ended; joining again", zap.String("coordinator", hint), zap.Error(err))
		if hint != "" && attempt == 0 {
			continue // the coordinator moved: follow it at once
		}
		t := time.NewTimer(retryDelay(attempt, gc.o.RetryBackoff, gc.o.RetryBackoffMax))
		select {
		case <-t.C:
		case <-gc.leave:
			t.Stop()
			return
		case <-gc.ctx.Done():
			t.Stop()
			return
		}
	}
}

// fatal returns the error the consumer ends with when err (a session's
// end) is one joining again cannot cure, else nil: the caller may not
// consume the topics or the group, the request is invalid, or a static
// member was replaced by another with its instance id.
func (gc *GroupConsumer) fatal(err error) error {
	switch Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated, codes.InvalidArgument:
		return fmt.Errorf("client: group %q: %w", gc.o.Group, err)
	case codes.FailedPrecondition:
		var nc *NotCoordinatorError
		if gc.o.InstanceID != "" && !errors.As(err, &nc) {
			return fmt.Errorf("%w (group %q, instance %q): %w", ErrFenced, gc.o.Group, gc.o.InstanceID, err)
		}
	}
	return nil
}

// session runs one Session stream: join, then heartbeats and Acks until
// the stream ends or the member leaves. joined reports whether the
// coordinator accepted the join.
func (gc *GroupConsumer) session(addr string) (joined bool, err error) {
	if addr == "" {
		fc, err := gc.c.FindCoordinator(gc.joinCtx, gc.o.Group)
		if err != nil {
			return false, err
		}
		addr = fc.GetCoordinatorAddress()
	}
	cc, err := gc.c.conn(addr)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithCancel(gc.ctx)
	defer cancel()
	st, err := stratav1.NewGroupsClient(cc).Session(ctx)
	if err != nil {
		return false, fromStatus(err)
	}
	gc.mu.Lock()
	join := &stratav1.Join{Group: gc.o.Group, Topics: gc.o.Topics, InstanceId: gc.o.InstanceID, ClientId: gc.o.ClientID,
		Assignor: gc.o.Assignor.proto(), SessionTimeoutMs: int32(gc.o.SessionTimeout.Milliseconds()),
		MemberId: gc.memberID, MemberEpoch: gc.epoch, Owned: toTopicPartitions(gc.ownedLocked())}
	gc.mu.Unlock()
	if err := st.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Join{Join: join}}); err != nil {
		// Send reports only that the stream broke; Recv has the status.
		_, err = st.Recv()
		return false, streamErr(err)
	}
	resp, err := st.Recv()
	if err != nil {
		return false, streamErr(err)
	}
	j := resp.GetJoined()
	if j == nil {
		return false, fmt.Errorf("client: group %q: the coordinator answered a join with %T", gc.o.Group, resp.GetKind())
	}
	gc.mu.Lock()
	gc.memberID = j.GetMemberId()
	gc.gen++
	gen := gc.gen
	gc.next = nil // an assignment of an earlier session no longer holds
	gc.coord = addr
	gc.mu.Unlock()
	gc.lg.Debug("joined group", zap.String("member", j.GetMemberId()), zap.String("coordinator", addr))

	recvErr := make(chan error, 1)
	recvDone := make(chan struct{})
	go func() { // owned here: cancel ends its Recv, and the defer waits
		defer close(recvDone)
		for {
			resp, err := st.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if a := resp.GetAssignment(); a != nil {
				gc.offer(gen, a)
			}
		}
	}()
	defer func() {
		cancel()
		<-recvDone
	}()
	interval := time.Duration(j.GetHeartbeatIntervalMs()) * time.Millisecond
	if interval <= 0 {
		interval = gc.o.SessionTimeout / 4
	}
	hb := time.NewTicker(interval)
	defer hb.Stop()
	for {
		select {
		case <-hb.C:
		case <-gc.ackNow:
		case err := <-recvErr:
			return true, streamErr(err)
		case <-gc.leave:
			gc.endSession(st, recvErr)
			return true, nil
		case <-gc.ctx.Done():
			return true, gc.ctx.Err()
		}
		if err := st.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Ack{Ack: gc.ack(gen)}}); err != nil {
			return true, streamErr(<-recvErr)
		}
	}
}

// endSession ends the stream for Close: a dynamic member says it leaves
// (its partitions move at once); a static member only closes its side, so
// the coordinator keeps its partitions for a restart. It waits for the
// coordinator to end the stream (or the consumer's context).
func (gc *GroupConsumer) endSession(st interface {
	Send(*stratav1.SessionRequest) error
	CloseSend() error
}, recvErr <-chan error) {
	if gc.o.InstanceID == "" {
		if err := st.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Leave{Leave: &stratav1.Leave{}}}); err != nil {
			return // the stream is gone already: so is the member
		}
	}
	if err := st.CloseSend(); err != nil {
		return
	}
	select {
	case <-recvErr:
	case <-gc.ctx.Done():
	}
}

// ack is the member's Ack now: the partitions it owns after the last
// assignment it applied in session gen (0 when none yet).
func (gc *GroupConsumer) ack(gen uint64) *stratav1.Ack {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	a := &stratav1.Ack{MemberEpoch: gc.epoch, Owned: toTopicPartitions(gc.ownedLocked())}
	if gc.appliedGen == gen {
		a.Seq = gc.appliedSeq
	}
	return a
}

// offer hands an assignment of session gen to Poll; a newer one replaces
// one not yet applied.
func (gc *GroupConsumer) offer(gen uint64, a *stratav1.Assignment) {
	parts := map[TopicPartition]bool{}
	for _, t := range a.GetPartitions() {
		for _, p := range t.GetPartitions() {
			parts[TopicPartition{t.GetTopic(), p}] = true
		}
	}
	gc.mu.Lock()
	if gen != gc.gen {
		gc.mu.Unlock()
		return
	}
	gc.epoch = a.GetMemberEpoch()
	gc.next = &pendingAssignment{gen: gen, seq: a.GetSeq(), parts: parts}
	gc.mu.Unlock()
	gc.lg.Debug("assignment received", zap.Int64("member_epoch", a.GetMemberEpoch()), zap.Int64("group_epoch", a.GetGroupEpoch()),
		zap.Uint64("seq", a.GetSeq()), zap.Int("partitions", len(parts)))
	signal(gc.wake)
}

// streamErr converts a Session stream's end into the package's errors.
func streamErr(err error) error {
	if errors.Is(err, io.EOF) {
		return errSessionEnded
	}
	return fromStatus(err)
}

func toTopicPartitions(tps []TopicPartition) []*stratav1.TopicPartitions {
	var out []*stratav1.TopicPartitions
	for _, tp := range tps { // sorted by topic
		if n := len(out); n > 0 && out[n-1].GetTopic() == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.Partition)
			continue
		}
		out = append(out, &stratav1.TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}
