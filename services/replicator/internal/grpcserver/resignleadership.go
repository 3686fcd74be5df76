package grpcserver

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// ResignLeadership moves leadership away from a partition leader whose log
// cannot serve as the partition's copy (DESIGN.md §8), on the controller
// like AlterPartition. A stale epoch, a caller that no longer leads, or no
// other alive in-sync replica is FailedPrecondition: the caller keeps the
// state it has (leading, if it still does) and decides again later.
func (s *controllerServer) ResignLeadership(ctx context.Context, req *stratav1.ResignLeadershipRequest) (*stratav1.ResignLeadershipResponse, error) {
	if err := validateResignLeadership(req); err != nil {
		return nil, err
	}
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		return stratav1.NewControllerClient(conn).ResignLeadership(markForwarded(ctx), req)
	}
	p, err := s.deps.Controller.ResignLeader(ctx, req.GetTopic(), req.GetPartition(), req.GetLeaderId(),
		req.GetLeaderEpoch(), req.GetReason())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.ResignLeadershipResponse{LeaderId: p.Leader, LeaderEpoch: p.LeaderEpoch, Isr: slices.Clone(p.ISR)}, nil
}

// validateResignLeadership refuses what no partition could accept before a
// round trip to the controller; the FSM checks the rest against the state.
func validateResignLeadership(req *stratav1.ResignLeadershipRequest) error {
	if err := topicconfig.ValidateName(req.GetTopic()); err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	switch {
	case req.GetPartition() < 0:
		return status.Errorf(codes.InvalidArgument, "partition must be >= 0, got %d", req.GetPartition())
	case req.GetLeaderId() <= 0:
		return status.Errorf(codes.InvalidArgument, "leader_id must be > 0, got %d", req.GetLeaderId())
	case req.GetLeaderEpoch() < 0:
		return status.Errorf(codes.InvalidArgument, "leader_epoch must be >= 0, got %d", req.GetLeaderEpoch())
	}
	return nil
}
