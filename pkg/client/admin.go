package client

import (
	"context"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
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

// DescribeTopic returns a topic's config and partitions.
func (c *Client) DescribeTopic(ctx context.Context, name string) (*TopicMetadata, error) {
	var resp *stratav1.DescribeTopicResponse
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewTopicsClient(cc).DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: name})
		return err
	})
	return resp.GetTopic(), err
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
// partition, asked from its leader.
func (c *Client) PartitionOffsets(ctx context.Context, topic string, partition int32) (start, hw int64, err error) {
	addr, err := c.leader(ctx, topic, partition)
	if err != nil {
		return 0, 0, err
	}
	cc, err := c.conn(addr)
	if err != nil {
		return 0, 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	resp, err := stratav1.NewMetadataClient(cc).Metadata(rctx, &stratav1.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, 0, fromStatus(err)
	}
	for _, t := range resp.GetTopics() {
		for _, p := range t.GetPartitions() {
			if t.GetName() == topic && p.GetPartition() == partition {
				return p.GetLogStartOffset(), p.GetHighWatermark(), nil
			}
		}
	}
	return 0, 0, ErrPartitionNotFound
}
