package grpcserver

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// AllocateProducerIds hands a broker a block of producer ids for its
// InitProducer, committed through Raft on the controller (forwarded there
// like AlterPartition), so that no id is ever given out twice.
func (s *controllerServer) AllocateProducerIds(ctx context.Context, req *stratav1.AllocateProducerIdsRequest) (*stratav1.AllocateProducerIdsResponse, error) {
	if req.GetBrokerId() <= 0 {
		return nil, status.Errorf(codes.InvalidArgument, "broker_id must be > 0, got %d", req.GetBrokerId())
	}
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		return stratav1.NewControllerClient(conn).AllocateProducerIds(markForwarded(ctx), req)
	}
	first, count, err := s.deps.Controller.AllocateProducerIDs(ctx, req.GetBrokerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AllocateProducerIdsResponse{FirstId: first, Count: count}, nil
}
