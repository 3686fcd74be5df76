// Package cluster is admin's gRPC client of the cluster: the strata.v1
// Topics and Groups services of the nodes given by --cluster-addrs (and
// their Metadata and Log, for offsets), dialled with mutual TLS as
// admin's own identity.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// ErrNoAddrs is returned by Dial without addresses.
var ErrNoAddrs = errors.New("cluster: no addresses")

// TLSFor returns the client TLS config for dialling a server by name (a
// DNS SAN or IP of its certificate), e.g. pki.Reloader.ClientConfig.
type TLSFor func(serverName string) (*tls.Config, error)

// Client is a stratav1.TopicsClient over several nodes. Every node
// forwards topic administration to the controller, so any one will do: a
// call goes to the node that answered last and moves on to the next node
// only when that one is Unavailable (down or unreachable). A create
// whose node fails mid-call may therefore have been applied; the retry on
// the next node then answers AlreadyExists.
//
// A node knows the offsets (log start, log end, high watermark) only of
// the partitions it leads and answers -1 for the others; DescribeTopic
// and ListTopics fill those in from the leaders (see offsets.go).
type Client struct {
	addrs   []string
	conns   []*grpc.ClientConn
	clients []stratav1.TopicsClient
	meta    []stratav1.MetadataClient
	groups  []stratav1.GroupsClient
	logs    []stratav1.LogClient
	next    atomic.Int64 // index of the node to try first
	lg      *zap.Logger
}

// Dial prepares one connection per address (host:port). Connections are
// made lazily, at the first call.
func Dial(addrs []string, tlsFor TLSFor, lg *zap.Logger, opts ...grpc.DialOption) (*Client, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if len(addrs) == 0 {
		return nil, ErrNoAddrs
	}
	c := &Client{lg: lg}
	for _, addr := range addrs {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cluster address %q: %w", addr, err), c.Close())
		}
		tc, err := tlsFor(host)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cluster address %q: tls: %w", addr, err), c.Close())
		}
		conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(tc))}, opts...)...)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cluster address %q: %w", addr, err), c.Close())
		}
		c.addrs = append(c.addrs, addr)
		c.conns = append(c.conns, conn)
		c.clients = append(c.clients, stratav1.NewTopicsClient(conn))
		c.meta = append(c.meta, stratav1.NewMetadataClient(conn))
		c.groups = append(c.groups, stratav1.NewGroupsClient(conn))
		c.logs = append(c.logs, stratav1.NewLogClient(conn))
	}
	return c, nil
}

// Close closes every connection.
func (c *Client) Close() error {
	var errs []error
	for _, conn := range c.conns {
		errs = append(errs, conn.Close())
	}
	return errors.Join(errs...)
}

// call runs f against the nodes in turn, from the last one that answered,
// until one answers anything but Unavailable or every node was tried.
func call[T any](ctx context.Context, c *Client, f func(stratav1.TopicsClient) (T, error)) (T, error) {
	start := int(c.next.Load())
	var (
		res T
		err error
	)
	for i := range c.clients {
		n := (start + i) % len(c.clients)
		res, err = f(c.clients[n])
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			c.next.Store(int64(n))
			return res, err
		}
		c.lg.Info("cluster node unavailable; trying the next", zap.String("addr", c.addrs[n]), zap.Error(err))
	}
	return res, err
}

// CreateTopic implements stratav1.TopicsClient.
func (c *Client) CreateTopic(ctx context.Context, in *stratav1.CreateTopicRequest, opts ...grpc.CallOption) (*stratav1.CreateTopicResponse, error) {
	return call(ctx, c, func(tc stratav1.TopicsClient) (*stratav1.CreateTopicResponse, error) {
		return tc.CreateTopic(ctx, in, opts...)
	})
}

// DeleteTopic implements stratav1.TopicsClient.
func (c *Client) DeleteTopic(ctx context.Context, in *stratav1.DeleteTopicRequest, opts ...grpc.CallOption) (*stratav1.DeleteTopicResponse, error) {
	return call(ctx, c, func(tc stratav1.TopicsClient) (*stratav1.DeleteTopicResponse, error) {
		return tc.DeleteTopic(ctx, in, opts...)
	})
}

// DescribeTopic implements stratav1.TopicsClient, with every partition's
// offsets from its leader.
func (c *Client) DescribeTopic(ctx context.Context, in *stratav1.DescribeTopicRequest, opts ...grpc.CallOption) (*stratav1.DescribeTopicResponse, error) {
	resp, err := call(ctx, c, func(tc stratav1.TopicsClient) (*stratav1.DescribeTopicResponse, error) {
		return tc.DescribeTopic(ctx, in, opts...)
	})
	if err != nil {
		return nil, err
	}
	c.fillOffsets(ctx, resp.GetTopic())
	return resp, nil
}

// ListTopics implements stratav1.TopicsClient, with every partition's
// offsets from its leader.
func (c *Client) ListTopics(ctx context.Context, in *stratav1.ListTopicsRequest, opts ...grpc.CallOption) (*stratav1.ListTopicsResponse, error) {
	resp, err := call(ctx, c, func(tc stratav1.TopicsClient) (*stratav1.ListTopicsResponse, error) {
		return tc.ListTopics(ctx, in, opts...)
	})
	if err != nil {
		return nil, err
	}
	c.fillOffsets(ctx, resp.GetTopics()...)
	return resp, nil
}

// AlterTopicConfig implements stratav1.TopicsClient.
func (c *Client) AlterTopicConfig(ctx context.Context, in *stratav1.AlterTopicConfigRequest, opts ...grpc.CallOption) (*stratav1.AlterTopicConfigResponse, error) {
	return call(ctx, c, func(tc stratav1.TopicsClient) (*stratav1.AlterTopicConfigResponse, error) {
		return tc.AlterTopicConfig(ctx, in, opts...)
	})
}

var _ stratav1.TopicsClient = (*Client)(nil)
