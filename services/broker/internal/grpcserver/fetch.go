package grpcserver

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

const (
	// fetchWindow is how many responses a leader sends ahead of the
	// follower's acknowledgements: enough to keep the link busy while the
	// follower appends, bounded so a slow follower holds little memory.
	fetchWindow = 8
	// defaultFetchBytes is the frames per response when the follower does
	// not say; maxFetchBytes caps what it may ask.
	defaultFetchBytes = 1 << 20
	maxFetchBytes     = 8 << 20
	// fetchHeartbeat is the longest an idle Fetch stream stays silent: the
	// follower learns the HW and answers with its position, which keeps it
	// in the ISR while there is nothing to copy.
	fetchHeartbeat = 500 * time.Millisecond
)

// replicaFetchService is strata.v1.ReplicaFetch: a leader's Fetch streams
// to its followers' replicators, and OffsetForLeaderEpoch.
type replicaFetchService struct {
	stratav1.UnimplementedReplicaFetchServer
	*replicaBase
}

// Fetch streams one partition from this leader to one follower (see
// replica_fetch.proto): frames ahead of the follower's acknowledgements, at most
// fetchWindow unacknowledged responses, heartbeats when idle. Every later
// request is the follower's position, from which the HW advances. The
// stream ends with FailedPrecondition when this broker stops leading in
// the follower's epoch.
func (s *replicaFetchService) Fetch(stream grpc.BidiStreamingServer[stratav1.FetchRequest, stratav1.FetchResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	p, err := s.cat.Partition(first.GetTopic(), first.GetPartition())
	if err != nil {
		return toStatus(err)
	}
	id, epoch := first.GetReplicaId(), first.GetLeaderEpoch()
	if err := s.fromReplicator(ctx, id); err != nil {
		return err
	}
	maxBytes := int(first.GetMaxBytes())
	switch {
	case maxBytes < 0:
		return badRequest("max_bytes", "must be >= 0, got "+strconv.Itoa(maxBytes))
	case maxBytes == 0:
		maxBytes = defaultFetchBytes
	}
	maxBytes = min(maxBytes, maxFetchBytes, s.maxSendBytes-responseHeadroomBytes)
	cur, err := p.NewReplicaCursor(first.GetFetchOffset())
	if err != nil {
		return toStatus(err)
	}
	defer cur.Close() // read-only reader: its close has nothing to lose
	if err := p.FollowerFetched(id, epoch, first.GetFetchOffset()); err != nil {
		return toStatus(err)
	}

	// The receiver turns each position report into the HW and a credit.
	credits := make(chan struct{}, fetchWindow)
	for range fetchWindow {
		credits <- struct{}{}
	}
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			switch {
			case err != nil:
			case s.tr != nil && req.GetTraceParent() != "":
				err = s.tr.followerFetched(p, id, epoch, req.GetFetchOffset(), req.GetTraceParent())
			default:
				err = p.FollowerFetched(id, epoch, req.GetFetchOffset())
			}
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case credits <- struct{}{}:
			default: // more reports than responses: ignore the extra credit
			}
		}
	}()

	hb := time.NewTimer(fetchHeartbeat)
	defer hb.Stop()
	for {
		select {
		case <-credits:
		case err := <-recvErr:
			return fetchEnd(err)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "broker shutting down")
		}
		msg, frameBytes, read, err := s.nextFetchResponse(ctx, p, cur, epoch, maxBytes, hb, recvErr)
		if err != nil {
			return err
		}
		if err := stream.SendMsg(msg); err != nil {
			return err
		}
		if frameBytes > 0 { // heartbeats are not batches
			s.timer.ReadBatch("fetch", time.Since(read))
		}
		s.rec.Fetched(first.GetTopic(), frameBytes)
		hb.Reset(fetchHeartbeat) // Go 1.23+ timers: Reset drops a pending tick
	}
}

// nextFetchResponse waits for frames past the cursor (or the heartbeat)
// and returns the FetchResponse in wire format with the frames' size and
// when the read that found them began. The
// frames are read once, into the message: marshaling a FetchResponse
// would copy them again.
func (s *replicaFetchService) nextFetchResponse(ctx context.Context, p *partition.Partition, cur *partition.Cursor, epoch int32,
	maxBytes int, hb *time.Timer, recvErr <-chan error) (*encodedMessage, int, time.Time, error) {
	buf := make([]byte, fetchHeadroom)
	for {
		// Capture the notifications before looking, so no change between
		// the look and the wait is missed.
		logChanged, stateChanged := p.LogChanged(), p.StateChanged()
		if st := p.State(); st.Role != partition.RoleLeader || st.LeaderEpoch != epoch {
			return nil, 0, time.Time{}, toStatus(p.NotLeader())
		}
		read := time.Now()
		base := cur.Next()
		out, recEpoch, n, err := cur.ReadFrames(buf[:fetchHeadroom], maxBytes)
		if err != nil {
			return nil, 0, time.Time{}, toStatus(err)
		}
		// n counts offsets the cursor moved over, which in a compacted
		// log may be removed ones only: answer only with frames, or the
		// follower would be answered at once, again and again.
		if n > 0 && len(out) > fetchHeadroom {
			msg := s.fetchResponse(p, epoch, out, recEpoch, base, s.tr.traceParent(p, base, cur.Next()))
			return msg, len(out) - fetchHeadroom, read, nil
		}
		select {
		case <-logChanged:
		case <-stateChanged:
		case <-hb.C:
			return s.fetchResponse(p, epoch, buf[:fetchHeadroom], epoch, cur.Next(), ""), 0, time.Now(), nil
		case err := <-recvErr:
			return nil, 0, time.Time{}, fetchEnd(err)
		case <-ctx.Done():
			return nil, 0, time.Time{}, status.FromContextError(ctx.Err()).Err()
		case <-s.shutdown:
			return nil, 0, time.Time{}, status.Error(codes.Unavailable, "broker shutting down")
		}
	}
}

// fetchResponse makes the message from buf: fetchHeadroom bytes of room,
// then the frames (a fresh copy out of the log, owned by the message).
// traceParent is the traced batch's span among the frames, or "".
func (s *replicaFetchService) fetchResponse(p *partition.Partition, epoch int32, buf []byte, recEpoch int32, base int64, traceParent string) *encodedMessage {
	return &encodedMessage{b: fetchResponseBytes(buf, fetchFields{
		leaderEpoch: epoch, highWatermark: p.HighWatermark(), logStartOffset: p.LogStartOffset(),
		logEndOffset: p.LogEndOffset(), recordsEpoch: recEpoch, baseOffset: base, traceParent: traceParent,
	})}
}

// fetchEnd turns the receiver's error into the stream's status: the
// follower closing its side ends the stream cleanly.
func fetchEnd(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return status.Error(codes.Canceled, err.Error())
	}
	return toStatus(err)
}

// OffsetForLeaderEpoch answers where an epoch ends here (KIP-101/279).
func (s *replicaFetchService) OffsetForLeaderEpoch(ctx context.Context, req *stratav1.OffsetForLeaderEpochRequest) (*stratav1.OffsetForLeaderEpochResponse, error) {
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	e, end, err := p.EndOffsetForEpoch(req.GetLeaderEpoch(), req.GetCurrentLeaderEpoch())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.OffsetForLeaderEpochResponse{LeaderEpoch: e, EndOffset: end}, nil
}

// fromReplicator refuses a Fetch whose replica id is not the caller's own
// node: a follower's position moves the HW, so it must come from that
// follower's replicator.
func (s *replicaFetchService) fromReplicator(ctx context.Context, replicaID int32) error {
	if s.cluster.ReplicatorIdentity == "" {
		return nil
	}
	want := "replicator-" + strconv.Itoa(int(replicaID))
	id, ok := acl.IdentityFromContext(ctx)
	if !ok || id != want {
		return status.Errorf(codes.PermissionDenied, "a fetch for replica %d must come from %s, not %q", replicaID, want, id)
	}
	return nil
}
