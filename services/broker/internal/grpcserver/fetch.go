package grpcserver

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
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

// Fetch streams one partition from this leader to one follower (see
// replica.proto): frames ahead of the follower's acknowledgements, at most
// fetchWindow unacknowledged responses, heartbeats when idle. Every later
// request is the follower's position, from which the HW advances. The
// stream ends with FailedPrecondition when this broker stops leading in
// the follower's epoch.
func (s *replicaService) Fetch(stream grpc.BidiStreamingServer[stratav1.FetchRequest, stratav1.FetchResponse]) error {
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
			if err == nil {
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
		msg, frameBytes, err := s.nextFetchResponse(ctx, p, cur, epoch, maxBytes, hb, recvErr)
		if err != nil {
			return err
		}
		if err := stream.SendMsg(msg); err != nil {
			return err
		}
		s.rec.Fetched(first.GetTopic(), frameBytes)
		hb.Reset(fetchHeartbeat) // Go 1.23+ timers: Reset drops a pending tick
	}
}

// nextFetchResponse waits for frames past the cursor (or the heartbeat)
// and returns the FetchResponse in wire format with the frames' size. The
// frames are read once, into the message: marshaling a FetchResponse
// would copy them again.
func (s *replicaService) nextFetchResponse(ctx context.Context, p *partition.Partition, cur *partition.Cursor, epoch int32,
	maxBytes int, hb *time.Timer, recvErr <-chan error) (*encodedMessage, int, error) {
	buf := make([]byte, fetchHeadroom)
	for {
		// Capture the notifications before looking, so no change between
		// the look and the wait is missed.
		logChanged, stateChanged := p.LogChanged(), p.StateChanged()
		if st := p.State(); st.Role != partition.RoleLeader || st.LeaderEpoch != epoch {
			return nil, 0, toStatus(p.NotLeader())
		}
		base := cur.Next()
		out, recEpoch, n, err := cur.ReadFrames(buf[:fetchHeadroom], maxBytes)
		if err != nil {
			return nil, 0, toStatus(err)
		}
		if n > 0 {
			return s.fetchResponse(p, epoch, out, recEpoch, base), len(out) - fetchHeadroom, nil
		}
		select {
		case <-logChanged:
		case <-stateChanged:
		case <-hb.C:
			return s.fetchResponse(p, epoch, buf[:fetchHeadroom], epoch, cur.Next()), 0, nil
		case err := <-recvErr:
			return nil, 0, fetchEnd(err)
		case <-ctx.Done():
			return nil, 0, status.FromContextError(ctx.Err()).Err()
		case <-s.shutdown:
			return nil, 0, status.Error(codes.Unavailable, "broker shutting down")
		}
	}
}

// fetchResponse makes the message from buf: fetchHeadroom bytes of room,
// then the frames (a fresh copy out of the log, owned by the message).
func (s *replicaService) fetchResponse(p *partition.Partition, epoch int32, buf []byte, recEpoch int32, base int64) *encodedMessage {
	return &encodedMessage{b: fetchResponseBytes(buf, fetchFields{
		leaderEpoch: epoch, highWatermark: p.HighWatermark(), logStartOffset: p.LogStartOffset(),
		logEndOffset: p.LogEndOffset(), recordsEpoch: recEpoch, baseOffset: base,
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

// Append writes frames fetched from the leader into this follower at their
// own offsets; empty frames pass the leader's HW on.
func (s *replicaService) Append(ctx context.Context, req *stratav1.AppendRequest) (*stratav1.AppendResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	leo, err := p.AppendReplicated(req.GetLeaderEpoch(), req.GetRecordsEpoch(), req.GetFrames(), req.GetLeaderHighWatermark())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AppendResponse{LogEndOffset: leo}, nil
}

// Truncate removes this follower's records at and after offset (or resets
// the log to start at offset).
func (s *replicaService) Truncate(ctx context.Context, req *stratav1.TruncateRequest) (*stratav1.TruncateResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	leo, err := p.TruncateReplica(req.GetLeaderEpoch(), req.GetOffset(), req.GetReset_())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.TruncateResponse{LogEndOffset: leo}, nil
}

// OffsetForLeaderEpoch answers where an epoch ends here (KIP-101/279).
func (s *replicaService) OffsetForLeaderEpoch(ctx context.Context, req *stratav1.OffsetForLeaderEpochRequest) (*stratav1.OffsetForLeaderEpochResponse, error) {
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

// ReadReplica reads this broker's own copy of a partition up to its log
// end offset, whatever its role: verification tools compare replicas with
// it. Records are decoded as Consume decodes them.
func (s *replicaService) ReadReplica(ctx context.Context, req *stratav1.ReadReplicaRequest) (*stratav1.ReadReplicaResponse, error) {
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	maxRecords, maxBytes := int(req.GetMaxRecords()), int(req.GetMaxBytes())
	if maxRecords < 0 || maxBytes < 0 {
		return nil, badRequest("max_records", "max_records and max_bytes must be >= 0")
	}
	if maxRecords == 0 {
		maxRecords = 1000
	}
	if maxBytes == 0 {
		maxBytes = defaultFetchBytes
	}
	maxRecords = min(maxRecords, maxRecordsPerResponse)
	maxBytes = min(maxBytes, s.maxSendBytes-responseHeadroomBytes)
	cur, err := p.NewReplicaCursor(req.GetOffset())
	if err != nil {
		return nil, toStatus(err)
	}
	st := p.State()
	resp := &stratav1.ReadReplicaResponse{Role: roleToProto(st.Role), LeaderEpoch: st.LeaderEpoch}
	var decodeErr error
	_, err = cur.Read(maxRecords, maxBytes, func(f logstore.Frame, epoch int32) {
		if decodeErr != nil {
			return
		}
		r := &stratav1.Record{}
		if decodeErr = proto.Unmarshal(f.Payload, r); decodeErr != nil {
			decodeErr = &logstore.CorruptError{Offset: f.Offset, Reason: "payload is not a record: " + decodeErr.Error()}
			return
		}
		r.TimestampMs, r.Offset, r.LeaderEpoch = f.Timestamp, f.Offset, epoch
		resp.Records = append(resp.Records, r)
	})
	if err := errors.Join(err, decodeErr, cur.Close()); err != nil {
		return nil, toStatus(err)
	}
	resp.NextOffset = cur.Next()
	resp.LogStartOffset, resp.LogEndOffset, resp.HighWatermark = p.LogStartOffset(), p.LogEndOffset(), p.HighWatermark()
	return resp, nil
}
