package client

import (
	"context"
	"sync"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// TopicConfig is a topic's settings (partitions, replication factor,
// retention, fsync policy ...); zero fields mean the broker defaults.
type TopicConfig = stratav1.TopicConfig

// TopicMetadata describes a topic and its partitions.
type TopicMetadata = stratav1.TopicMetadata

// CreateTopic creates a topic and refreshes the metadata cache.
func (c *Client) CreateTopic(ctx context.Context, name string, cfg *TopicConfig) (*TopicMetadata, error) {
	var resp *stratav1.CreateTopicResponse
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewTopicsClient(cc).CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: name, Config: cfg})
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetTopic(), c.RefreshMetadata(ctx)
}

// DeleteTopic deletes a topic.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := stratav1.NewTopicsClient(cc).DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return err
	}
	return c.RefreshMetadata(ctx)
}

// DescribeTopic returns a topic's config and partitions with their
// offsets. A broker knows the offsets only of the partitions it leads, so
// those of the others are asked of their leaders, one request per leader.
// Offsets no leader reported (the partition is offline, its leader did not
// answer or no longer leads it) are -1.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*TopicMetadata, error) {
	var resp *stratav1.DescribeTopicResponse
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewTopicsClient(cc).DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: name})
		return err
	})
	if err != nil {
		return nil, err
	}
	tm := resp.GetTopic()
	c.fillOffsets(ctx, tm)
	return tm, nil
}

// offsetsKnown reports whether the broker that answered filled in a
// partition's offsets, which it does only for the partitions it leads.
func offsetsKnown(p *stratav1.PartitionMetadata) bool {
	return p.GetLogStartOffset() >= 0 && p.GetLogEndOffset() >= 0 && p.GetHighWatermark() >= 0
}

// fillOffsets asks the leaders of tm's partitions whose offsets are
// unknown for them, all leaders at once. A leader that fails to answer
// leaves its partitions' offsets unknown (-1): the rest of the
// description is still worth returning.
func (c *Client) fillOffsets(ctx context.Context, tm *TopicMetadata) {
	byLeader := make(map[string][]*stratav1.PartitionMetadata)
	for _, p := range tm.GetPartitions() {
		if offsetsKnown(p) {
			continue
		}
		p.LogStartOffset, p.LogEndOffset, p.HighWatermark = -1, -1, -1
		if p.GetOffline() || p.GetLeaderId() < 0 || p.GetLeaderAddress() == "" {
			continue
		}
		byLeader[p.GetLeaderAddress()] = append(byLeader[p.GetLeaderAddress()], p)
	}
	var wg sync.WaitGroup
	for addr, ps := range byLeader {
		wg.Go(func() {
			known, err := c.leaderOffsets(ctx, addr, tm.GetName())
			if err != nil {
				c.lg.Debug("partition offsets not known", zap.String("topic", tm.GetName()), zap.String("leader", addr), zap.Error(err))
				return
			}
			for _, p := range ps {
				if q, ok := known[p.GetPartition()]; ok {
					p.LogStartOffset, p.LogEndOffset, p.HighWatermark = q.GetLogStartOffset(), q.GetLogEndOffset(), q.GetHighWatermark()
				}
			}
		})
	}
	wg.Wait()
}

// leaderOffsets asks the broker at addr for a topic's metadata and returns
// the partitions whose offsets it knows, by partition id: those it leads.
func (c *Client) leaderOffsets(ctx context.Context, addr, topic string) (map[int32]*stratav1.PartitionMetadata, error) {
	cc, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	resp, err := stratav1.NewMetadataClient(cc).Metadata(rctx, &stratav1.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fromStatus(err)
	}
	known := make(map[int32]*stratav1.PartitionMetadata)
	for _, t := range resp.GetTopics() {
		if t.GetName() != topic {
			continue
		}
		for _, p := range t.GetPartitions() {
			if offsetsKnown(p) {
				known[p.GetPartition()] = p
			}
		}
	}
	return known, nil
}

// ListTopics returns every topic.
func (c *Client) ListTopics(ctx context.Context) ([]*TopicMetadata, error) {
	var resp *stratav1.ListTopicsResponse
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewTopicsClient(cc).ListTopics(ctx, &stratav1.ListTopicsRequest{})
		return err
	})
	return resp.GetTopics(), err
}

// AlterTopicConfig replaces the non-zero fields of a topic's config.
func (c *Client) AlterTopicConfig(ctx context.Context, name string, cfg *TopicConfig) (*TopicMetadata, error) {
	var resp *stratav1.AlterTopicConfigResponse
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewTopicsClient(cc).AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: name, Config: cfg})
		return err
	})
	return resp.GetTopic(), err
}

// Partitions returns the number of partitions of a topic (from the cache).
func (c *Client) Partitions(ctx context.Context, topic string) (int32, error) {
	t, err := c.topic(ctx, topic)
	if err != nil {
		return 0, err
	}
	return int32(len(t.GetPartitions())), nil
}

// PartitionOffsets returns the log start offset and high watermark of a
// partition, asked from its leader. When the cached leader no longer
// leads it, the metadata is refreshed and the new leader asked once; a
// second miss is a NotLeaderError.
func (c *Client) PartitionOffsets(ctx context.Context, topic string, partition int32) (start, hw int64, err error) {
	for attempt := 0; ; attempt++ {
		addr, err := c.leader(ctx, topic, partition)
		if err != nil {
			return 0, 0, err
		}
		known, err := c.leaderOffsets(ctx, addr, topic)
		if err != nil {
			return 0, 0, err
		}
		if p, ok := known[partition]; ok {
			return p.GetLogStartOffset(), p.GetHighWatermark(), nil
		}
		if attempt > 0 {
			return 0, 0, &NotLeaderError{Topic: topic, Partition: partition, LeaderID: -1}
		}
		if err := c.RefreshMetadata(ctx); err != nil {
			return 0, 0, err
		}
	}
}
