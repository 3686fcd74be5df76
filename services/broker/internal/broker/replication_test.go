package broker

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// pair is two cluster-mode brokers: broker-1 leads "events" partition 0 and
// broker-2 follows. The test plays both replicators: it applies the states
// and copies records the way a fetcher does (Fetch from the leader as
// replicator-2, Append into broker-2).
type pair struct {
	t                *testing.T
	certs            string
	leader, follower *Broker
	rep1, rep2       replicaClients // as replicator-1 / replicator-2
	op1              clients        // operator on the leader
}

func newPair(t *testing.T, isr []int32, minISR int32) *pair {
	t.Helper()
	certs := initClusterCerts(t)
	fr := startFakeReplicator(t, certs)
	pr := &pair{t: t, certs: certs,
		leader: startNodeBroker(t, certs, 1, fr.addr), follower: startNodeBroker(t, certs, 2, fr.addr)}
	pr.rep1 = replicaClient(t, pr.leader, certs, "replicator-1")
	pr.rep2 = replicaClient(t, pr.follower, certs, "replicator-2")
	pr.op1 = dialAs(t, pr.leader, certs, "operator")
	pr.apply(pr.rep1, stratav1.Role_ROLE_LEADER, 1, isr, minISR)
	pr.apply(pr.rep2, stratav1.Role_ROLE_FOLLOWER, 1, isr, minISR)
	return pr
}

// apply sends a state; the leader is broker 1 in epoch 1 and broker 2 after.
func (pr *pair) apply(c replicaClients, role stratav1.Role, epoch int32, isr []int32, minISR int32) {
	pr.t.Helper()
	leader := int32(1)
	if epoch > 1 {
		leader = 2
	}
	_, err := c.ApplyPartitionState(ctxT(pr.t), &stratav1.ApplyPartitionStateRequest{
		Topic: "events", Partition: 0, Role: role, LeaderEpoch: epoch, LeaderId: leader, LeaderAddress: "b",
		Replicas: []int32{1, 2}, Isr: isr,
		Config: &stratav1.TopicConfig{Partitions: 1, ReplicationFactor: 2, MinInsyncReplicas: minISR},
	})
	if err != nil {
		pr.t.Fatalf("apply %v epoch %d: %v", role, epoch, err)
	}
}

// fetcher opens a Fetch on the leader as replicator-2 (over its own
// connection to broker-1) at offset.
func (pr *pair) fetcher(ctx context.Context, epoch int32, offset int64) stratav1.ReplicaFetch_FetchClient {
	pr.t.Helper()
	fc, err := replicaClient(pr.t, pr.leader, pr.certs, "replicator-2").Fetch(ctx)
	if err != nil {
		pr.t.Fatal(err)
	}
	if err := fc.Send(&stratav1.FetchRequest{Topic: "events", ReplicaId: 2, FetchOffset: offset, LeaderEpoch: epoch}); err != nil {
		pr.t.Fatal(err)
	}
	return fc
}

// copyOnce receives one response, appends it to the follower and reports
// the follower's position back, as a fetcher does.
func (pr *pair) copyOnce(fc stratav1.ReplicaFetch_FetchClient) *stratav1.FetchResponse {
	pr.t.Helper()
	resp, err := fc.Recv()
	if err != nil {
		pr.t.Fatalf("fetch recv: %v", err)
	}
	ar, err := pr.rep2.Append(ctxT(pr.t), &stratav1.AppendRequest{Topic: "events", LeaderEpoch: resp.GetLeaderEpoch(),
		RecordsEpoch: resp.GetRecordsEpoch(), Frames: resp.GetFrames(), LeaderHighWatermark: resp.GetHighWatermark()})
	if err != nil {
		pr.t.Fatalf("follower append: %v", err)
	}
	if err := fc.Send(&stratav1.FetchRequest{FetchOffset: ar.GetLogEndOffset()}); err != nil {
		pr.t.Fatalf("fetch report: %v", err)
	}
	return resp
}

func (pr *pair) status(c replicaClients) *stratav1.PartitionStatusResponse {
	pr.t.Helper()
	st, err := c.PartitionStatus(ctxT(pr.t), &stratav1.PartitionStatusRequest{Topic: "events"})
	if err != nil {
		pr.t.Fatal(err)
	}
	return st
}

func TestReplicationHighWatermarkAndAcksAll(t *testing.T) {
	pr := newPair(t, []int32{1, 2}, 2)
	ctx := ctxT(t)

	// acks=ALL waits until the follower has the batch and says so.
	done := make(chan error, 1)
	go func() {
		_, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(3, "a"), Acks: stratav1.Acks_ACKS_ALL})
		done <- err
	}()
	eventually(t, 10*time.Second, func() bool { return pr.status(pr.rep1).GetLogEndOffset() == 3 })
	if st := pr.status(pr.rep1); st.GetHighWatermark() != 0 {
		t.Fatalf("HW = %d before the follower fetched, want 0", st.GetHighWatermark())
	}
	c, err := pr.op1.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "events", MaxRecords: 10})
	if err != nil || len(c.GetRecords()) != 0 {
		t.Fatalf("consumer saw %d records past the HW (%v)", len(c.GetRecords()), err)
	}
	select {
	case err := <-done:
		t.Fatalf("acks=ALL answered before replication: %v", err)
	default:
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fc := pr.fetcher(fctx, 1, 0)
	resp := pr.copyOnce(fc)
	if resp.GetBaseOffset() != 0 || resp.GetLogEndOffset() != 3 || resp.GetRecordsEpoch() != 1 || len(resp.GetFrames()) == 0 {
		t.Fatalf("first fetch response %+v", resp)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("acks=ALL: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("acks=ALL never answered after the follower caught up")
	}
	if st := pr.status(pr.rep1); st.GetHighWatermark() != 3 {
		t.Fatalf("leader HW = %d, want 3", st.GetHighWatermark())
	}
	// The follower holds the same frames at the same offsets.
	if st := pr.status(pr.rep2); st.GetLogEndOffset() != 3 || st.GetLatestLocalEpoch() != 1 {
		t.Fatalf("follower status %+v", st)
	}

	// The follower learns the HW from the next response (a heartbeat here).
	hb := pr.copyOnce(fc)
	if len(hb.GetFrames()) != 0 || hb.GetHighWatermark() != 3 {
		t.Fatalf("heartbeat %+v", hb)
	}
	if st := pr.status(pr.rep2); st.GetHighWatermark() != 3 {
		t.Fatalf("follower HW = %d, want 3", st.GetHighWatermark())
	}

	// Pipelining: the leader sends what it has without waiting per batch.
	for i := range 4 {
		if _, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(2, string(rune('b'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 10*time.Second, func() bool {
		pr.copyOnce(fc)
		return pr.status(pr.rep2).GetLogEndOffset() == 11
	})
	eventually(t, 10*time.Second, func() bool { return pr.status(pr.rep1).GetHighWatermark() == 11 })

	// The leader's metrics show the replication state.
	resp2, err := http.Get("http://" + pr.leader.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	for _, want := range []string{
		`strata_broker_isr_size{partition="0",topic="events"} 2`,
		`strata_broker_under_replicated{partition="0",topic="events"} 0`,
		`strata_broker_follower_lag_records{follower="2",partition="0",topic="events"} 0`,
		`strata_broker_high_watermark{partition="0",topic="events"} 11`,
		`strata_broker_fetch_bytes_total{topic="events"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// A follower's copy is byte-identical: promote it and read it back.
	pr.apply(pr.rep2, stratav1.Role_ROLE_LEADER, 2, []int32{2}, 1)
	c2 := dialAs(t, pr.follower, pr.certs, "operator")
	got, err := c2.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "events", MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	want, err := pr.op1.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "events", MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.GetRecords()) != 11 || len(want.GetRecords()) != 11 {
		t.Fatalf("records: follower %d, leader %d, want 11", len(got.GetRecords()), len(want.GetRecords()))
	}
	for i := range got.GetRecords() {
		g, w := got.GetRecords()[i], want.GetRecords()[i]
		if g.GetOffset() != w.GetOffset() || !bytes.Equal(g.GetValue(), w.GetValue()) || g.GetTimestampMs() != w.GetTimestampMs() || g.GetLeaderEpoch() != w.GetLeaderEpoch() {
			t.Fatalf("record %d differs: follower %v, leader %v", i, g, w)
		}
	}
}

func TestReplicationMinISR(t *testing.T) {
	pr := newPair(t, []int32{1}, 2)
	ctx := ctxT(t)
	_, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(1, "x"), Acks: stratav1.Acks_ACKS_ALL})
	wantCode(t, err, codes.Unavailable)
	if st := pr.status(pr.rep1); st.GetLogEndOffset() != 0 {
		t.Fatalf("a refused acks=ALL produce appended: log end %d", st.GetLogEndOffset())
	}
	// acks=LEADER is still served.
	if _, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(1, "x"), Acks: stratav1.Acks_ACKS_LEADER}); err != nil {
		t.Fatal(err)
	}
}

func TestReplicationFencing(t *testing.T) {
	pr := newPair(t, []int32{1, 2}, 1)
	ctx := ctxT(t)
	if _, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(2, "x")}); err != nil {
		t.Fatal(err)
	}
	recvErr := func(fc stratav1.ReplicaFetch_FetchClient) error {
		_, err := fc.Recv()
		return err
	}
	t.Run("stale and future epochs", func(t *testing.T) {
		wantCode(t, recvErr(pr.fetcher(ctx, 0, 0)), codes.FailedPrecondition)
		wantCode(t, recvErr(pr.fetcher(ctx, 5, 0)), codes.FailedPrecondition)
	})
	t.Run("offset past the log end", func(t *testing.T) {
		st := wantCode(t, recvErr(pr.fetcher(ctx, 1, 99)), codes.OutOfRange)
		if len(st.Details()) == 0 {
			t.Error("OutOfRange without the offset range")
		}
	})
	t.Run("a fetch must come from the replica's own replicator", func(t *testing.T) {
		fc, err := replicaClient(t, pr.leader, pr.certs, "replicator-3").Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := fc.Send(&stratav1.FetchRequest{Topic: "events", ReplicaId: 2, LeaderEpoch: 1}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, recvErr(fc), codes.PermissionDenied)
		_, err = pr.rep1.Append(ctx, &stratav1.AppendRequest{Topic: "events", LeaderEpoch: 1})
		wantCode(t, err, codes.FailedPrecondition) // broker-1 leads: no replicated writes
		_, err = replicaClient(t, pr.follower, pr.certs, "replicator-1").Append(ctx, &stratav1.AppendRequest{Topic: "events", LeaderEpoch: 1})
		wantCode(t, err, codes.PermissionDenied)
		_, err = replicaClient(t, pr.follower, pr.certs, "operator").Truncate(ctx, &stratav1.TruncateRequest{Topic: "events", LeaderEpoch: 1})
		wantCode(t, err, codes.PermissionDenied)
	})
	t.Run("leadership moves: the stream ends", func(t *testing.T) {
		fctx, cancel := context.WithCancel(ctx)
		defer cancel()
		fc := pr.fetcher(fctx, 1, 0)
		pr.copyOnce(fc)
		pr.apply(pr.rep1, stratav1.Role_ROLE_FOLLOWER, 2, []int32{2}, 1)
		var err error
		for err == nil {
			_, err = fc.Recv()
		}
		wantCode(t, err, codes.FailedPrecondition)
	})
}

// TestReplicationTruncation: a follower holding records the new leader does
// not have truncates to where the leader's copy of its epoch ends
// (OffsetForLeaderEpoch on the leader, then on its own log), keeps what
// both share, and can be reset past a leader's log start.
func TestReplicationTruncation(t *testing.T) {
	pr := newPair(t, []int32{1, 2}, 1)
	ctx := ctxT(t)
	// Both get records 0..1 in epoch 1.
	if _, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(2, "shared")}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	fc := pr.fetcher(fctx, 1, 0)
	pr.copyOnce(fc)
	cancel()
	// Broker 1 takes 3 more that never reach broker 2; then broker 2 leads
	// epoch 2 and writes 1 record.
	if _, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(3, "lost")}); err != nil {
		t.Fatal(err)
	}
	pr.apply(pr.rep2, stratav1.Role_ROLE_LEADER, 2, []int32{2}, 1)
	pr.apply(pr.rep1, stratav1.Role_ROLE_FOLLOWER, 2, []int32{2}, 1)
	op2 := dialAs(t, pr.follower, pr.certs, "operator")
	if _, err := op2.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(1, "new")}); err != nil {
		t.Fatal(err)
	}

	// A verifier (the operator) reads broker 1's own copy, past its HW.
	rr, err := replicaClient(t, pr.leader, pr.certs, "operator").ReadReplica(ctx, &stratav1.ReadReplicaRequest{Topic: "events"})
	if err != nil || len(rr.GetRecords()) != 5 || rr.GetLogEndOffset() != 5 || rr.GetRole() != stratav1.Role_ROLE_FOLLOWER {
		t.Fatalf("ReadReplica on the follower = %d records, %+v, %v", len(rr.GetRecords()), rr, err)
	}
	if rr.GetRecords()[4].GetOffset() != 4 || rr.GetRecords()[4].GetLeaderEpoch() != 1 {
		t.Fatalf("last record %v", rr.GetRecords()[4])
	}
	_, err = replicaClient(t, pr.leader, pr.certs, "alice").ReadReplica(ctx, &stratav1.ReadReplicaRequest{Topic: "events"})
	wantCode(t, err, codes.PermissionDenied)

	// Broker 1's replicator resynchronizes: its latest epoch is 1.
	leaderAsk := replicaClient(t, pr.follower, pr.certs, "replicator-1")
	_, err = leaderAsk.OffsetForLeaderEpoch(ctx, &stratav1.OffsetForLeaderEpochRequest{Topic: "events", LeaderEpoch: 3, CurrentLeaderEpoch: 2})
	wantCode(t, err, codes.FailedPrecondition) // newer than the leader's own epoch
	ans, err := leaderAsk.OffsetForLeaderEpoch(ctx, &stratav1.OffsetForLeaderEpochRequest{Topic: "events", LeaderEpoch: 1, CurrentLeaderEpoch: 2})
	if err != nil || ans.GetLeaderEpoch() != 1 || ans.GetEndOffset() != 2 {
		t.Fatalf("leader's end of epoch 1 = %v, %v; want epoch 1 ending at 2", ans, err)
	}
	local, err := pr.rep1.OffsetForLeaderEpoch(ctx, &stratav1.OffsetForLeaderEpochRequest{Topic: "events", LeaderEpoch: 1, CurrentLeaderEpoch: -1})
	if err != nil || local.GetEndOffset() != 5 {
		t.Fatalf("local end of epoch 1 = %v, %v; want 5", local, err)
	}
	_, err = pr.rep1.Truncate(ctx, &stratav1.TruncateRequest{Topic: "events", LeaderEpoch: 1, Offset: 2})
	wantCode(t, err, codes.FailedPrecondition) // stale epoch
	tr, err := pr.rep1.Truncate(ctx, &stratav1.TruncateRequest{Topic: "events", LeaderEpoch: 2, Offset: min(ans.GetEndOffset(), local.GetEndOffset())})
	if err != nil || tr.GetLogEndOffset() != 2 {
		t.Fatalf("truncate = %v, %v; want log end 2", tr, err)
	}
	if st := pr.status(pr.rep1); st.GetLatestLocalEpoch() != 1 || st.GetHighWatermark() > 2 {
		t.Fatalf("after truncation: %+v", st)
	}
	// Reset: the log restarts empty at the given offset.
	rs, err := pr.rep1.Truncate(ctx, &stratav1.TruncateRequest{Topic: "events", LeaderEpoch: 2, Offset: 100, Reset_: true})
	if err != nil || rs.GetLogEndOffset() != 100 {
		t.Fatalf("reset = %v, %v", rs, err)
	}
	if st := pr.status(pr.rep1); st.GetLogStartOffset() != 100 || st.GetLatestLocalEpoch() != -1 {
		t.Fatalf("after reset: %+v", st)
	}
}
