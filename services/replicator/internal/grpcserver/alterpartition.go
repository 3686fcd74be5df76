package grpcserver

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// ISRChanger commits a partition leader's ISR change; only called on the
// Raft leader. node.Node satisfies it.
type ISRChanger interface {
	AlterPartition(ctx context.Context, topic string, partition, leaderID, leaderEpoch int32, isr []int32) error
}

// controllerServer is strata.v1.Controller: a partition leader's broker
// asks its own replicator for an ISR shrink or expansion, which goes to
// the Raft leader like Topics changes do.
type controllerServer struct {
	stratav1.UnimplementedControllerServer
	*service
}

// AlterPartition commits ChangeISR on the controller. A stale epoch or a
// caller that no longer leads is FailedPrecondition: the broker waits for
// the state it will be sent (ApplyPartitionState) and decides again.
func (s *controllerServer) AlterPartition(ctx context.Context, req *stratav1.AlterPartitionRequest) (*stratav1.AlterPartitionResponse, error) {
	if err := validateAlterPartition(req); err != nil {
		return nil, err
	}
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		return stratav1.NewControllerClient(conn).AlterPartition(markForwarded(ctx), req)
	}
	if err := s.deps.ISR.AlterPartition(ctx, req.GetTopic(), req.GetPartition(), req.GetLeaderId(),
		req.GetLeaderEpoch(), req.GetIsr()); err != nil {
		return nil, toStatus(err)
	}
	// ChangeISR keeps the epoch and installs exactly the proposed ISR, so
	// the request is the committed state (the FSM may have moved on since).
	return &stratav1.AlterPartitionResponse{LeaderEpoch: req.GetLeaderEpoch(), Isr: slices.Clone(req.GetIsr())}, nil
}

// validateAlterPartition refuses what no partition could accept before a
// round trip to the controller; the FSM checks the rest against the state.
func validateAlterPartition(req *stratav1.AlterPartitionRequest) error {
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
	case !slices.Contains(req.GetIsr(), req.GetLeaderId()):
		return status.Errorf(codes.InvalidArgument, "isr %v must contain the leader %d", req.GetIsr(), req.GetLeaderId())
	}
	return nil
}
