package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

const topic = "orders"

// acked is one acknowledged record.
type acked struct {
	partition int32
	offset    int64
	value     string
}

// produceAll produces n records with acks=ALL, each value unique, and
// returns every acknowledgement. Any failure fails the test: the cluster
// has a quorum throughout.
func produceAll(t *testing.T, cl *client.Client, prefix string, n int) []acked {
	t.Helper()
	p, err := cl.NewProducer(client.ProducerOptions{Acks: client.AcksAll, DeliveryTimeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		acks []acked
		errs []error
		wg   sync.WaitGroup
	)
	for i := range n {
		v := fmt.Sprintf("%s-%06d", prefix, i)
		wg.Add(1)
		p.ProduceCallback(ctx, &client.Record{Topic: topic, Key: []byte(v), Value: []byte(v)}, func(md client.RecordMetadata, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v, err))
				return
			}
			acks = append(acks, acked{md.Partition, md.Offset, v})
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d acks=ALL produces failed; first: %v", len(errs), n, errs[0])
	}
	return acks
}

// describe returns the topic's partitions as the cluster sees them.
func describe(cl *client.Client) ([]*stratav1.PartitionMetadata, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	md, err := cl.DescribeTopic(ctx, topic)
	if err != nil {
		return nil, err
	}
	return md.GetPartitions(), nil
}

// waitFullISR waits until every partition has a leader and all three
// replicas in its ISR.
func waitFullISR(t *testing.T, cl *client.Client, d time.Duration) []*stratav1.PartitionMetadata {
	t.Helper()
	var ps []*stratav1.PartitionMetadata
	eventually(t, d, func() error {
		var err error
		if ps, err = describe(cl); err != nil {
			return err
		}
		for _, p := range ps {
			if p.GetLeaderId() < 0 || len(p.GetIsr()) != 3 {
				return fmt.Errorf("partition %d: leader %d, ISR %v", p.GetPartition(), p.GetLeaderId(), p.GetIsr())
			}
		}
		return nil
	})
	return ps
}

// checkReplicas reads every partition from every live node and checks
// that all copies are identical and hold every acknowledged record at its
// offset.
func (c *cluster) checkReplicas(t *testing.T, acks []acked, partitions int32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	byOffset := map[int32]map[int64]string{}
	for _, a := range acks {
		if byOffset[a.partition] == nil {
			byOffset[a.partition] = map[int64]string{}
		}
		byOffset[a.partition][a.offset] = a.value
	}
	for p := range partitions {
		// Followers copy asynchronously: wait until every copy has the same end.
		var copies [][]*stratav1.Record
		eventually(t, 30*time.Second, func() error {
			copies = copies[:0]
			var ends []int64
			for _, n := range c.nodes {
				recs, resp, err := readAll(ctx, c.replica(n), topic, p)
				if err != nil {
					return fmt.Errorf("node %d partition %d: %w", n.id, p, err)
				}
				copies = append(copies, recs)
				ends = append(ends, resp.GetLogEndOffset())
			}
			if slices.Min(ends) != slices.Max(ends) {
				return fmt.Errorf("partition %d: log ends %v differ", p, ends)
			}
			return nil
		})
		for i := 1; i < len(copies); i++ {
			if len(copies[i]) != len(copies[0]) {
				t.Fatalf("partition %d: node %d has %d records, node 1 has %d", p, i+1, len(copies[i]), len(copies[0]))
			}
			for j := range copies[0] {
				a, b := copies[0][j], copies[i][j]
				if a.GetOffset() != b.GetOffset() || string(a.GetValue()) != string(b.GetValue()) || a.GetLeaderEpoch() != b.GetLeaderEpoch() {
					t.Fatalf("partition %d diverges at index %d: node 1 %d/%q/e%d, node %d %d/%q/e%d", p, j,
						a.GetOffset(), a.GetValue(), a.GetLeaderEpoch(), i+1, b.GetOffset(), b.GetValue(), b.GetLeaderEpoch())
				}
			}
		}
		have := map[int64]string{}
		for _, r := range copies[0] {
			have[r.GetOffset()] = string(r.GetValue())
		}
		for off, v := range byOffset[p] {
			if have[off] != v {
				t.Fatalf("acknowledged record lost: partition %d offset %d %q (replica holds %q)", p, off, v, have[off])
			}
		}
	}
}

// TestReplicationAndFailover is the cluster's central end-to-end test:
// acks=ALL records reach every replica at the same offsets; killing the
// node that leads partition 0 moves every leadership it had to an ISR
// member with a higher epoch; producing goes on; the node comes back,
// catches up, rejoins the ISR; no acknowledged record is lost and the
// copies are identical.
func TestReplicationAndFailover(t *testing.T) {
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 3, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	before := waitFullISR(t, cl, 30*time.Second)
	acks := produceAll(t, cl, "a", 600)
	c.checkReplicas(t, acks, 3)

	// Kill the node leading partition 0, hard.
	victim := before[0].GetLeaderId()
	led := map[int32]int32{} // partition -> epoch, for those the victim led
	for _, p := range before {
		if p.GetLeaderId() == victim {
			led[p.GetPartition()] = p.GetLeaderEpoch()
		}
	}
	killed := time.Now()
	c.stop(c.nodes[victim-1], syscall.SIGKILL)
	cl2 := c.client(int(victim))
	eventually(t, 10*time.Second, func() error {
		ps, err := describe(cl2)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if e, ok := led[p.GetPartition()]; ok {
				if p.GetLeaderId() == victim || p.GetLeaderId() < 0 || p.GetLeaderEpoch() <= e {
					return fmt.Errorf("partition %d: leader %d epoch %d (was %d in %d)", p.GetPartition(), p.GetLeaderId(), p.GetLeaderEpoch(), victim, e)
				}
				if !slices.Contains(before[p.GetPartition()].GetIsr(), p.GetLeaderId()) {
					return fmt.Errorf("partition %d: new leader %d was not in the ISR %v", p.GetPartition(), p.GetLeaderId(), before[p.GetPartition()].GetIsr())
				}
			}
		}
		return nil
	})
	t.Logf("leadership moved off node %d in %s", victim, time.Since(killed).Round(10*time.Millisecond))

	acks = append(acks, produceAll(t, cl2, "b", 600)...)

	c.start(c.nodes[victim-1])
	waitFullISR(t, cl2, 60*time.Second)
	acks = append(acks, produceAll(t, cl2, "c", 300)...)
	c.checkReplicas(t, acks, 3)
}
