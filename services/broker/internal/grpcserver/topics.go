package grpcserver

import (
	"context"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// topicsService implements strata.v1.Topics over a TopicAdmin.
type topicsService struct {
	stratav1.UnimplementedTopicsServer
	cfg   Config
	cat   Catalog
	admin TopicAdmin
}

func (s *topicsService) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	if err := topicconfig.ValidateName(req.GetName()); err != nil {
		return nil, badRequest("name", err.Error())
	}
	t, err := s.admin.Create(ctx, req.GetName(), topicconfig.FromProto(req.GetConfig()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.CreateTopicResponse{Topic: topicMetadata(s.cfg, t)}, nil
}

func (s *topicsService) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	if err := topicconfig.ValidateName(req.GetName()); err != nil {
		return nil, badRequest("name", err.Error())
	}
	if err := s.admin.Delete(ctx, req.GetName()); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DeleteTopicResponse{}, nil
}

func (s *topicsService) DescribeTopic(ctx context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	if err := topicconfig.ValidateName(req.GetName()); err != nil {
		return nil, badRequest("name", err.Error())
	}
	t, err := s.cat.Get(req.GetName())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.DescribeTopicResponse{Topic: topicMetadata(s.cfg, t)}, nil
}

func (s *topicsService) ListTopics(ctx context.Context, req *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	resp := &stratav1.ListTopicsResponse{}
	for _, t := range s.cat.List() {
		resp.Topics = append(resp.Topics, topicMetadata(s.cfg, t))
	}
	return resp, nil
}

func (s *topicsService) AlterTopicConfig(ctx context.Context, req *stratav1.AlterTopicConfigRequest) (*stratav1.AlterTopicConfigResponse, error) {
	if err := topicconfig.ValidateName(req.GetName()); err != nil {
		return nil, badRequest("name", err.Error())
	}
	t, err := s.admin.Alter(ctx, req.GetName(), topicconfig.FromProto(req.GetConfig()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AlterTopicConfigResponse{Topic: topicMetadata(s.cfg, t)}, nil
}

func topicMetadata(cfg Config, t *topic.Topic) *stratav1.TopicMetadata {
	md := &stratav1.TopicMetadata{Name: t.Name(), Config: t.Config().Proto()}
	for _, p := range t.Partitions() {
		md.Partitions = append(md.Partitions, partitionMetadata(p))
	}
	return md
}

func partitionMetadata(p *partition.Partition) *stratav1.PartitionMetadata {
	st := p.State()
	pm := &stratav1.PartitionMetadata{
		Partition:     p.ID(),
		LeaderId:      st.LeaderID,
		LeaderAddress: st.LeaderAddr,
		LeaderEpoch:   st.LeaderEpoch,
		Replicas:      st.Replicas,
		Isr:           st.ISR,
		Offline:       st.LeaderID < 0,
	}
	setOffsets(pm, p)
	return pm
}

// setOffsets fills in a partition's offsets when this broker leads it and
// marks them unknown (-1) otherwise, p nil included (not held here): a
// follower's log end and high watermark lag the leader's, and a client
// must not mistake "not known here" for an empty partition.
func setOffsets(pm *stratav1.PartitionMetadata, p *partition.Partition) {
	if p == nil || p.State().Role != partition.RoleLeader {
		pm.LogStartOffset, pm.LogEndOffset, pm.HighWatermark = -1, -1, -1
		return
	}
	pm.LogStartOffset, pm.LogEndOffset, pm.HighWatermark = p.LogStartOffset(), p.LogEndOffset(), p.HighWatermark()
}
