package grpcserver

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/replicator/internal/consensus"
	"github.com/strata-log/strata/services/replicator/internal/controller"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

type topicsServer struct {
	stratav1.UnimplementedTopicsServer
	*service
}

// leaderConn returns nil when this node is the controller, else a
// connection to the controller's replicator.
func (s *service) leaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	if s.deps.Cluster.IsLeader() {
		return nil, nil
	}
	if isForwarded(ctx) {
		return nil, status.Error(codes.Unavailable, "forwarded to a replicator that is not the controller; retry")
	}
	id := s.deps.Cluster.Leader()
	if id < 0 {
		return nil, status.Error(codes.Unavailable, "no controller elected; retry")
	}
	b, ok := s.deps.State.State().Brokers[id]
	if !ok || b.ReplicatorAddress == "" {
		return nil, status.Errorf(codes.Unavailable, "controller %d not registered yet; retry", id)
	}
	conn, err := s.deps.Forwarder.Conn(b.ReplicatorAddress)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "dial controller %d: %v", id, err)
	}
	s.lg.Debug("forwarding to controller", zap.Int32("controller", id), zap.String("address", b.ReplicatorAddress))
	return conn, nil
}

func (s *topicsServer) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		resp, err := stratav1.NewTopicsClient(conn).CreateTopic(markForwarded(ctx), req)
		if err == nil {
			s.awaitLocal(ctx, func(st *metadata.State) bool { _, ok := st.Topics[req.GetName()]; return ok })
		}
		return resp, err
	}
	t, err := s.deps.Controller.CreateTopic(ctx, req.GetName(), topicconfig.FromProto(req.GetConfig()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.CreateTopicResponse{Topic: topicProto(s.deps.State.State(), t)}, nil
}

func (s *topicsServer) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		resp, err := stratav1.NewTopicsClient(conn).DeleteTopic(markForwarded(ctx), req)
		if err == nil {
			s.awaitLocal(ctx, func(st *metadata.State) bool { _, ok := st.Topics[req.GetName()]; return !ok })
		}
		return resp, err
	}
	if err := s.deps.Controller.DeleteTopic(ctx, req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DeleteTopicResponse{}, nil
}

func (s *topicsServer) AlterTopicConfig(ctx context.Context, req *stratav1.AlterTopicConfigRequest) (*stratav1.AlterTopicConfigResponse, error) {
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	if conn != nil {
		return stratav1.NewTopicsClient(conn).AlterTopicConfig(markForwarded(ctx), req)
	}
	t, err := s.deps.Controller.AlterTopic(ctx, req.GetName(), topicconfig.FromProto(req.GetConfig()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AlterTopicConfigResponse{Topic: topicProto(s.deps.State.State(), t)}, nil
}

// DescribeTopic answers from the local FSM (possibly slightly behind the leader).
func (s *topicsServer) DescribeTopic(_ context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	t, ok := st.Topics[req.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetName())
	}
	return &stratav1.DescribeTopicResponse{Topic: topicProto(st, t)}, nil
}

// ListTopics answers from the local FSM.
func (s *topicsServer) ListTopics(context.Context, *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	resp := &stratav1.ListTopicsResponse{}
	for _, name := range st.TopicNames() {
		resp.Topics = append(resp.Topics, topicProto(st, st.Topics[name]))
	}
	return resp, nil
}

func toStatus(err error) error {
	switch {
	case errors.Is(err, metadata.ErrTopicExists):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, metadata.ErrTopicNotFound), errors.Is(err, metadata.ErrPartitionNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, topicconfig.ErrInvalid), errors.Is(err, topicconfig.ErrInvalidName),
		errors.Is(err, metadata.ErrInvalidAssignment), errors.Is(err, controller.ErrInvalidRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, metadata.ErrStaleEpoch), errors.Is(err, metadata.ErrNotPartitionLeader),
		errors.Is(err, metadata.ErrIneligibleLeader):
		// The caller's view of the partition is out of date (or a replica
		// it wants back in is dead): it learns the current state and retries.
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, controller.ErrNotEnoughBrokers):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, consensus.ErrNotLeader):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	default:
		return status.Error(codes.Internal, err.Error())
	}
}

func topicProto(st *metadata.State, t *metadata.Topic) *stratav1.TopicMetadata {
	out := &stratav1.TopicMetadata{Name: t.Name, Config: t.Config.Proto()}
	for _, p := range t.Partitions {
		// A replicator holds no log: its offsets are unknown (-1), as a
		// broker's are for partitions it does not lead.
		pm := &stratav1.PartitionMetadata{Partition: p.ID, LeaderId: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: append([]int32(nil), p.Replicas...), Isr: append([]int32(nil), p.ISR...), Offline: p.Offline,
			LogStartOffset: -1, LogEndOffset: -1, HighWatermark: -1}
		if b, ok := st.Brokers[p.Leader]; ok {
			pm.LeaderAddress = b.BrokerAddress
		}
		out.Partitions = append(out.Partitions, pm)
	}
	return out
}

// awaitLocal waits, for a moment at most, until this replicator's FSM shows
// a change the controller committed: the caller's next Metadata request
// usually comes back through this node, and should see its own write.
// Past the bound the answer goes anyway: the change is committed and will
// arrive.
func (s *topicsServer) awaitLocal(ctx context.Context, done func(*metadata.State) bool) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		st, changed := s.deps.State.Watch()
		if done(st) {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			s.lg.Debug("committed topic change not applied locally yet", zap.Error(ctx.Err()))
			return
		}
	}
}
