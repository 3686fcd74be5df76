package grpcserver

import (
	"context"
	"errors"
	"strconv"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// TopicEnsurer makes the local copy of a topic match the controller's
// config, and removes it. *topic.Registry satisfies it.
type TopicEnsurer interface {
	Ensure(ctx context.Context, name, id string, cfg topicconfig.Config) (*topic.Topic, error)
	Delete(ctx context.Context, name string) error
	// StorageID is the data directory's storage id.
	StorageID() string
}

// replicaBase is what the replica services of a cluster-mode broker share.
// The ACL lets only broker and replicator identities reach them; each
// service checks further who may call it.
type replicaBase struct {
	cluster      ClusterConfig
	nodeID       int32
	cat          Catalog
	lg           *zap.Logger
	maxSendBytes int
	shutdown     <-chan struct{} // closed when the server stops: streams end
	rec          Recorder
	timer        BatchTimer
	tr           *tracer // nil: tracing off
}

// registerReplicaServices serves the replica services by audience:
// ReplicaFetch to the followers' replicators (fetch.go), LocalReplica to
// this node's own replicator (here) and ReplicaTools to tools
// (replicatools.go).
func registerReplicaServices(srv grpc.ServiceRegistrar, b *replicaBase) {
	stratav1.RegisterReplicaFetchServer(srv, &replicaFetchService{replicaBase: b})
	stratav1.RegisterLocalReplicaServer(srv, &localReplicaService{replicaBase: b})
	stratav1.RegisterReplicaToolsServer(srv, &replicaToolsService{replicaBase: b})
}

// localReplicaService is strata.v1.LocalReplica: every method answers only
// this node's replicator (fromOwnReplicator).
type localReplicaService struct {
	stratav1.UnimplementedLocalReplicaServer
	*replicaBase
}

// ApplyPartitionState sets this broker's role for one partition as the
// controller decided it, creating the topic locally on first sight. A state
// from an older leader epoch than the partition has is refused
// (FailedPrecondition); ROLE_NONE releases the partition, and the topic is
// removed once none of its partitions has a role here.
func (s *localReplicaService) ApplyPartitionState(ctx context.Context, req *stratav1.ApplyPartitionStateRequest) (*stratav1.ApplyPartitionStateResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	if err := topicconfig.ValidateName(req.GetTopic()); err != nil {
		return nil, badRequest("topic", err.Error())
	}
	if req.GetPartition() < 0 {
		return nil, badRequest("partition", "must be >= 0, got "+strconv.Itoa(int(req.GetPartition())))
	}
	if req.GetLeaderEpoch() < 0 {
		return nil, badRequest("leader_epoch", "must be >= 0")
	}
	if sid := req.GetStorageId(); sid != "" && sid != s.cluster.Topics.StorageID() {
		// The state was computed from metadata that counts records of
		// another data directory (this one replaced it): taking a role
		// from it could make an empty log lead.
		return nil, status.Errorf(codes.FailedPrecondition, "state is for storage %s, this broker's data directory is %s",
			sid, s.cluster.Topics.StorageID())
	}
	st := partition.State{
		LeaderEpoch: req.GetLeaderEpoch(),
		LeaderID:    req.GetLeaderId(),
		LeaderAddr:  req.GetLeaderAddress(),
		Replicas:    req.GetReplicas(),
		ISR:         req.GetIsr(),
	}
	switch req.GetRole() {
	case stratav1.Role_ROLE_LEADER:
		st.Role = partition.RoleLeader
		if req.GetLeaderId() != s.nodeID {
			return nil, badRequest("leader_id", "ROLE_LEADER names leader "+strconv.Itoa(int(req.GetLeaderId()))+", not this broker "+strconv.Itoa(int(s.nodeID)))
		}
	case stratav1.Role_ROLE_FOLLOWER:
		st.Role = partition.RoleFollower
	case stratav1.Role_ROLE_NONE:
		return s.release(ctx, req, st)
	default:
		return nil, badRequest("role", "must be LEADER, FOLLOWER or NONE, got "+req.GetRole().String())
	}
	if req.GetConfig() == nil {
		return nil, badRequest("config", "must be set")
	}
	t, err := s.cluster.Topics.Ensure(ctx, req.GetTopic(), req.GetTopicId(), topicconfig.FromProto(req.GetConfig()))
	if err != nil {
		return nil, toStatus(err)
	}
	p, err := partitionOf(t, req.GetPartition())
	if err != nil {
		return nil, err
	}
	if err := p.ApplyState(st); err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.ApplyPartitionStateResponse{LogEndOffset: p.LogEndOffset()}, nil
}

// release drops this broker's role for a partition; the topic goes when
// no partition of it has a role left.
func (s *localReplicaService) release(ctx context.Context, req *stratav1.ApplyPartitionStateRequest, st partition.State) (*stratav1.ApplyPartitionStateResponse, error) {
	t, err := s.cat.Get(req.GetTopic())
	if errors.Is(err, topic.ErrNotFound) {
		return &stratav1.ApplyPartitionStateResponse{}, nil
	}
	if err != nil {
		return nil, toStatus(err)
	}
	p, err := partitionOf(t, req.GetPartition())
	if err != nil {
		return nil, err
	}
	st.Role = partition.RoleNone
	if err := p.ApplyState(st); err != nil {
		return nil, toStatus(err)
	}
	for _, q := range t.Partitions() {
		if q.State().Role != partition.RoleNone {
			return &stratav1.ApplyPartitionStateResponse{LogEndOffset: p.LogEndOffset()}, nil
		}
	}
	s.lg.Info("no partition of the topic has a role here any more; removing it", zap.String("topic", t.Name()))
	if err := s.cluster.Topics.Delete(ctx, t.Name()); err != nil && !errors.Is(err, topic.ErrNotFound) {
		return nil, toStatus(err)
	}
	return &stratav1.ApplyPartitionStateResponse{}, nil
}

// ReleaseUnknownTopics removes the local topics the controller no longer
// knows whose partitions all have no role: topics deleted while this
// broker was away (no ROLE_NONE reached it). A topic with any role, or one
// the controller knows, is never touched.
func (s *localReplicaService) ReleaseUnknownTopics(ctx context.Context, req *stratav1.ReleaseUnknownTopicsRequest) (*stratav1.ReleaseUnknownTopicsResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(req.GetKnownTopics()))
	for _, name := range req.GetKnownTopics() {
		known[name] = true
	}
	resp := &stratav1.ReleaseUnknownTopicsResponse{}
	for _, t := range s.cat.List() {
		if known[t.Name()] || hasRole(t) {
			continue
		}
		s.lg.Info("removing a topic the controller no longer has (deleted while this broker was away)", zap.String("topic", t.Name()))
		if err := s.cluster.Topics.Delete(ctx, t.Name()); err != nil && !errors.Is(err, topic.ErrNotFound) {
			return nil, toStatus(err)
		}
		resp.Removed = append(resp.Removed, t.Name())
	}
	return resp, nil
}

// StorageId answers the data directory's storage id to this node's replicator.
func (s *localReplicaService) StorageId(ctx context.Context, _ *stratav1.StorageIdRequest) (*stratav1.StorageIdResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	return &stratav1.StorageIdResponse{StorageId: s.cluster.Topics.StorageID()}, nil
}

// Append writes frames fetched from the leader into this follower at their
// own offsets; empty frames pass the leader's HW on.
func (s *localReplicaService) Append(ctx context.Context, req *stratav1.AppendRequest) (*stratav1.AppendResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	var leo int64
	if s.tr != nil {
		leo, err = s.tr.appendReplicated(ctx, p, req)
	} else {
		leo, err = p.AppendReplicated(req.GetLeaderEpoch(), req.GetRecordsEpoch(), req.GetFrames(), req.GetLeaderHighWatermark())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.AppendResponse{LogEndOffset: leo}, nil
}

// Truncate removes this follower's records at and after offset (or resets
// the log to start at offset).
func (s *localReplicaService) Truncate(ctx context.Context, req *stratav1.TruncateRequest) (*stratav1.TruncateResponse, error) {
	if err := s.fromOwnReplicator(ctx); err != nil {
		return nil, err
	}
	p, err := s.cat.Partition(req.GetTopic(), req.GetPartition())
	if err != nil {
		return nil, toStatus(err)
	}
	leo, err := p.TruncateReplica(req.GetLeaderEpoch(), req.GetOffset(), req.GetReset_())
	if err != nil {
		return nil, toStatus(err)
	}
	return &stratav1.TruncateResponse{LogEndOffset: leo}, nil
}

func hasRole(t *topic.Topic) bool {
	for _, p := range t.Partitions() {
		if p.State().Role != partition.RoleNone {
			return true
		}
	}
	return false
}

// fromOwnReplicator refuses a caller other than this node's replicator.
// Without TLS (a plaintext test broker) there is no identity to check.
func (s *replicaBase) fromOwnReplicator(ctx context.Context) error {
	if s.cluster.ReplicatorIdentity == "" {
		return nil
	}
	id, ok := acl.IdentityFromContext(ctx)
	if !ok || id != s.cluster.ReplicatorIdentity {
		return status.Errorf(codes.PermissionDenied, "only %s may call strata.v1.LocalReplica on this broker, not %q", s.cluster.ReplicatorIdentity, id)
	}
	return nil
}

func partitionOf(t *topic.Topic, id int32) (*partition.Partition, error) {
	ps := t.Partitions()
	if int(id) >= len(ps) {
		return nil, status.Errorf(codes.NotFound, "topic %q has %d partitions, no partition %d", t.Name(), len(ps), id)
	}
	return ps[id], nil
}

func roleToProto(r partition.Role) stratav1.Role {
	switch r {
	case partition.RoleLeader:
		return stratav1.Role_ROLE_LEADER
	case partition.RoleFollower:
		return stratav1.Role_ROLE_FOLLOWER
	}
	return stratav1.Role_ROLE_NONE
}
