package grpcserver

import (
	"context"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// forwarder answers Topics and Metadata for a cluster-mode broker from its
// replicator: the controller owns topics and placement, so a broker's own
// view would be partial. The caller was already authorized here; the
// broker forwards under its own identity, which the default policy lets
// create, alter and delete topics for that reason. Offsets the controller
// does not track (log start, log end, high watermark) are filled in for
// the partitions this broker leads and marked unknown (-1) for the others,
// whose leaders the client asks.
type forwarder struct {
	cat    Catalog
	topics stratav1.TopicsClient
	meta   stratav1.MetadataClient
}

func (f *forwarder) withLocalOffsets(ts ...*stratav1.TopicMetadata) {
	for _, t := range ts {
		for _, pm := range t.GetPartitions() {
			p, err := f.cat.Partition(t.GetName(), pm.GetPartition())
			if err != nil {
				setOffsets(pm, nil) // not held here
				continue
			}
			setOffsets(pm, p)
		}
	}
}

// forwardedTopics is strata.v1.Topics answered by the replicator. Errors
// come back with the replicator's status codes unchanged.
type forwardedTopics struct {
	stratav1.UnimplementedTopicsServer
	f *forwarder
}

func (s *forwardedTopics) CreateTopic(ctx context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	resp, err := s.f.topics.CreateTopic(ctx, req)
	if err != nil {
		return nil, err
	}
	s.f.withLocalOffsets(resp.GetTopic())
	return resp, nil
}

func (s *forwardedTopics) DeleteTopic(ctx context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	return s.f.topics.DeleteTopic(ctx, req)
}

func (s *forwardedTopics) DescribeTopic(ctx context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	resp, err := s.f.topics.DescribeTopic(ctx, req)
	if err != nil {
		return nil, err
	}
	s.f.withLocalOffsets(resp.GetTopic())
	return resp, nil
}

func (s *forwardedTopics) ListTopics(ctx context.Context, req *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	resp, err := s.f.topics.ListTopics(ctx, req)
	if err != nil {
		return nil, err
	}
	s.f.withLocalOffsets(resp.GetTopics()...)
	return resp, nil
}

func (s *forwardedTopics) AlterTopicConfig(ctx context.Context, req *stratav1.AlterTopicConfigRequest) (*stratav1.AlterTopicConfigResponse, error) {
	resp, err := s.f.topics.AlterTopicConfig(ctx, req)
	if err != nil {
		return nil, err
	}
	s.f.withLocalOffsets(resp.GetTopic())
	return resp, nil
}

// forwardedMetadata is strata.v1.Metadata answered by the replicator.
type forwardedMetadata struct {
	stratav1.UnimplementedMetadataServer
	f *forwarder
}

func (s *forwardedMetadata) Metadata(ctx context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	resp, err := s.f.meta.Metadata(ctx, req)
	if err != nil {
		return nil, err
	}
	s.f.withLocalOffsets(resp.GetTopics()...)
	return resp, nil
}
