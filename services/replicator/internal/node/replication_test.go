package node

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/testbroker"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

// replicaBroker adapts a LocalReplica client to applier.Broker.
type replicaBroker struct{ c stratav1.LocalReplicaClient }

func (b replicaBroker) ApplyPartitionState(ctx context.Context, req *stratav1.ApplyPartitionStateRequest) error {
	_, err := b.c.ApplyPartitionState(ctx, req)
	return err
}

// TestReplicationFollowsFailover: three replicators, each with a real
// broker (internal/testbroker). The followers' fetchers copy the leader's records (dialling the
// gossiped internal addresses; the advertised ones do not resolve); when
// the leader's node dies, the controller's new leader is followed in the
// new epoch by the remaining follower; when the old leader returns it
// truncates what it wrote alone and follows too.
func TestReplicationFollowsFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test")
	}
	lg := testutil.Logger(t, zap.WarnLevel)
	c := newCluster(t, 3)
	for _, tn := range c.nodes {
		tn.replica = testbroker.Start(t, c.ca, tn.id, testbroker.Options{})
		c.start(tn, lg)
	}
	c.leader(15 * time.Second)
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})
	topics, _ := c.client(c.nodes[0])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "rep",
		Config: &stratav1.TopicConfig{Partitions: 1, ReplicationFactor: 3}})
	if err != nil {
		t.Fatal(err)
	}
	first := c.nodes[resp.Topic.Partitions[0].LeaderId-1]
	waitLeads(t, first, 0)
	first.replica.Produce("rep", 0, "r0", "r1", "r2", "r3", "r4")
	waitReplicated(t, first, c.running())

	c.kill(first)
	first.replica.Stop()
	var second *testNode
	testutil.Eventually(t, 15*time.Second, func() error {
		p := c.running()[0].node.FSM().State().Topics["rep"].Partitions[0]
		if p.Leader == first.id || p.Leader < 0 || p.LeaderEpoch < 1 {
			return fmt.Errorf("partition %+v", p)
		}
		second = c.nodes[p.Leader-1]
		return nil
	})
	epoch := c.running()[0].node.FSM().State().Topics["rep"].Partitions[0].LeaderEpoch
	waitLeads(t, second, epoch)
	second.replica.Produce("rep", 0, "s5", "s6")
	waitReplicated(t, second, c.running())

	// The old leader returns (its broker restarted on its data directory,
	// with two records it had written in epoch 0 that nobody fetched): it
	// follows, truncates that tail and catches up.
	first.replica.Restart()
	first.replica.Write("rep", 0, testbroker.Record{Epoch: 0, Value: "unacked-1"}, testbroker.Record{Epoch: 0, Value: "unacked-2"})
	c.start(first, lg)
	waitReplicated(t, second, c.running())
	if tr := first.replica.Stats().Truncates; len(tr) != 1 || tr[0].GetOffset() != 5 {
		t.Fatalf("returning broker truncations %v, want one to 5", tr)
	}
	// Every member alive again, so no Serf probe of a dead one is in
	// flight when the test ends.
	c.waitBrokers(15*time.Second, map[int32]bool{1: true, 2: true, 3: true})

	for _, tn := range c.running() {
		if tn == second {
			continue
		}
		if body := scrape(t, tn.node); !strings.Contains(body, `strata_replication_fetch_bytes_total{partition="0",topic="rep"}`) ||
			!strings.Contains(body, `strata_replication_fetchers 1`) {
			t.Fatalf("follower %d metrics lack replication series:\n%s", tn.id, body)
		}
	}
}

// waitLeads waits until tn's broker leads rep/0 in epoch.
func waitLeads(t *testing.T, tn *testNode, epoch int32) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		st, err := tn.replica.Status("rep", 0)
		if err != nil {
			return err
		}
		if st.GetRole() != stratav1.Role_ROLE_LEADER || st.GetLeaderEpoch() != epoch {
			return fmt.Errorf("broker %d is %s in epoch %d", tn.id, st.GetRole(), st.GetLeaderEpoch())
		}
		return nil
	})
}

// waitReplicated waits until every other node's broker holds the leader's
// log and its high watermark reached the log end.
func waitReplicated(t *testing.T, leader *testNode, nodes []*testNode) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		_, want, err := leader.replica.Log("rep", 0)
		if err != nil {
			return err
		}
		for _, tn := range nodes {
			if tn == leader {
				continue
			}
			_, got, err := tn.replica.Log("rep", 0)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("broker %d holds %v, leader %d holds %v", tn.id, got, leader.id, want)
			}
			st, err := tn.replica.Status("rep", 0)
			if err != nil {
				return err
			}
			if st.GetHighWatermark() != int64(len(want)) {
				return fmt.Errorf("broker %d high watermark %d, want %d", tn.id, st.GetHighWatermark(), len(want))
			}
		}
		return nil
	})
}
