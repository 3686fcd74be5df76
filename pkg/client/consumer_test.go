package client

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func fill(fc *fakeCluster, topic string, partition, n int) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	p := fc.topics[topic][partition]
	var recs []*stratav1.Record
	for i := 0; i < n; i++ {
		recs = append(recs, &stratav1.Record{Value: []byte(strconv.Itoa(len(p.log) + i)), TimestampMs: int64(1000 + len(p.log) + i)})
	}
	fc.appendLocked(p, recs)
}

func newTestConsumer(tb testing.TB, cl *Client, o ConsumerOptions) *Consumer {
	tb.Helper()
	o.RetryBackoff = time.Millisecond
	o.RetryBackoffMax = 10 * time.Millisecond
	cs, err := cl.NewConsumer(testCtx(tb), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cs.Close() }) // Close cannot fail
	return cs
}

// expectRange reads offsets [from, to) and checks each value.
func expectRange(tb testing.TB, ctx context.Context, cs *Consumer, from, to int) {
	tb.Helper()
	for want := from; want < to; want++ {
		r, err := cs.Next(ctx)
		if err != nil {
			tb.Fatalf("waiting for offset %d: %v", want, err)
		}
		if r.Offset != int64(want) || string(r.Value) != strconv.Itoa(want) {
			tb.Fatalf("got offset %d value %q, want offset %d", r.Offset, r.Value, want)
		}
	}
}

func TestConsumerStartPositions(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	fill(fc, "t", 0, 50)
	cl := newTestClient(t, fc)
	for _, tc := range []struct {
		name  string
		start Position
		first int
	}{
		{"earliest", Earliest(), 0},
		{"offset", AtOffset(17), 17},
		{"time", AtTime(time.UnixMilli(1000 + 42)), 42},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "t", Start: tc.start})
			expectRange(t, testCtx(t), cs, tc.first, 50)
		})
	}
	t.Run("latest", func(t *testing.T) {
		cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "t", Start: Latest()})
		ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
		defer cancel()
		if r, err := cs.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got record %d (%v), want nothing before new records", r.Offset, err)
		}
		fill(fc, "t", 0, 5)
		expectRange(t, testCtx(t), cs, 50, 55)
	})
}

// TestConsumerResumesAfterStreamBreaks breaks every stream after 13
// records and restarts the broker mid-way: the consumer must deliver every
// offset once, in order.
func TestConsumerResumesAfterStreamBreaks(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	fc.breakConsumeAfter = 13
	fill(fc, "t", 0, 500)
	cl := newTestClient(t, fc)
	cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "t"})
	ctx := testCtx(t)
	expectRange(t, ctx, cs, 0, 250)
	fc.brokers[0].restart(t)
	expectRange(t, ctx, cs, 250, 500)
	fill(fc, "t", 0, 100)
	expectRange(t, ctx, cs, 500, 600)
}

func TestConsumerFollowsLeaderMove(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1)
	fill(fc, "t", 0, 20)
	cl := newTestClient(t, fc)
	cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "t"})
	ctx := testCtx(t)
	expectRange(t, ctx, cs, 0, 20)
	fc.setLeader("t", 0, 1)
	fill(fc, "t", 0, 30) // wakes the old leader's stream, which refuses
	expectRange(t, ctx, cs, 20, 50)
}

func TestConsumerOutOfRangeIsTerminal(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	fill(fc, "t", 0, 5)
	cl := newTestClient(t, fc)
	cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "t", Start: AtOffset(99)})
	_, err := cs.Next(testCtx(t))
	var ore *OffsetRangeError
	if !errors.As(err, &ore) || ore.EndOffset != 5 {
		t.Fatalf("got %v, want OffsetRangeError ending at 5", err)
	}
}

// TestMetadataDoesNotWaitOnASilentBroker: a broker that accepts the TCP
// connection but never answers (a paused container) does not hold a
// metadata refresh for the dial timeout while another broker answers.
func TestMetadataDoesNotWaitOnASilentBroker(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // never read, never answered
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	fc := newFakeCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	cl, err := New(ctx, Config{Brokers: []string{silent.Addr().String(), fc.addrs()[0]}, Insecure: true, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("metadata took %v with one silent broker: it waited on it", took)
	}
}
