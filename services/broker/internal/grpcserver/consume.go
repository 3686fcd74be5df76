package grpcserver

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/quota"
)

const (
	defaultMaxBytes       = 1 << 20
	defaultStreamBatch    = 500
	maxRecordsPerResponse = 100000
	responseHeadroomBytes = 64 << 10
)

// batchLimits resolves a request's record and byte limits: 0 means the
// default, negative is invalid, and bytes never exceed what one sent
// message may hold.
func (s *logService) batchLimits(recField string, records int32, recDefault int, bytesField string, bytes int32) (int, int, error) {
	if records < 0 {
		return 0, 0, badRequest(recField, "must be >= 0, got "+strconv.Itoa(int(records)))
	}
	if bytes < 0 {
		return 0, 0, badRequest(bytesField, "must be >= 0, got "+strconv.Itoa(int(bytes)))
	}
	n, b := int(records), int(bytes)
	if n == 0 {
		n = recDefault
	}
	if b == 0 {
		b = defaultMaxBytes
	}
	return min(n, maxRecordsPerResponse), min(b, s.cfg.MaxSendMsgBytes-responseHeadroomBytes), nil
}

// Consume reads one record or a bounded batch at an offset. At the high
// watermark it answers with no records; past it, OutOfRange.
func (s *logService) Consume(ctx context.Context, req *stratav1.ConsumeRequest) (*stratav1.ConsumeResponse, error) {
	p, err := s.lookupLeader(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, err
	}
	maxRecords, maxBytes, err := s.batchLimits("max_records", req.GetMaxRecords(), 1, "max_bytes", req.GetMaxBytes())
	if err != nil {
		return nil, err
	}
	cur, err := p.NewCursor(req.GetOffset())
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &stratav1.ConsumeResponse{Topic: req.GetTopic(), Partition: req.GetPartition()}
	var decodeErr error
	bytes := 0
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
		bytes += len(r.Key) + len(r.Value)
		resp.Records = append(resp.Records, r)
	})
	err = errors.Join(err, decodeErr, cur.Close())
	if err != nil {
		return nil, toStatus(err)
	}
	if err := s.throttle(ctx, quota.Consume, bytes); err != nil {
		return nil, err
	}
	resp.NextOffset = cur.Next()
	resp.HighWatermark = p.HighWatermark()
	resp.LogStartOffset = p.LogStartOffset()
	s.rec.Consumed(req.GetTopic(), len(resp.Records), bytes)
	return resp, nil
}

// ConsumeStream sends batches from a start position and, at the high
// watermark, waits for the log to change (no polling). It ends cleanly
// (status OK) when the server shuts down, with the client's cancellation,
// or with an error status.
func (s *logService) ConsumeStream(req *stratav1.ConsumeStreamRequest, stream grpc.ServerStreamingServer[stratav1.ConsumeResponse]) error {
	ctx := stream.Context()
	p, err := s.lookupLeader(req.GetTopic(), req.GetPartition())
	if err != nil {
		return err
	}
	maxRecords, maxBytes, err := s.batchLimits("max_batch_records", req.GetMaxBatchRecords(), defaultStreamBatch, "max_batch_bytes", req.GetMaxBatchBytes())
	if err != nil {
		return err
	}
	start, err := startOffset(p, req)
	if err != nil {
		return err
	}
	cur, err := p.NewCursor(start)
	if err != nil {
		return toStatus(err)
	}
	defer cur.Close() // read-only reader: its close has nothing to lose

	var w consumeResponseBuilder
	for {
		w.b = make([]byte, 0, min(maxBytes+1024, 256<<10)) // owned by gRPC once sent
		w.reset(req.GetTopic(), req.GetPartition())
		bytes := 0
		start := time.Now()
		n, err := cur.Read(maxRecords, maxBytes, func(f logstore.Frame, epoch int32) {
			w.addRecord(f, epoch)
			bytes += len(f.Payload)
		})
		if err != nil {
			return toStatus(err)
		}
		if n == 0 {
			switch err := p.WaitFor(ctx, cur.Next(), s.shutdown); {
			case err == nil:
				continue
			case errors.Is(err, partition.ErrStopped):
				return nil // server shutdown: end the stream cleanly
			default:
				return toStatus(err)
			}
		}
		switch err := s.throttle(ctx, quota.Consume, bytes); {
		case errors.Is(err, errStopping):
			return nil // server shutdown: end the stream cleanly
		case err != nil:
			return err
		}
		msg := &encodedMessage{b: w.finish(cur.Next(), p.HighWatermark(), p.LogStartOffset())}
		if err := stream.SendMsg(msg); err != nil {
			return err
		}
		s.timer.ReadBatch("consume", time.Since(start))
		s.rec.Consumed(req.GetTopic(), n, bytes)
	}
}

// startOffset resolves a ConsumeStream's start; an unset start is the
// earliest offset.
func startOffset(p *partition.Partition, req *stratav1.ConsumeStreamRequest) (int64, error) {
	switch st := req.GetStart().(type) {
	case *stratav1.ConsumeStreamRequest_Offset:
		return st.Offset, nil
	case *stratav1.ConsumeStreamRequest_TimestampMs:
		off, err := p.OffsetForTime(st.TimestampMs)
		if err != nil {
			return 0, toStatus(err)
		}
		return off, nil
	case *stratav1.ConsumeStreamRequest_Position:
		switch st.Position {
		case stratav1.StartPosition_START_POSITION_EARLIEST:
			return p.LogStartOffset(), nil
		case stratav1.StartPosition_START_POSITION_LATEST:
			return p.HighWatermark(), nil
		}
		return 0, badRequest("position", "must be EARLIEST or LATEST, got "+st.Position.String())
	}
	return p.LogStartOffset(), nil
}
