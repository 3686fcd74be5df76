package grpcserver

import (
	"context"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// replicaToolsService is strata.v1.ReplicaTools: read-only views of this
// broker's own copy of a partition, for tools and its replicator.
type replicaToolsService struct {
	stratav1.UnimplementedReplicaToolsServer
	*replicaBase
}

// ReadReplica reads this broker's own copy of a partition up to its log
// end offset, whatever its role: verification tools compare replicas with
// it. Records are decoded as Consume decodes them.
func (s *replicaToolsService) ReadReplica(ctx context.Context, req *stratav1.ReadReplicaRequest) (*stratav1.ReadReplicaResponse, error) {
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

// PartitionStatus reports this broker's local view of a partition.
func (s *replicaToolsService) PartitionStatus(ctx context.Context, req *stratav1.PartitionStatusRequest) (*stratav1.PartitionStatusResponse, error) {
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	st := p.State()
	resp := &stratav1.PartitionStatusResponse{
		Role:             roleToProto(st.Role),
		LeaderEpoch:      st.LeaderEpoch,
		LogStartOffset:   p.LogStartOffset(),
		LogEndOffset:     p.LogEndOffset(),
		HighWatermark:    p.HighWatermark(),
		LatestLocalEpoch: p.LatestLocalEpoch(),
	}
	return resp, nil
}
