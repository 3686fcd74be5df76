package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestProduceConsumeRoundTrip(t *testing.T) {
	_, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "rt", &stratav1.TopicConfig{Partitions: 2})

	// Produce (unary): headers, key, producer timestamp kept, broker time otherwise.
	before := time.Now().UnixMilli()
	in := []*stratav1.Record{
		{Key: []byte("k0"), Value: []byte("v0"), Headers: []*stratav1.Header{{Key: "h", Value: []byte("1")}}, TimestampMs: 1234},
		{Value: []byte("v1")},
	}
	resp, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "rt", Partition: 1, Records: in, CorrelationId: 9})
	if err != nil {
		t.Fatal(err)
	}
	if resp.BaseOffset != 0 || resp.LastOffset != 1 || resp.CorrelationId != 9 || resp.Partition != 1 {
		t.Fatalf("Produce = %v, want offsets 0..1 on partition 1", resp)
	}
	// ProduceStream: every request answered in order.
	ps, err := c.log.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := ps.Send(&stratav1.ProduceRequest{Topic: "rt", Partition: 1, Records: values(5, fmt.Sprintf("s%d-", i)), CorrelationId: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ps.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		r, err := ps.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.CorrelationId != uint64(i) || r.BaseOffset != int64(2+5*i) || r.LastOffset != int64(6+5*i) || r.Error != nil {
			t.Fatalf("ProduceStream answer %d = %v", i, r)
		}
	}
	if _, err := ps.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("ProduceStream end: %v, want io.EOF", err)
	}
	// ProduceBulk: one answer with per-partition ranges.
	pb, err := c.log.ProduceBulk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := pb.Send(&stratav1.ProduceRequest{Topic: "rt", Partition: int32(i % 2), Records: values(3, "b")}); err != nil {
			t.Fatal(err)
		}
	}
	bulk, err := pb.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if bulk.RecordCount != 30 || len(bulk.Ranges) != 2 ||
		bulk.Ranges[0].Partition != 0 || bulk.Ranges[0].BaseOffset != 0 || bulk.Ranges[0].LastOffset != 14 || bulk.Ranges[0].RecordCount != 15 ||
		bulk.Ranges[1].Partition != 1 || bulk.Ranges[1].BaseOffset != 102 || bulk.Ranges[1].LastOffset != 116 {
		t.Fatalf("ProduceBulk = %v", bulk)
	}

	// Consume (unary): one record, then a bounded batch.
	one, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "rt", Partition: 1, Offset: 0})
	if err != nil {
		t.Fatal(err)
	}
	want0 := &stratav1.Record{Key: []byte("k0"), Value: []byte("v0"), Headers: in[0].Headers, TimestampMs: 1234}
	if len(one.Records) != 1 || !proto.Equal(one.Records[0], want0) || one.NextOffset != 1 || one.HighWatermark != 117 {
		t.Fatalf("Consume(0) = %v, want %v", one, want0)
	}
	batch, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "rt", Partition: 1, Offset: 1, MaxRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch.Records) != 10 || batch.NextOffset != 11 {
		t.Fatalf("Consume batch: %d records, next %d; want 10, 11", len(batch.Records), batch.NextOffset)
	}
	if r := batch.Records[0]; string(r.Value) != "v1" || r.Offset != 1 || r.TimestampMs < before || r.TimestampMs > time.Now().UnixMilli() {
		t.Fatalf("record 1 = %v, want broker timestamp in [%d, now]", r, before)
	}
	for i, r := range batch.Records {
		if r.Offset != int64(1+i) {
			t.Fatalf("batch record %d has offset %d", i, r.Offset)
		}
	}
	small, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "rt", Partition: 1, Offset: 2, MaxRecords: 100, MaxBytes: 50})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(small.Records); n < 1 || n > 2 {
		t.Fatalf("max_bytes 50: %d records, want 1 or 2", n)
	}
	end, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "rt", Partition: 1, Offset: 117})
	if err != nil || len(end.Records) != 0 || end.NextOffset != 117 {
		t.Fatalf("Consume at the end = %v, %v; want no records", end, err)
	}

	// ConsumeStream from earliest reads everything in order, in batches.
	cs, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "rt", Partition: 1,
		Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_EARLIEST}, MaxBatchRecords: 7})
	if err != nil {
		t.Fatal(err)
	}
	var got []*stratav1.Record
	for len(got) < 117 {
		m, err := cs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Records) == 0 || len(m.Records) > 7 || m.Topic != "rt" || m.Partition != 1 {
			t.Fatalf("ConsumeStream message: %d records, topic %q partition %d", len(m.Records), m.Topic, m.Partition)
		}
		got = append(got, m.Records...)
		if m.NextOffset != int64(len(got)) || m.HighWatermark != 117 {
			t.Fatalf("next_offset %d hw %d after %d records", m.NextOffset, m.HighWatermark, len(got))
		}
	}
	if !proto.Equal(got[0], want0) || string(got[2].Value) != "s0-000000" || string(got[116].Value) != "b000002" {
		t.Fatalf("stream records: %v %v %v", got[0], got[2], got[116])
	}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("stream record %d has offset %d", i, r.Offset)
		}
	}

	// ConsumeStream from an offset and from a timestamp.
	for name, req := range map[string]*stratav1.ConsumeStreamRequest{
		"offset":    {Topic: "rt", Partition: 1, Start: &stratav1.ConsumeStreamRequest_Offset{Offset: 5}},
		"timestamp": {Topic: "rt", Partition: 1, Start: &stratav1.ConsumeStreamRequest_TimestampMs{TimestampMs: got[5].TimestampMs}},
	} {
		s, err := c.log.ConsumeStream(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		// Records 1.. carry broker time, which may repeat: the first record
		// at or after the timestamp is at or before offset 5.
		if name == "offset" && m.Records[0].Offset != 5 || name == "timestamp" && (m.Records[0].Offset > 5 || m.Records[0].TimestampMs < got[5].TimestampMs) {
			t.Fatalf("%s: first record %v", name, m.Records[0])
		}
	}

	// Metadata and health.
	md, err := c.meta.Metadata(ctx, &stratav1.MetadataRequest{Topics: []string{"rt"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Brokers) != 1 || md.Brokers[0].Address != "127.0.0.1:9092" || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 2 ||
		md.Topics[0].Partitions[1].HighWatermark != 117 || md.Topics[0].Partitions[1].LeaderId != 1 {
		t.Fatalf("Metadata = %v", md)
	}
	h, err := healthpb.NewHealthClient(c.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "strata.v1.Log"})
	if err != nil || h.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", h, err)
	}
}

func TestConsumeStreamWaitsAtTail(t *testing.T) {
	_, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "tail", nil)
	s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "tail",
		Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_LATEST}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *stratav1.ConsumeResponse, 1)
	errc := make(chan error, 1)
	go func() {
		m, err := s.Recv()
		if err != nil {
			errc <- err
			return
		}
		got <- m
	}()
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "tail", Records: []*stratav1.Record{{Value: []byte("late")}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if len(m.Records) != 1 || string(m.Records[0].Value) != "late" {
			t.Fatalf("got %v", m)
		}
	case err := <-errc:
		t.Fatal(err)
	case <-ctx.Done():
		t.Fatal("the stream did not deliver the record produced after it started")
	}
}

func TestIdleConsumeStreamUsesNoCPU(t *testing.T) {
	_, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "idle", nil)
	s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "idle",
		Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_EARLIEST}})
	if err != nil {
		t.Fatal(err)
	}
	// Prove the stream is established and has reached the tail.
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "idle", Records: values(1, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	before := cpuTime(t)
	<-time.After(time.Second) // the measurement window, not a wait for a condition
	used := cpuTime(t) - before
	t.Logf("process CPU over 1s with an idle ConsumeStream: %v", used)
	if used > 50*time.Millisecond {
		t.Fatalf("idle stream used %v of CPU in 1s, want < 50ms", used)
	}
}

func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestConcurrentProducersKeepOrder(t *testing.T) {
	_, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "conc", &stratav1.TopicConfig{Partitions: 2})
	const producers, batches, per = 4, 25, 4
	var wg sync.WaitGroup
	errc := make(chan error, producers)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ps, err := c.log.ProduceStream(ctx)
			if err != nil {
				errc <- err
				return
			}
			seq := 0
			for b := 0; b < batches; b++ {
				recs := make([]*stratav1.Record, per)
				for i := range recs {
					recs[i] = &stratav1.Record{Key: []byte{byte(p)}, Value: fmt.Appendf(nil, "%d", seq)}
					seq++
				}
				if err := ps.Send(&stratav1.ProduceRequest{Topic: "conc", Partition: int32(p % 2), Records: recs}); err != nil {
					errc <- err
					return
				}
			}
			if err := ps.CloseSend(); err != nil {
				errc <- err
				return
			}
			last := int64(-1)
			for {
				r, err := ps.Recv()
				if errors.Is(err, io.EOF) {
					return
				}
				if err != nil || r.Error != nil || r.BaseOffset <= last {
					errc <- fmt.Errorf("answer %v, %v after offset %d", r, err, last)
					return
				}
				last = r.LastOffset
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	for part := int32(0); part < 2; part++ {
		next := map[byte]int{}
		total := 0
		for off := int64(0); ; {
			r, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "conc", Partition: part, Offset: off, MaxRecords: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Records) == 0 {
				break
			}
			for _, rec := range r.Records {
				p := rec.Key[0]
				if want := fmt.Sprint(next[p]); string(rec.Value) != want {
					t.Fatalf("partition %d offset %d: producer %d record %s, want %s", part, rec.Offset, p, rec.Value, want)
				}
				next[p]++
				total++
			}
			off = r.NextOffset
		}
		if total != producers/2*batches*per {
			t.Fatalf("partition %d holds %d records, want %d", part, total, producers/2*batches*per)
		}
	}
}

func TestRestartKeepsTopicsAndData(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(dir)
	b, c := startBroker(t, cfg)
	ctx := ctxT(t)
	createTopic(t, c, "keep", &stratav1.TopicConfig{Partitions: 3, Fsync: "always", MaxRecordBytes: 4096})
	for i := 0; i < 3; i++ {
		if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "keep", Partition: 2, Records: values(10, "r")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.conn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	_, c = startBroker(t, cfg)
	d, err := c.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "keep"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Topic.Config.Partitions != 3 || d.Topic.Config.Fsync != "always" || d.Topic.Config.MaxRecordBytes != 4096 || d.Topic.Partitions[2].LogEndOffset != 30 {
		t.Fatalf("after restart: %v", d.Topic)
	}
	r, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "keep", Partition: 2, Offset: 29})
	if err != nil || string(r.Records[0].Value) != "r000009" {
		t.Fatalf("record 29 after restart = %v, %v", r, err)
	}
	p, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "keep", Partition: 2, Records: values(1, "n")})
	if err != nil || p.BaseOffset != 30 {
		t.Fatalf("produce after restart = %v, %v; want offset 30", p, err)
	}
}

func TestGracefulShutdownEndsOpenStreams(t *testing.T) {
	cfg := testConfig(t.TempDir())
	b, c := startBroker(t, cfg)
	ctx := ctxT(t)
	createTopic(t, c, "bye", nil)
	s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "bye"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "bye", Records: values(1, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= cfg.ShutdownTimeout {
		t.Fatalf("shutdown took %v: the stream held up the graceful stop", took)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream after shutdown: %v, want a clean end (io.EOF)", err)
	}
}

// TestGracefulShutdownEndsIdleProduceStreams: a producer that keeps its
// ProduceStream open (as the client does) does not hold the graceful stop;
// its stream ends with Unavailable so it retries elsewhere.
func TestGracefulShutdownEndsIdleProduceStreams(t *testing.T) {
	cfg := testConfig(t.TempDir())
	b, c := startBroker(t, cfg)
	ctx := ctxT(t)
	createTopic(t, c, "bye", nil)
	ps, err := c.log.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ps.Send(&stratav1.ProduceRequest{Topic: "bye", Records: values(1, "x")}); err != nil {
		t.Fatal(err)
	}
	if resp, err := ps.Recv(); err != nil || resp.GetError() != nil {
		t.Fatalf("first answer: %v, %v", resp, err)
	}
	start := time.Now()
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= cfg.ShutdownTimeout {
		t.Fatalf("shutdown took %v: the idle ProduceStream held up the graceful stop", took)
	}
	_, err = ps.Recv()
	wantCode(t, err, codes.Unavailable)
}

// scrape returns the broker's /metrics page.
func scrape(tb testing.TB, b *Broker) string {
	tb.Helper()
	resp, err := http.Get("http://" + b.MetricsAddr().String() + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		tb.Fatal(err)
	}
	return string(body)
}

func TestMetricsEndpoint(t *testing.T) {
	b, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "m", nil)
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "m", Records: values(3, "x")}); err != nil {
		t.Fatal(err)
	}
	body := scrape(t, b)
	for _, want := range []string{
		`strata_broker_produced_records_total{topic="m"} 3`,
		`strata_broker_log_end_offset{partition="0",topic="m"} 3`,
		`strata_broker_rpc_duration_seconds_count{code="OK",method="/strata.v1.Log/Produce"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// TestProduceStreamEndCode: a ProduceStream that the client ends after its
// last answer is a normal end, counted OK when the client closes its send
// side and Canceled when it cancels the stream (as pkg/client's Producer
// does on Close), never Unknown.
func TestProduceStreamEndCode(t *testing.T) {
	b, c := startBroker(t, testConfig(t.TempDir()))
	createTopic(t, c, "m", nil)
	const method = `method="/strata.v1.Log/ProduceStream"`
	for _, tc := range []struct {
		name string
		end  func(ps stratav1.Log_ProduceStreamClient, cancel context.CancelFunc) error
		code string
	}{
		{"close send", func(ps stratav1.Log_ProduceStreamClient, _ context.CancelFunc) error {
			if err := ps.CloseSend(); err != nil {
				return err
			}
			if _, err := ps.Recv(); !errors.Is(err, io.EOF) {
				return fmt.Errorf("Recv after CloseSend = %v, want io.EOF", err)
			}
			return nil
		}, "OK"},
		{"cancel after the last answer", func(_ stratav1.Log_ProduceStreamClient, cancel context.CancelFunc) error {
			cancel()
			return nil
		}, "Canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctxT(t))
			defer cancel()
			ps, err := c.log.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if err := ps.Send(&stratav1.ProduceRequest{Topic: "m", Records: values(2, "s"), CorrelationId: uint64(i + 1)}); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				if resp, err := ps.Recv(); err != nil || resp.GetError() != nil {
					t.Fatalf("answer %d: %v, %v", i, resp, err)
				}
			}
			if err := tc.end(ps, cancel); err != nil {
				t.Fatal(err)
			}
			// The server records the code once its handler returns, after
			// the client has seen the end: wait for the count.
			want := `strata_broker_rpc_duration_seconds_count{code="` + tc.code + `",` + method + `} 1`
			eventually(t, 10*time.Second, func() bool { return strings.Contains(scrape(t, b), want) })
		})
	}
	if body := scrape(t, b); strings.Contains(body, `code="Unknown",`+method) {
		var counts []string
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, "strata_broker_rpc_duration_seconds_count{") && strings.Contains(l, method) {
				counts = append(counts, l)
			}
		}
		t.Errorf("ProduceStream ends counted with code Unknown:\n%s", strings.Join(counts, "\n"))
	}
}

func TestErrors(t *testing.T) {
	cfg := testConfig(t.TempDir())
	b, c := startBroker(t, cfg)
	ctx := ctxT(t)
	createTopic(t, c, "e", &stratav1.TopicConfig{Partitions: 2, MaxRecordBytes: 1000})
	createTopic(t, c, "isr", &stratav1.TopicConfig{ReplicationFactor: 3, MinInsyncReplicas: 2})
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "e", Records: values(5, "x")}); err != nil {
		t.Fatal(err)
	}

	t.Run("empty topic", func(t *testing.T) {
		_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Records: values(1, "x")})
		wantField(t, err, "topic")
	})
	t.Run("negative partition", func(t *testing.T) {
		_, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "e", Partition: -1})
		wantField(t, err, "partition")
	})
	t.Run("empty batch", func(t *testing.T) {
		_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "e"})
		wantField(t, err, "records")
	})
	t.Run("record too large", func(t *testing.T) {
		recs := []*stratav1.Record{{Value: []byte("ok")}, {Value: make([]byte, 1001)}}
		_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "e", Records: recs})
		wantField(t, err, "records[1]")
	})
	t.Run("message above max receive size", func(t *testing.T) {
		_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "e", Records: []*stratav1.Record{{Value: make([]byte, 3<<20)}}})
		wantCode(t, err, codes.ResourceExhausted)
	})
	t.Run("bad topic name", func(t *testing.T) {
		_, err := c.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "no/slash"})
		wantField(t, err, "name")
	})
	t.Run("bad topic config", func(t *testing.T) {
		_, err := c.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "x", Config: &stratav1.TopicConfig{Fsync: "often"}})
		wantField(t, err, "config")
	})
	t.Run("topic exists", func(t *testing.T) {
		_, err := c.topics.CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "e"})
		wantCode(t, err, codes.AlreadyExists)
	})
	t.Run("unknown topic", func(t *testing.T) {
		_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "nope", Records: values(1, "x")})
		wantCode(t, err, codes.NotFound)
		_, err = c.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "nope"})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("unknown partition", func(t *testing.T) {
		_, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "e", Partition: 2})
		wantCode(t, err, codes.NotFound)
	})
	t.Run("offset out of range", func(t *testing.T) {
		_, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "e", Offset: 6})
		st := wantCode(t, err, codes.OutOfRange)
		if r := detail[*stratav1.OffsetRange](st.Details()); r == nil || r.Requested != 6 || r.LogStartOffset != 0 || r.EndOffset != 5 {
			t.Fatalf("OffsetRange detail = %v", r)
		}
		s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "e", Start: &stratav1.ConsumeStreamRequest_Offset{Offset: -3}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Recv()
		wantCode(t, err, codes.OutOfRange)
	})
	t.Run("not enough replicas", func(t *testing.T) {
		_, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "isr", Records: values(1, "x"), Acks: stratav1.Acks_ACKS_ALL})
		wantCode(t, err, codes.Unavailable)
		if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "isr", Records: values(1, "x"), Acks: stratav1.Acks_ACKS_LEADER}); err != nil {
			t.Fatalf("acks=LEADER on the same topic: %v", err)
		}
	})
	t.Run("not leader", func(t *testing.T) {
		p, err := b.reg.Partition("e", 1)
		if err != nil {
			t.Fatal(err)
		}
		st := p.State()
		defer p.SetState(st)
		follower := st
		follower.Role, follower.LeaderID, follower.LeaderAddr, follower.LeaderEpoch = 2, 2, "10.0.0.2:9092", 4
		p.SetState(follower)
		_, err = c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "e", Partition: 1, Records: values(1, "x")})
		s := wantCode(t, err, codes.FailedPrecondition)
		if nl := detail[*stratav1.NotLeader](s.Details()); nl == nil || nl.LeaderId != 2 || nl.LeaderAddress != "10.0.0.2:9092" || nl.LeaderEpoch != 4 || nl.Partition != 1 {
			t.Fatalf("NotLeader detail = %v", nl)
		}
	})
	t.Run("stream error keeps the stream", func(t *testing.T) {
		ps, err := c.log.ProduceStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range []*stratav1.ProduceRequest{
			{Topic: "e", Records: values(1, "a"), CorrelationId: 1},
			{Topic: "nope", Records: values(1, "b"), CorrelationId: 2},
			{Topic: "e", Records: []*stratav1.Record{{Value: make([]byte, 2000)}}, CorrelationId: 3},
			{Topic: "e", Records: values(1, "c"), CorrelationId: 4},
		} {
			if err := ps.Send(req); err != nil {
				t.Fatal(err)
			}
		}
		if err := ps.CloseSend(); err != nil {
			t.Fatal(err)
		}
		wantCodes := []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument, codes.OK}
		for i, want := range wantCodes {
			r, err := ps.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if got := codes.Code(r.GetError().GetCode()); got != want || r.CorrelationId != uint64(i+1) {
				t.Fatalf("answer %d: code %v correlation %d, want %v", i, got, r.CorrelationId, want)
			}
		}
	})
	// The broker still serves.
	if r, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "e", Offset: 0, MaxRecords: 100}); err != nil || len(r.Records) != 7 {
		t.Fatalf("after the errors: %v, %v", r, err)
	}
}

// A fresh broker, so that no stream of another test still holds a slot.
func TestTooManyStreams(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxOpenStreams = 2
	_, c := startBroker(t, cfg)
	ctx := ctxT(t)
	createTopic(t, c, "e", nil)
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "e", Records: values(1, "x")}); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < 2; i++ {
		s, err := c.log.ConsumeStream(sctx, &stratav1.ConsumeStreamRequest{Topic: "e"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil { // open on the server
			t.Fatal(err)
		}
	}
	s, err := c.log.ConsumeStream(sctx, &stratav1.ConsumeStreamRequest{Topic: "e"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantCode(t, err, codes.ResourceExhausted)
}

func TestAutoCreateTopics(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.AutoCreateTopics = true
	cfg.TopicDefaults.Partitions = 2
	_, c := startBroker(t, cfg)
	ctx := ctxT(t)
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "auto", Partition: 1, Records: values(1, "x")}); err != nil {
		t.Fatal(err)
	}
	d, err := c.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "auto"})
	if err != nil || len(d.Topic.Partitions) != 2 {
		t.Fatalf("auto-created topic = %v, %v", d, err)
	}
	_, err = c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "other"})
	wantCode(t, err, codes.NotFound) // consume never creates
}

func TestTopicAdministration(t *testing.T) {
	_, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "a", nil)
	createTopic(t, c, "b", &stratav1.TopicConfig{Partitions: 4})
	l, err := c.topics.ListTopics(ctx, &stratav1.ListTopicsRequest{})
	if err != nil || len(l.Topics) != 2 || l.Topics[0].Name != "a" || len(l.Topics[1].Partitions) != 4 {
		t.Fatalf("ListTopics = %v, %v", l, err)
	}
	al, err := c.topics.AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: "a", Config: &stratav1.TopicConfig{MaxRecordBytes: 10}})
	if err != nil || al.Topic.Config.MaxRecordBytes != 10 {
		t.Fatalf("AlterTopicConfig = %v, %v", al, err)
	}
	_, err = c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "a", Records: []*stratav1.Record{{Value: make([]byte, 11)}}})
	wantCode(t, err, codes.InvalidArgument) // the new limit applies at once
	_, err = c.topics.AlterTopicConfig(ctx, &stratav1.AlterTopicConfigRequest{Name: "a", Config: &stratav1.TopicConfig{Partitions: 9}})
	wantField(t, err, "config")

	// Deleting a topic ends its open streams and frees the name.
	s, err := c.log.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "b", Records: values(1, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.topics.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv()
	wantCode(t, err, codes.Unavailable)
	_, err = c.topics.DeleteTopic(ctx, &stratav1.DeleteTopicRequest{Name: "b"})
	wantCode(t, err, codes.NotFound)
	createTopic(t, c, "b", nil)
	if d, err := c.topics.DescribeTopic(ctx, &stratav1.DescribeTopicRequest{Name: "b"}); err != nil || d.Topic.Partitions[0].LogEndOffset != 0 {
		t.Fatalf("recreated topic = %v, %v", d, err)
	}
}

func wantField(tb testing.TB, err error, field string) {
	tb.Helper()
	st := wantCode(tb, err, codes.InvalidArgument)
	br := detail[*errdetails.BadRequest](st.Details())
	if br == nil || len(br.FieldViolations) == 0 || br.FieldViolations[0].Field != field {
		tb.Fatalf("BadRequest detail = %v, want field %q", br, field)
	}
}

func detail[T any](details []any) T {
	var zero T
	for _, d := range details {
		if v, ok := d.(T); ok {
			return v
		}
	}
	return zero
}
