package grpcserver

import (
	"context"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// TestProduceStreamAppendsWhileWaitingForHW: an acks=all batch waiting for
// its follower does not hold the stream's next batches: they are appended
// behind it at once, and the answers come in request order as the high
// watermark passes each batch.
func TestProduceStreamAppendsWhileWaitingForHW(t *testing.T) {
	p, ps := leaderStream(t, "hw")
	answers := make(chan *stratav1.ProduceResponse, 8)
	recvErr := make(chan error, 1)
	go func() {
		for {
			r, err := ps.Recv()
			if err != nil {
				recvErr <- err
				close(answers)
				return
			}
			answers <- r
		}
	}()
	rec := func(v string) []*stratav1.Record { return []*stratav1.Record{{Value: []byte(v)}, {Value: []byte(v)}} }
	for i, acks := range []stratav1.Acks{stratav1.Acks_ACKS_ALL, stratav1.Acks_ACKS_ALL, stratav1.Acks_ACKS_LEADER} {
		if err := ps.Send(&stratav1.ProduceRequest{Topic: "hw", Records: rec("x"), Acks: acks, CorrelationId: uint64(10 + i)}); err != nil {
			t.Fatal(err)
		}
	}
	// All three are appended while the first still waits for its HW.
	waitLogEnd(t, p, 6, "the batches behind the waiting one")
	expectNoAnswer := func(when string) {
		t.Helper()
		select {
		case r := <-answers:
			t.Fatalf("%s: answer %d (offset %d) arrived early", when, r.GetCorrelationId(), r.GetBaseOffset())
		case <-time.After(50 * time.Millisecond):
		}
	}
	expect := func(corr uint64, base int64) {
		t.Helper()
		select {
		case r, ok := <-answers:
			if !ok {
				t.Fatalf("stream ended: %v", <-recvErr)
			}
			if r.GetCorrelationId() != corr || r.GetBaseOffset() != base || r.GetError() != nil {
				t.Fatalf("answer %d at %d (error %v), want %d at %d", r.GetCorrelationId(), r.GetBaseOffset(), r.GetError(), corr, base)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no answer %d", corr)
		}
	}
	// Nothing is answered while the first batch waits: answers keep the
	// request order, so the acks=leader one waits behind the others.
	expectNoAnswer("HW 0")
	if err := p.FollowerFetched(2, 0, 2); err != nil { // HW 2: the first batch
		t.Fatal(err)
	}
	expect(10, 0)
	expectNoAnswer("HW 2")
	if err := p.FollowerFetched(2, 0, 4); err != nil { // HW 4: the second, then the third
		t.Fatal(err)
	}
	expect(11, 2)
	expect(12, 4)
	if err := ps.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-answers; ok {
		t.Fatal("an answer after the last")
	}
	if err := <-recvErr; err.Error() != "EOF" {
		t.Fatalf("end of stream: %v, want EOF", err)
	}
}

// TestProduceStreamBoundsInFlight: past ProduceStreamInFlight (4 in the
// test server) batches received and not answered, the stream receives no
// more until an answer goes out.
func TestProduceStreamBoundsInFlight(t *testing.T) {
	p, ps := leaderStream(t, "b")
	const n = 6
	for i := range n {
		if err := ps.Send(&stratav1.ProduceRequest{Topic: "b", Records: []*stratav1.Record{{Value: []byte("x")}},
			Acks: stratav1.Acks_ACKS_ALL, CorrelationId: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	waitLogEnd(t, p, 4, "the first 4 batches")
	// A fifth append must not happen: the log end must not move for a
	// while (an absence has no event to wait for).
	select {
	case <-p.LogChanged():
		t.Fatalf("log end %d with the first batch unanswered, want 4 (ProduceStreamInFlight)", p.LogEndOffset())
	case <-time.After(50 * time.Millisecond):
	}
	if err := p.FollowerFetched(2, 0, 1); err != nil { // the first is answered: one more is received
		t.Fatal(err)
	}
	if r, err := ps.Recv(); err != nil || r.GetCorrelationId() != 1 {
		t.Fatalf("first answer %v, %v", r, err)
	}
	waitLogEnd(t, p, 5, "a fifth batch after the first answer")
	// The follower catches up with what is appended; each answer lets one
	// more batch in.
	for i := 2; i <= n; i++ {
		if err := p.FollowerFetched(2, 0, int64(i)); err != nil {
			t.Fatal(err)
		}
		if r, err := ps.Recv(); err != nil || r.GetCorrelationId() != uint64(i) || r.GetBaseOffset() != int64(i-1) {
			t.Fatalf("answer %d: %v, %v", i, r, err)
		}
		waitLogEnd(t, p, int64(min(i+4, n)), "one more batch per answer")
	}
}

// waitLogEnd waits, on the log's change notification, until p's log end
// reaches want (10 s at most).
func waitLogEnd(t *testing.T, p *partition.Partition, want int64, what string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		changed := p.LogChanged()
		if p.LogEndOffset() >= want {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("log end %d, want %d: %s not appended", p.LogEndOffset(), want, what)
		}
	}
}

// leaderStream creates topic on a test server whose broker 1 leads its
// partition 0 with broker 2 in the ISR, reporting nothing (the high
// watermark stays at 0 until the test calls FollowerFetched), and opens a
// ProduceStream to it, ended with the test.
func leaderStream(t *testing.T, topic string) (*partition.Partition, stratav1.Log_ProduceStreamClient) {
	t.Helper()
	c, reg := newTestServer(t)
	if _, err := reg.Create(context.Background(), topic, topicconfig.Config{}); err != nil {
		t.Fatal(err)
	}
	p, err := reg.Partition(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	p.SetState(partition.State{Role: partition.RoleLeader, LeaderID: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p, ps
}
