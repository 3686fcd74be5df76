package client

import (
	"context"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// OffsetForTime returns the first offset of a partition whose record has
// a timestamp at or after t, as its leader finds it; the high watermark
// (the end a consumer can read) when the partition is empty or its last
// record is older than t.
//
// The leader answers a ConsumeStream started at a time with the records
// from that offset, or waits at the end when there is none; reading the
// last record first tells the two apart without waiting. (With producer
// timestamps out of order, a record older than its predecessors at the
// end makes the answer the end.)
func (c *Client) OffsetForTime(ctx context.Context, topic string, partition int32, t time.Time) (int64, error) {
	start, hw, err := c.PartitionOffsets(ctx, topic, partition)
	if err != nil || hw <= start {
		return hw, err
	}
	addr, err := c.leader(ctx, topic, partition)
	if err != nil {
		return 0, err
	}
	cc, err := c.conn(addr)
	if err != nil {
		return 0, err
	}
	rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	log := stratav1.NewLogClient(cc)
	last, err := log.Consume(rctx, &stratav1.ConsumeRequest{Topic: topic, Partition: partition, Offset: hw - 1, MaxRecords: 1})
	if err != nil {
		return 0, fromStatus(err)
	}
	if recs := last.GetRecords(); len(recs) == 0 || recs[0].GetTimestampMs() < t.UnixMilli() {
		return hw, nil
	}
	st, err := log.ConsumeStream(rctx, &stratav1.ConsumeStreamRequest{Topic: topic, Partition: partition,
		Start: &stratav1.ConsumeStreamRequest_TimestampMs{TimestampMs: t.UnixMilli()}, MaxBatchRecords: 1})
	if err != nil {
		return 0, fromStatus(err)
	}
	resp, err := st.Recv()
	if err != nil {
		return 0, fromStatus(err)
	}
	if recs := resp.GetRecords(); len(recs) > 0 {
		return recs[0].GetOffset(), nil
	}
	return resp.GetNextOffset(), nil
}
