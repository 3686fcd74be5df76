package client

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
)

// inFlightCounter counts, on every ProduceStream of a client, the requests
// sent and not yet answered, and keeps the most seen at once.
type inFlightCounter struct {
	cur, most atomic.Int64
}

func (c *inFlightCounter) interceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil || method != "/strata.v1.Log/ProduceStream" {
			return cs, err
		}
		return &countedStream{ClientStream: cs, c: c}, nil
	}
}

type countedStream struct {
	grpc.ClientStream
	c   *inFlightCounter
	out atomic.Int64 // this stream's share of c.cur
}

func (s *countedStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		s.out.Add(1)
		n := s.c.cur.Add(1)
		for m := s.c.most.Load(); n > m && !s.c.most.CompareAndSwap(m, n); m = s.c.most.Load() {
		}
	}
	return err
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.out.Add(-1)
		s.c.cur.Add(-1)
	} else {
		s.c.cur.Add(-s.out.Swap(0)) // the stream ended: nothing is out on it
	}
	return err
}

// TestE2EPipelinedProducerKeepsOrder: an idempotent producer with acks=all
// and five batches in flight per partition, against the real broker,
// restarted twice while records are in flight: every record is
// acknowledged, and each partition holds its records once, in Produce
// order, at the offsets their results say.
func TestE2EPipelinedProducerKeepsOrder(t *testing.T) {
	b := startRealBroker(t)
	var counter inFlightCounter
	ctx := testCtx(t)
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := New(dctx, Config{Brokers: []string{b.addr}, Insecure: true,
		DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(counter.interceptor())}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	const parts, perPart = 2, 6000
	if _, err := cl.CreateTopic(ctx, "pipe", &TopicConfig{Partitions: parts, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	p := newTestProducer(t, cl, ProducerOptions{Acks: AcksAll, MaxInFlight: 5, MaxBatchRecords: 20, Metrics: m,
		RetryBackoff: 5 * time.Millisecond, RetryBackoffMax: 100 * time.Millisecond, RequestTimeout: 2 * time.Second})
	var rs [parts][]*Result
	var wg sync.WaitGroup
	produced := make(chan int, perPart)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(produced)
		for i := range perPart {
			for k := range parts {
				rs[k] = append(rs[k], p.Produce(ctx, &Record{Topic: "pipe", Partition: int32(k), ExplicitPartition: true,
					Value: []byte(strconv.Itoa(i))}))
			}
			produced <- i
			if i%500 == 0 {
				time.Sleep(time.Millisecond) // spread the records over the restarts
			}
		}
	}()
	for i := range produced {
		if i == perPart/3 || i == 2*perPart/3 {
			b.restart()
		}
	}
	wg.Wait()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for k := range parts {
		for i, r := range rs[k] {
			m, err := r.Wait(ctx)
			if err != nil {
				t.Fatalf("partition %d record %d: %v", k, i, err)
			}
			if m.Offset != int64(i) {
				t.Fatalf("partition %d record %d acknowledged at offset %d", k, i, m.Offset)
			}
		}
		cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "pipe", Partition: int32(k)})
		expectRange(t, ctx, cs, 0, perPart)
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		if r, err := cs.Next(wctx); err == nil {
			t.Fatalf("partition %d: offset %d past the last record (%q)", k, r.Offset, r.Value)
		}
		cancel()
	}
	if most := counter.most.Load(); most < 2 {
		t.Fatalf("at most %d batch in flight on a stream: no pipelining", most)
	}
	retries := testutil.ToFloat64(m.retries)
	if retries == 0 {
		t.Fatal("no batch was retried: the restarts found nothing in flight")
	}
	t.Logf("at most %d batches in flight on the stream; %v retries", counter.most.Load(), retries)
}
