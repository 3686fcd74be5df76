package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// GroupSummary is one consumer group as ListGroups reports it.
type GroupSummary = stratav1.GroupSummary

// GroupDescription is a group's members, assignments and committed
// offsets as its coordinator reports them.
type GroupDescription = stratav1.DescribeGroupResponse

// PartitionOffset is a committed offset: the next offset the group
// consumes in a partition.
type PartitionOffset = stratav1.PartitionOffset

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// coordinatorRetries bounds the attempts of a call routed to a group's
// coordinator: a coordinator that moved is followed, and one that is not
// there yet (the offsets topic is created on the first group call, and a
// new leader loads the group's state) is waited for with backoff, about
// 6 s in all.
const coordinatorRetries = 10

// FindCoordinator asks any broker which broker coordinates group. While
// the group's offsets partition has no leader (the offsets topic is
// created on the first group call) it waits and asks again, a few
// seconds at most.
func (c *Client) FindCoordinator(ctx context.Context, group string) (*stratav1.FindCoordinatorResponse, error) {
	var resp *stratav1.FindCoordinatorResponse
	for attempt := 0; ; attempt++ {
		err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
			var err error
			resp, err = stratav1.NewGroupsClient(cc).FindCoordinator(ctx, &stratav1.FindCoordinatorRequest{Group: group})
			return err
		})
		if err == nil {
			return resp, nil
		}
		if !IsRetriable(err) || attempt == coordinatorRetries {
			return nil, err
		}
		if err := c.backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// backoff waits before retry number attempt of a coordinator call.
func (c *Client) backoff(ctx context.Context, attempt int) error {
	t := time.NewTimer(retryDelay(attempt, 50*time.Millisecond, time.Second))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.ctx.Done():
		return ErrClosed
	}
}

// groupCall runs a unary call against group's coordinator: addr when it
// is known, else the one FindCoordinator names. It follows a
// NotCoordinator answer to the broker it names and retries Unavailable.
// It returns the address that answered.
func (c *Client) groupCall(ctx context.Context, group, addr string, call func(context.Context, *grpc.ClientConn) error) (string, error) {
	for attempt := 0; ; attempt++ {
		if addr == "" {
			fc, err := c.FindCoordinator(ctx, group)
			if err != nil {
				return "", err
			}
			addr = fc.GetCoordinatorAddress()
		}
		cc, err := c.conn(addr)
		if err != nil {
			return "", err
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		err = call(rctx, cc)
		cancel()
		if err == nil {
			return addr, nil
		}
		err = fromStatus(err)
		if ctx.Err() != nil || !IsRetriable(err) || attempt == coordinatorRetries {
			return "", err
		}
		var nc *NotCoordinatorError
		addr = ""
		if errors.As(err, &nc) && nc.CoordinatorID >= 0 && attempt == 0 {
			addr = nc.CoordinatorAddress // moved: go there at once
			continue
		}
		c.lg.Debug("group call failed; retrying", zap.String("group", group), zap.Error(err))
		if err := c.backoff(ctx, attempt); err != nil {
			return "", err
		}
	}
}

// groupErr is a group call's error with NotFound meaning the group.
func groupErr(group string, err error) error {
	if Code(err) == codes.NotFound {
		return fmt.Errorf("%w: %q", ErrGroupNotFound, group)
	}
	return err
}

// ListGroups asks every broker for the groups it coordinates and merges
// the answers, sorted by name. Brokers that did not answer are named in
// the error, which comes with the groups of those that did.
func (c *Client) ListGroups(ctx context.Context) ([]*GroupSummary, error) {
	if err := c.RefreshMetadata(ctx); err != nil {
		return nil, err
	}
	addrs := c.brokerAddrs()
	type answer struct {
		addr string
		resp *stratav1.ListGroupsResponse
		err  error
	}
	answers := make([]answer, len(addrs))
	var wg sync.WaitGroup
	for i, addr := range addrs {
		wg.Go(func() {
			answers[i].addr = addr
			cc, err := c.conn(addr)
			if err != nil {
				answers[i].err = err
				return
			}
			rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
			defer cancel()
			answers[i].resp, answers[i].err = stratav1.NewGroupsClient(cc).ListGroups(rctx, &stratav1.ListGroupsRequest{})
		})
	}
	wg.Wait()
	byName := map[string]*GroupSummary{}
	var errs []error
	for _, a := range answers {
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.addr, fromStatus(a.err)))
			continue
		}
		for _, g := range a.resp.GetGroups() {
			// During a failover two brokers may both still list a group
			// for a moment; one entry is kept.
			if _, dup := byName[g.GetGroup()]; !dup {
				byName[g.GetGroup()] = g
			}
		}
	}
	out := make([]*GroupSummary, 0, len(byName))
	for _, g := range byName {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *GroupSummary) int {
		switch {
		case a.GetGroup() < b.GetGroup():
			return -1
		case a.GetGroup() > b.GetGroup():
			return 1
		}
		return 0
	})
	if len(errs) > 0 && len(errs) == len(addrs) {
		return nil, errors.Join(errs...)
	}
	return out, errors.Join(errs...)
}

// DescribeGroup asks a group's coordinator for its members, their
// assignments and its committed offsets. An unknown group is
// ErrGroupNotFound.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*GroupDescription, error) {
	var resp *stratav1.DescribeGroupResponse
	_, err := c.groupCall(ctx, group, "", func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewGroupsClient(cc).DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: group})
		return err
	})
	if err != nil {
		return nil, groupErr(group, err)
	}
	return resp, nil
}

// DeleteGroup deletes a group without members and its committed offsets.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	_, err := c.groupCall(ctx, group, "", func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := stratav1.NewGroupsClient(cc).DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: group})
		return err
	})
	return groupErr(group, err)
}

// FetchGroupOffsets returns a group's committed offsets for topics (every
// topic when none are named). A group without any has none.
func (c *Client) FetchGroupOffsets(ctx context.Context, group string, topics ...string) ([]*PartitionOffset, error) {
	offs, _, err := c.fetchGroupOffsets(ctx, group, "", topics)
	return offs, err
}

func (c *Client) fetchGroupOffsets(ctx context.Context, group, addr string, topics []string) ([]*PartitionOffset, string, error) {
	var resp *stratav1.FetchOffsetsResponse
	addr, err := c.groupCall(ctx, group, addr, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewGroupsClient(cc).FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: group, Topics: topics})
		return err
	})
	return resp.GetOffsets(), addr, err
}

// ResetGroupOffsets stores offsets as a group's committed offsets. The
// coordinator refuses it while the group has members unless force is
// set; members then keep their positions until their next rebalance.
func (c *Client) ResetGroupOffsets(ctx context.Context, group string, offsets []*PartitionOffset, force bool) error {
	_, err := c.groupCall(ctx, group, "", func(ctx context.Context, cc *grpc.ClientConn) error {
		_, err := stratav1.NewGroupsClient(cc).ResetOffsets(ctx, &stratav1.ResetOffsetsRequest{Group: group, Offsets: offsets, Force: force})
		return err
	})
	return err
}
