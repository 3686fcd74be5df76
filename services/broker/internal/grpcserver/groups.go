package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/group"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// Policy answers authorization checks; *acl.Authorizer satisfies it. The
// Groups service checks in its handlers, since a call names several
// objects (its topics and its group).
type Policy interface {
	Allowed(subject, object, action string) (bool, error)
}

// Peers dials other brokers (for a partition's high watermark, which only
// its leader knows) under this broker's own identity.
type Peers interface {
	Conn(addr string) (grpc.ClientConnInterface, error)
}

// groupsService is strata.v1.Groups over the coordinator.
type groupsService struct {
	stratav1.UnimplementedGroupsServer
	coord  *group.Coordinator
	nodeID int32
	policy Policy // nil: authorization off
}

// authorizer is the caller's check for the coordinator.
func (s *groupsService) authorizer(ctx context.Context) group.Authorizer {
	id, _ := acl.IdentityFromContext(ctx)
	return func(object, action string) error {
		if s.policy == nil {
			return nil
		}
		ok, err := s.policy.Allowed(id, object, action)
		if err != nil || !ok {
			return status.Errorf(codes.PermissionDenied, "%q may not %s on %q (grant: p, %s, %s, %s, allow)", id, action, object, id, object, action)
		}
		return nil
	}
}

func (s *groupsService) FindCoordinator(ctx context.Context, req *stratav1.FindCoordinatorRequest) (*stratav1.FindCoordinatorResponse, error) {
	if err := group.ValidateName(req.GetGroup()); err != nil {
		return nil, groupStatus(err)
	}
	resp, err := s.coord.Find(ctx, req.GetGroup())
	return resp, groupStatus(err)
}

func (s *groupsService) Session(stream grpc.BidiStreamingServer[stratav1.SessionRequest, stratav1.SessionResponse]) error {
	id, _ := acl.IdentityFromContext(stream.Context())
	return groupStatus(s.coord.Session(stream, id, s.authorizer(stream.Context())))
}

func (s *groupsService) CommitOffsets(ctx context.Context, req *stratav1.CommitOffsetsRequest) (*stratav1.CommitOffsetsResponse, error) {
	if err := s.coord.Commit(ctx, req, s.authorizer(ctx)); err != nil {
		return nil, groupStatus(err)
	}
	return &stratav1.CommitOffsetsResponse{}, nil
}

func (s *groupsService) FetchOffsets(ctx context.Context, req *stratav1.FetchOffsetsRequest) (*stratav1.FetchOffsetsResponse, error) {
	resp, err := s.coord.Fetch(ctx, req, s.authorizer(ctx))
	return resp, groupStatus(err)
}

func (s *groupsService) ListGroups(ctx context.Context, _ *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	auth := s.authorizer(ctx)
	return &stratav1.ListGroupsResponse{Groups: s.coord.List(s.nodeID, func(name string) bool {
		return auth(acl.GroupObject(name), acl.ActionDescribe) == nil
	})}, nil
}

func (s *groupsService) DescribeGroup(ctx context.Context, req *stratav1.DescribeGroupRequest) (*stratav1.DescribeGroupResponse, error) {
	resp, err := s.coord.Describe(ctx, req.GetGroup(), s.nodeID, s.authorizer(ctx))
	return resp, groupStatus(err)
}

func (s *groupsService) DeleteGroup(ctx context.Context, req *stratav1.DeleteGroupRequest) (*stratav1.DeleteGroupResponse, error) {
	if err := s.coord.Delete(ctx, req.GetGroup(), s.authorizer(ctx)); err != nil {
		return nil, groupStatus(err)
	}
	return &stratav1.DeleteGroupResponse{}, nil
}

func (s *groupsService) ResetOffsets(ctx context.Context, req *stratav1.ResetOffsetsRequest) (*stratav1.ResetOffsetsResponse, error) {
	if err := s.coord.Reset(ctx, req, s.authorizer(ctx)); err != nil {
		return nil, groupStatus(err)
	}
	return &stratav1.ResetOffsetsResponse{}, nil
}

// groupStatus maps the coordinator's errors to gRPC statuses.
func groupStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var (
		nc  *group.NotCoordinatorError
		bad *group.BadRequestError
		oor *group.OutOfRangeError
	)
	switch {
	case errors.As(err, &nc):
		return withDetails(codes.FailedPrecondition, err.Error(), &stratav1.NotCoordinator{CoordinatorId: nc.LeaderID, CoordinatorAddress: nc.LeaderAddr})
	case errors.As(err, &bad):
		return badRequest(bad.Field, bad.Reason)
	case errors.As(err, &oor):
		return status.Error(codes.OutOfRange, err.Error())
	case errors.Is(err, group.ErrUnknownMember), errors.Is(err, group.ErrStaleEpoch),
		errors.Is(err, group.ErrNotOwned), errors.Is(err, group.ErrHasMembers):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, group.ErrGroupNotFound), errors.Is(err, group.ErrNoPartition):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, group.ErrSessionExpired):
		return status.Error(codes.Aborted, err.Error())
	case group.ErrStopping(err):
		return status.Error(codes.Unavailable, "broker shutting down")
	}
	return toStatus(err)
}

// groupCluster is what the coordinator asks of this broker: its
// partitions, the cluster's metadata (the replicator's in cluster mode,
// the local one on a single node), topic creation and the high watermark
// of partitions led elsewhere.
type groupCluster struct {
	cat      Catalog
	nodeID   int32
	metadata func(ctx context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error)
	create   func(ctx context.Context, req *stratav1.CreateTopicRequest) error
	peers    Peers // nil on a single node
}

func (c *groupCluster) Partition(topic string, id int32) (*partition.Partition, error) {
	return c.cat.Partition(topic, id)
}

// Metadata asks for every topic and keeps those named: a group may
// subscribe to a topic that does not exist yet.
func (c *groupCluster) Metadata(ctx context.Context, topics ...string) (*stratav1.MetadataResponse, error) {
	resp, err := c.metadata(ctx, &stratav1.MetadataRequest{})
	if err != nil || len(topics) == 0 {
		return resp, err
	}
	want := map[string]bool{}
	for _, t := range topics {
		want[t] = true
	}
	kept := resp.Topics[:0]
	for _, t := range resp.GetTopics() {
		if want[t.GetName()] {
			kept = append(kept, t)
		}
	}
	resp.Topics = kept
	return resp, nil
}

// CreateOffsetsTopic creates the offsets topic replicated on up to three
// brokers, acknowledged by two copies when it has three, and compacted
// (only the latest commit of each group and partition matters) in 16 MiB
// segments rolled at least hourly, so that a new coordinator's load reads
// little more than the live state.
func (c *groupCluster) CreateOffsetsTopic(ctx context.Context, partitions int32) error {
	md, err := c.metadata(ctx, &stratav1.MetadataRequest{})
	if err != nil {
		return err
	}
	rf := topicconfig.DefaultReplicationFactor(len(md.GetBrokers()))
	cfg := topicconfig.Config{Partitions: partitions, ReplicationFactor: rf, MinInsyncReplicas: min(2, rf),
		CleanupPolicy: topicconfig.CleanupCompact, SegmentBytes: 16 << 20, SegmentMs: time.Hour.Milliseconds()}
	err = c.create(ctx, &stratav1.CreateTopicRequest{Name: group.OffsetsTopic, Config: cfg.Proto()})
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	return err
}

// HighWatermark is the partition's high watermark: this broker's own when
// it leads it, else the leader's.
func (c *groupCluster) HighWatermark(ctx context.Context, topic string, id int32) (int64, error) {
	if p, err := c.cat.Partition(topic, id); err == nil && p.State().Role == partition.RoleLeader {
		return p.HighWatermark(), nil
	}
	if c.peers == nil {
		return 0, fmt.Errorf("%w: %s/%d", group.ErrNoPartition, topic, id)
	}
	md, err := c.Metadata(ctx, topic)
	if err != nil {
		return 0, err
	}
	for _, t := range md.GetTopics() {
		for _, pm := range t.GetPartitions() {
			if pm.GetPartition() != id {
				continue
			}
			if pm.GetLeaderId() < 0 {
				return 0, status.Errorf(codes.Unavailable, "partition %s/%d has no leader", topic, id)
			}
			// Brokers reach each other on the cluster network, which may
			// not be where clients reach them.
			addr := pm.GetLeaderAddress()
			for _, b := range md.GetBrokers() {
				if b.GetId() == pm.GetLeaderId() && b.GetInternalAddress() != "" {
					addr = b.GetInternalAddress()
				}
			}
			conn, err := c.peers.Conn(addr)
			if err != nil {
				return 0, err
			}
			resp, err := stratav1.NewMetadataClient(conn).Metadata(ctx, &stratav1.MetadataRequest{Topics: []string{topic}})
			if err != nil {
				return 0, fmt.Errorf("ask leader %d for %s/%d: %w", pm.GetLeaderId(), topic, id, err)
			}
			for _, rt := range resp.GetTopics() {
				for _, rp := range rt.GetPartitions() {
					if rp.GetPartition() == id && rp.GetHighWatermark() >= 0 {
						return rp.GetHighWatermark(), nil
					}
				}
			}
			return 0, status.Errorf(codes.Unavailable, "leader %d of %s/%d did not report its high watermark", pm.GetLeaderId(), topic, id)
		}
	}
	return 0, fmt.Errorf("%w: %s/%d", group.ErrNoPartition, topic, id)
}
