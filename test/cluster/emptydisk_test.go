package cluster

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestEmptyDataDirRejoinsAsFollower replaces the disk of the node leading
// partition 0: its broker and replicator are killed, the broker's data
// directory is removed, and both start again at once, before the others
// declare the node failed. The node must not lead with its empty log, no
// replica may fall below the acknowledged records (a follower truncating
// to an empty leader's end), and once it has copied the partition back
// the ISR is full and every copy holds every acknowledged record.
func TestEmptyDataDirRejoinsAsFollower(t *testing.T) {
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	before := waitFullISR(t, cl, 30*time.Second)
	acks := produceAll(t, cl, "a", 300)
	c.checkReplicas(t, acks, 1)
	var end int64
	for _, a := range acks {
		end = max(end, a.offset+1)
	}

	victim := c.nodes[before[0].GetLeaderId()-1]
	c.stop(victim, syscall.SIGKILL)
	if err := os.RemoveAll(victim.brokerDir); err != nil {
		t.Fatal(err)
	}

	// Watch every node's copy of partition 0 from the restart to the end
	// of the test; a violation is reported even when a later check fails.
	var (
		mu         sync.Mutex
		violations []string
	)
	rcs := make([]stratav1.ReplicaToolsClient, len(c.nodes)) // one connection each: the brokers cap connections per address
	for i, n := range c.nodes {
		rcs[i] = c.replica(n)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			for i, n := range c.nodes {
				cctx, ccancel := context.WithTimeout(ctx, time.Second)
				st, err := rcs[i].PartitionStatus(cctx, &stratav1.PartitionStatusRequest{Topic: topic, Partition: 0})
				ccancel()
				if err != nil {
					continue // not started yet, or the partition not created yet
				}
				var v string
				switch {
				case n == victim && st.GetRole() == stratav1.Role_ROLE_LEADER && st.GetLogEndOffset() < end:
					v = fmt.Sprintf("node %d leads in epoch %d with log end %d < %d acknowledged", n.id, st.GetLeaderEpoch(), st.GetLogEndOffset(), end)
				case n != victim && st.GetLogEndOffset() < end:
					v = fmt.Sprintf("node %d (%s, epoch %d) truncated to %d < %d acknowledged", n.id, st.GetRole(), st.GetLeaderEpoch(), st.GetLogEndOffset(), end)
				}
				if v != "" {
					mu.Lock()
					violations = append(violations, v)
					mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() {
		close(done)
		wg.Wait()
		if len(violations) > 0 {
			t.Errorf("%d violations, first: %s", len(violations), violations[0])
		}
	}()
	c.start(victim)
	cl2 := c.client()
	waitFullISR(t, cl2, 60*time.Second)
	// The acknowledged records are readable from the leader, and every
	// copy, the refilled one included, is identical.
	c.checkReplicas(t, acks, 1)
	acks = append(acks, produceAll(t, cl2, "b", 100)...)
	c.checkReplicas(t, acks, 1)
	waitFullISR(t, cl2, 30*time.Second)
}
