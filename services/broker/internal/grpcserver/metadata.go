package grpcserver

import (
	"strconv"

	"context"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// metadataService implements strata.v1.Metadata for a single node: this
// broker is the only one and leads every partition.
type metadataService struct {
	stratav1.UnimplementedMetadataServer
	cfg Config
	cat Catalog
}

func (s *metadataService) Metadata(ctx context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	resp := &stratav1.MetadataResponse{
		Brokers:      []*stratav1.BrokerInfo{{Id: s.cfg.NodeID, Address: s.cfg.AdvertiseAddr, Alive: true, RaftRole: "none"}},
		ControllerId: -1,
	}
	if len(req.GetTopics()) == 0 {
		for _, t := range s.cat.List() {
			resp.Topics = append(resp.Topics, topicMetadata(s.cfg, t))
		}
		return resp, nil
	}
	for i, name := range req.GetTopics() {
		if name == "" {
			return nil, badRequest("topics["+strconv.Itoa(i)+"]", "must not be empty")
		}
		t, err := s.cat.Get(name)
		if err != nil {
			return nil, toStatus(err)
		}
		resp.Topics = append(resp.Topics, topicMetadata(s.cfg, t))
	}
	return resp, nil
}
