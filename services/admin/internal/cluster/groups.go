package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Consumer groups. Each group has one coordinator, a broker; every call
// but ListGroups must reach it, and any other broker refuses with
// FailedPrecondition and a NotCoordinator detail naming it. The address
// it names is the one advertised to clients, which admin may not reach
// (in compose, the host's published ports), so a call goes to the nodes
// of --cluster-addrs in turn: first the one at the named address when
// admin has it, else the next, until one is the coordinator.

// ListGroups asks every node at once for the groups it coordinates and
// merges the answers, by name. unreached names the nodes that did not
// answer (the groups they coordinate are missing); err is set only when
// none answered.
func (c *Client) ListGroups(ctx context.Context) (groups []*stratav1.GroupSummary, unreached []string, err error) {
	ctx, cancel := context.WithTimeout(ctx, offsetsTimeout)
	defer cancel()
	answers := make([]*stratav1.ListGroupsResponse, len(c.groups))
	errs := make([]error, len(c.groups))
	var wg sync.WaitGroup
	for i, gc := range c.groups {
		wg.Go(func() { answers[i], errs[i] = gc.ListGroups(ctx, &stratav1.ListGroupsRequest{}) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, resp := range answers {
		if errs[i] != nil {
			c.lg.Info("list groups: node did not answer", zap.String("addr", c.addrs[i]), zap.Error(errs[i]))
			unreached = append(unreached, c.addrs[i])
			continue
		}
		for _, g := range resp.GetGroups() {
			if !seen[g.GetGroup()] {
				seen[g.GetGroup()] = true
				groups = append(groups, g)
			}
		}
	}
	if len(unreached) == len(c.groups) {
		return nil, unreached, errs[0]
	}
	slices.SortFunc(groups, func(a, b *stratav1.GroupSummary) int { return strings.Compare(a.GetGroup(), b.GetGroup()) })
	return groups, unreached, nil
}

// DescribeGroup answers a group's members, assignment and committed
// offsets, from its coordinator.
func (c *Client) DescribeGroup(ctx context.Context, group string) (*stratav1.DescribeGroupResponse, error) {
	return atCoordinator(ctx, c, group, func(gc stratav1.GroupsClient) (*stratav1.DescribeGroupResponse, error) {
		return gc.DescribeGroup(ctx, &stratav1.DescribeGroupRequest{Group: group})
	})
}

// FetchOffsets answers a group's committed offsets of topics (every
// topic when none); a group the coordinator does not know has none.
func (c *Client) FetchOffsets(ctx context.Context, group string, topics ...string) ([]*stratav1.PartitionOffset, error) {
	resp, err := atCoordinator(ctx, c, group, func(gc stratav1.GroupsClient) (*stratav1.FetchOffsetsResponse, error) {
		return gc.FetchOffsets(ctx, &stratav1.FetchOffsetsRequest{Group: group, Topics: topics})
	})
	return resp.GetOffsets(), err
}

// DeleteGroup deletes a group without members and its offsets.
func (c *Client) DeleteGroup(ctx context.Context, group string) error {
	_, err := atCoordinator(ctx, c, group, func(gc stratav1.GroupsClient) (*stratav1.DeleteGroupResponse, error) {
		return gc.DeleteGroup(ctx, &stratav1.DeleteGroupRequest{Group: group})
	})
	return err
}

// ResetOffsets stores a group's offsets, resolved by the caller.
func (c *Client) ResetOffsets(ctx context.Context, req *stratav1.ResetOffsetsRequest) error {
	_, err := atCoordinator(ctx, c, req.GetGroup(), func(gc stratav1.GroupsClient) (*stratav1.ResetOffsetsResponse, error) {
		return gc.ResetOffsets(ctx, req)
	})
	return err
}

// atCoordinator runs f at the node coordinating group: each node in turn
// until one answers anything but Unavailable or a NotCoordinator refusal.
// When every node refused, the answer is Unavailable naming the
// coordinator the last one named (the coordinator may be moving, or be a
// broker admin is not given).
func atCoordinator[T any](ctx context.Context, c *Client, group string, f func(stratav1.GroupsClient) (T, error)) (T, error) {
	var (
		res   T
		err   error
		named *stratav1.NotCoordinator
	)
	tried := make([]bool, len(c.groups))
	n := 0
	for range c.groups {
		tried[n] = true
		res, err = f(c.groups[n])
		nc := notCoordinator(err)
		if nc == nil && (status.Code(err) != codes.Unavailable || ctx.Err() != nil) {
			return res, err
		}
		if nc != nil {
			named = nc
		}
		c.lg.Debug("not the group's coordinator; trying the next node", zap.String("group", group),
			zap.String("addr", c.addrs[n]), zap.Error(err))
		n = c.nextNode(tried, n, nc)
		if n < 0 {
			break
		}
	}
	if named != nil {
		addr := named.GetCoordinatorAddress()
		if addr == "" {
			addr = "none yet"
		}
		return res, status.Errorf(codes.Unavailable, "no node of admin's --cluster-addrs coordinates group %q (the cluster names broker %d, address %s)",
			group, named.GetCoordinatorId(), addr)
	}
	return res, err
}

// nextNode picks the node to try after from: the one at the address a
// NotCoordinator named when admin has it and has not tried it, else the
// next untried; -1 when every node was tried.
func (c *Client) nextNode(tried []bool, from int, nc *stratav1.NotCoordinator) int {
	if nc != nil {
		if i := slices.Index(c.addrs, nc.GetCoordinatorAddress()); i >= 0 && !tried[i] {
			return i
		}
	}
	for k := 1; k <= len(tried); k++ {
		if i := (from + k) % len(tried); !tried[i] {
			return i
		}
	}
	return -1
}

// notCoordinator returns the NotCoordinator detail of a FailedPrecondition
// answer, or nil.
func notCoordinator(err error) *stratav1.NotCoordinator {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.FailedPrecondition {
		return nil
	}
	for _, d := range st.Details() {
		if nc, ok := d.(*stratav1.NotCoordinator); ok {
			return nc
		}
	}
	return nil
}

// OffsetForTime answers the offset of the first record of a partition
// with a timestamp at or after t, read at the partition's leader, or its
// high watermark when the newest record is older (the broker's own rule
// for a consumer starting at a time).
func (c *Client) OffsetForTime(ctx context.Context, topic string, partition int32, t time.Time) (int64, error) {
	l, ok := c.leaders(ctx, topic)[partitionKey{topic, partition}]
	if !ok {
		return 0, status.Errorf(codes.Unavailable, "no node of admin's --cluster-addrs leads %s/%d", topic, partition)
	}
	start, hw := l.p.GetLogStartOffset(), l.p.GetHighWatermark()
	if hw <= start {
		return hw, nil
	}
	ms := t.UnixMilli()
	// A record may be as large as a topic allows.
	big := grpc.MaxCallRecvMsgSize(stratav1.MaxMessageBytes)
	// The newest record settles a time past it without opening a stream,
	// which would wait for a record to come.
	last, err := c.logs[l.node].Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, Partition: partition, Offset: hw - 1, MaxRecords: 1, MaxBytes: 1}, big)
	if err != nil {
		return 0, annotate(err, "read the newest record of %s/%d", topic, partition)
	}
	if recs := last.GetRecords(); len(recs) == 0 || recs[len(recs)-1].GetTimestampMs() < ms {
		return hw, nil
	}
	// A record at or after t is below the high watermark: the stream that
	// starts at t sends it at once.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.logs[l.node].ConsumeStream(sctx, &stratav1.ConsumeStreamRequest{Topic: topic, Partition: partition,
		Start: &stratav1.ConsumeStreamRequest_TimestampMs{TimestampMs: ms}, MaxBatchRecords: 1, MaxBatchBytes: 1}, big)
	if err != nil {
		return 0, annotate(err, "find the offset of %s/%d at %s", topic, partition, t.Format(time.RFC3339))
	}
	msg, err := stream.Recv()
	if err != nil {
		return 0, annotate(err, "find the offset of %s/%d at %s", topic, partition, t.Format(time.RFC3339))
	}
	if recs := msg.GetRecords(); len(recs) > 0 {
		return recs[0].GetOffset(), nil
	}
	return msg.GetNextOffset(), nil
}

// annotate prefixes a gRPC error's message with what admin was doing,
// keeping its code.
func annotate(err error, format string, args ...any) error {
	st := status.Convert(err)
	return status.Error(st.Code(), fmt.Sprintf(format, args...)+": "+st.Message())
}
