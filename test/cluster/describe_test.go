package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// TestDescribeOffsetsFromEveryLeader: whichever broker answers, a topic's
// description carries every partition's log start, log end and high
// watermark as its leader knows them, not only those of the partitions
// the answering broker leads (the others' were reported as 0).
func TestDescribeOffsetsFromEveryLeader(t *testing.T) {
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 3, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	waitFullISR(t, cl, 30*time.Second)
	// Each node leads one partition once the controller has placed its
	// preferred leaders: then two of the three are led elsewhere than on
	// the broker that answers.
	eventually(t, 30*time.Second, func() error {
		ps, err := describe(cl)
		if err != nil {
			return err
		}
		leaders := map[int32]bool{}
		for _, p := range ps {
			leaders[p.GetLeaderId()] = true
		}
		if len(leaders) != 3 {
			return fmt.Errorf("leaders %v, want one partition on each node", leaders)
		}
		return nil
	})

	acks := produceAll(t, cl, "d", 600)
	want := map[int32]int64{} // partition -> records, all acknowledged (acks=ALL): log end = HW
	for _, a := range acks {
		want[a.partition]++
	}
	ps, err := describe(cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		n := want[p.GetPartition()]
		if p.GetLogStartOffset() != 0 || p.GetLogEndOffset() != n || p.GetHighWatermark() != n {
			t.Errorf("partition %d (leader %d): log start %d, log end %d, HW %d; want 0, %d, %d",
				p.GetPartition(), p.GetLeaderId(), p.GetLogStartOffset(), p.GetLogEndOffset(), p.GetHighWatermark(), n, n)
		}
	}
}
