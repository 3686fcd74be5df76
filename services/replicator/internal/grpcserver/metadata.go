package grpcserver

import (
	"context"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

type metadataServer struct {
	stratav1.UnimplementedMetadataServer
	*service
}

// Metadata answers from the local FSM: every broker with its liveness and
// its replicator's Raft role, the requested topics (all when none are
// named, none with no_topics; unknown names are left out), the controller
// id and the first producer id not handed out yet.
func (s *metadataServer) Metadata(_ context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	if err := s.ready(); err != nil {
		return nil, err
	}
	st := s.deps.State.State()
	resp := &stratav1.MetadataResponse{ControllerId: s.deps.Cluster.Leader(), ClusterId: st.ClusterID,
		NextProducerId: st.NextProducerIDOrFirst()}
	for _, id := range st.BrokerIDs() {
		b := st.Brokers[id]
		resp.Brokers = append(resp.Brokers, &stratav1.BrokerInfo{Id: id, Address: b.BrokerAddress,
			Alive: b.Alive, RaftRole: s.deps.Cluster.RaftRole(id), InternalAddress: b.InternalAddress()})
	}
	if req.GetNoTopics() {
		return resp, nil
	}
	names := req.GetTopics()
	if len(names) == 0 {
		names = st.TopicNames()
	}
	for _, n := range names {
		if t, ok := st.Topics[n]; ok {
			resp.Topics = append(resp.Topics, topicProto(st, t))
		}
	}
	return resp, nil
}
