package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc/codes"
)

func newTestProducer(tb testing.TB, cl *Client, o ProducerOptions) *Producer {
	tb.Helper()
	p, err := cl.NewProducer(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			tb.Error(err)
		}
	})
	return p
}

func waitAll(tb testing.TB, ctx context.Context, rs []*Result) []RecordMetadata {
	tb.Helper()
	out := make([]RecordMetadata, len(rs))
	for i, r := range rs {
		m, err := r.Wait(ctx)
		if err != nil {
			tb.Fatalf("record %d: %v", i, err)
		}
		out[i] = m
	}
	return out
}

func TestProduceSyncOffsets(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{})
	ctx := testCtx(t)
	for i := 0; i < 3; i++ {
		m, err := p.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("v")})
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != int64(i) || m.Partition != 0 {
			t.Fatalf("record %d: got %d/%d", i, m.Partition, m.Offset)
		}
	}
	_, err := p.ProduceSync(ctx, &Record{Topic: "missing"})
	if !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("unknown topic: got %v, want ErrTopicNotFound", err)
	}
	_, err = p.ProduceSync(ctx, &Record{Topic: "t", Partition: 5, ExplicitPartition: true})
	if !errors.Is(err, ErrPartitionNotFound) {
		t.Fatalf("bad partition: got %v, want ErrPartitionNotFound", err)
	}
}

func TestLingerBatchesRecords(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	const linger = 150 * time.Millisecond
	p := newTestProducer(t, cl, ProducerOptions{Linger: linger})
	ctx := testCtx(t)
	start := time.Now()
	var rs []*Result
	for i := 0; i < 20; i++ {
		rs = append(rs, p.Produce(ctx, &Record{Topic: "t", Value: []byte(strconv.Itoa(i))}))
	}
	waitAll(t, ctx, rs)
	if took := time.Since(start); took < linger {
		t.Errorf("answered after %v, before the linger of %v", took, linger)
	}
	reqs := fc.requests()
	if len(reqs) != 1 || len(reqs[0].GetRecords()) != 20 {
		t.Fatalf("got %d requests (first with %d records), want 1 with 20", len(reqs), len(reqs[0].GetRecords()))
	}
}

func TestLingerDoesNotSplitWhileInFlight(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	// The first batch is answered only when the test says so.
	started, release := make(chan struct{}), make(chan struct{})
	first := true
	fc.produceErr = func(*fakeBroker, *stratav1.ProduceRequest) *stratav1.Error {
		if first {
			first = false
			close(started)
			<-release
		}
		return nil
	}
	cl := newTestClient(t, fc)
	const linger = 5 * time.Millisecond
	// One batch in flight fills the partition's window (with more, each
	// linger would send a batch until the window is full).
	p := newTestProducer(t, cl, ProducerOptions{Linger: linger, MaxInFlight: 1})
	ctx := testCtx(t)
	rs := []*Result{p.Produce(ctx, &Record{Topic: "t", Value: []byte("first")})}
	<-started
	// While the first batch is in flight, records arrive further apart
	// than the linger, so each one's linger runs out before the next: they
	// still belong in one batch, sent when the first is answered. The
	// sleep is the passing time under test, not a wait for an event.
	for i := range 10 {
		rs = append(rs, p.Produce(ctx, &Record{Topic: "t", Value: []byte(strconv.Itoa(i))}))
		time.Sleep(3 * linger)
	}
	close(release)
	waitAll(t, ctx, rs)
	if reqs := fc.requests(); len(reqs) != 2 {
		t.Fatalf("%d records went out in %d requests; want 2 (the first, then the other %d together)", len(rs), len(reqs), len(rs)-1)
	}
}

func TestMaxBatchBytesClosesBatches(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	rec := Record{Topic: "t", Value: make([]byte, 100)}
	per := rec.size()
	// Linger far beyond the test: only full batches may be sent.
	p := newTestProducer(t, cl, ProducerOptions{Linger: time.Hour, MaxBatchBytes: 10 * per})
	ctx, cancel := context.WithTimeout(testCtx(t), 3*time.Second)
	defer cancel()
	var rs []*Result
	for i := 0; i < 100; i++ {
		r := rec
		rs = append(rs, p.Produce(ctx, &r))
	}
	metas := waitAll(t, ctx, rs)
	for i, m := range metas {
		if m.Offset != int64(i) {
			t.Fatalf("record %d at offset %d", i, m.Offset)
		}
	}
	reqs := fc.requests()
	if len(reqs) != 10 {
		t.Fatalf("got %d requests, want 10", len(reqs))
	}
	for i, r := range reqs {
		if n := len(r.GetRecords()); n != 10 {
			t.Errorf("request %d has %d records, want 10", i, n)
		}
	}
}

func TestRetryNotLeaderRefreshesMetadata(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1) // leader: broker 0
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{})
	ctx := testCtx(t)
	if _, err := p.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	// Leadership moves; the client's cache still says broker 0, which
	// answers "not the leader" without a hint.
	fc.setLeader("t", 0, 1)
	fc.mu.Lock()
	before := fc.metadataCalls
	fc.mu.Unlock()
	m, err := p.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Offset != 1 {
		t.Fatalf("offset %d, want 1", m.Offset)
	}
	fc.mu.Lock()
	after := fc.metadataCalls
	fc.mu.Unlock()
	if after <= before {
		t.Fatalf("metadata was not refreshed (%d calls before, %d after)", before, after)
	}
	reqs := fc.requests()
	if n := len(reqs); n != 3 {
		t.Fatalf("got %d produce requests, want 3 (ok, not-leader, ok)", n)
	}
}

func TestDeliveryTimeoutOnPersistentUnavailable(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	fc.produceErr = func(*fakeBroker, *stratav1.ProduceRequest) *stratav1.Error {
		return &stratav1.Error{Code: int32(codes.Unavailable), Message: "not enough replicas"}
	}
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{DeliveryTimeout: 300 * time.Millisecond})
	_, err := p.ProduceSync(testCtx(t), &Record{Topic: "t"})
	if !errors.Is(err, ErrDeliveryTimeout) || Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want ErrDeliveryTimeout wrapping Unavailable", err)
	}
	if n := len(fc.requests()); n < 2 {
		t.Fatalf("%d attempts, want retries", n)
	}
}

func TestNonRetriableErrorFailsAtOnce(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	fc.produceErr = func(*fakeBroker, *stratav1.ProduceRequest) *stratav1.Error {
		return &stratav1.Error{Code: int32(codes.InvalidArgument), Message: "record too large"}
	}
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{})
	_, err := p.ProduceSync(testCtx(t), &Record{Topic: "t"})
	if Code(err) != codes.InvalidArgument {
		t.Fatalf("got %v, want InvalidArgument", err)
	}
	if n := len(fc.requests()); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

// TestOrderingUnderRetries fails many batches with retriable errors (and
// moves leaders) while records of several partitions are in flight, and
// checks that each partition's log holds its records exactly once, in the
// order they were produced.
func TestOrderingUnderRetries(t *testing.T) {
	fc := newFakeCluster(t, 2)
	const parts, perKey = 4, 300
	fc.addTopic("t", parts)
	var mu sync.Mutex
	n := 0
	fc.produceErr = func(b *fakeBroker, req *stratav1.ProduceRequest) *stratav1.Error {
		mu.Lock()
		defer mu.Unlock()
		n++
		switch {
		case n%3 == 0:
			return &stratav1.Error{Code: int32(codes.Unavailable), Message: "injected"}
		case n%7 == 0:
			// Move the partition to the other broker: this one refuses.
			fc.topics[req.GetTopic()][req.GetPartition()].leader = 1 - b.id
			return &stratav1.Error{Code: int32(codes.FailedPrecondition), Message: "not the leader",
				NotLeader: &stratav1.NotLeader{Topic: req.GetTopic(), Partition: req.GetPartition(), LeaderId: -1}}
		}
		return nil
	}
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{MaxBatchRecords: 7, RetryBackoff: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond})
	ctx := testCtx(t)
	var rs []*Result
	for i := 0; i < perKey; i++ {
		for k := 0; k < parts; k++ {
			rs = append(rs, p.Produce(ctx, &Record{Topic: "t", Partition: int32(k), ExplicitPartition: true,
				Key: []byte(strconv.Itoa(k)), Value: []byte(strconv.Itoa(i))}))
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, rs)
	for k := 0; k < parts; k++ {
		log := fc.log("t", k)
		if len(log) != perKey {
			t.Fatalf("partition %d holds %d records, want %d", k, len(log), perKey)
		}
		for i, r := range log {
			if string(r.GetValue()) != strconv.Itoa(i) {
				t.Fatalf("partition %d offset %d holds %q, want %q", k, i, r.GetValue(), fmt.Sprint(i))
			}
		}
	}
}

func TestProduceRetriesAcrossBrokerRestart(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{})
	ctx := testCtx(t)
	if _, err := p.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	fc.brokers[0].restart(t)
	m, err := p.ProduceSync(ctx, &Record{Topic: "t", Value: []byte("b")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Offset != 1 {
		t.Fatalf("offset %d, want 1", m.Offset)
	}
}

func TestCloseFailsQueuedRecords(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	p, err := cl.NewProducer(ProducerOptions{Linger: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	r := p.Produce(ctx, &Record{Topic: "t"})
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	// Close flushes first: the lingering record is sent, not dropped.
	if err := p.Close(cctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Wait(ctx); err != nil {
		t.Fatalf("flushed record: %v", err)
	}
	if _, err := p.Produce(ctx, &Record{Topic: "t"}).Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("produce after close: %v, want ErrClosed", err)
	}
}

// TestCloseEndsStreamsCleanly: Close ends each produce stream by closing
// its sending side, so the broker sees the end of the stream (io.EOF), not
// a cancellation.
func TestCloseEndsStreamsCleanly(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 2) // partition i led by broker i: two streams
	cl := newTestClient(t, fc)
	p, err := cl.NewProducer(ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var rs []*Result
	for i := int32(0); i < 2; i++ {
		rs = append(rs, p.Produce(ctx, &Record{Topic: "t", Partition: i, ExplicitPartition: true}))
	}
	waitAll(t, ctx, rs)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	fc.mu.Lock()
	ends := slices.Clone(fc.streamEnds)
	fc.mu.Unlock()
	if len(ends) != 2 {
		t.Fatalf("%d streams ended, want 2: %v", len(ends), ends)
	}
	for _, err := range ends {
		if !errors.Is(err, io.EOF) {
			t.Fatalf("a stream ended with %v, want io.EOF", err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no brokers", Config{Insecure: true}},
		{"no tls", Config{Brokers: []string{"x:1"}}},
		{"empty address", Config{Brokers: []string{""}, Insecure: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *ConfigError
			if err := tc.cfg.Validate(); !errors.As(err, &ce) {
				t.Fatalf("got %v, want a ConfigError", err)
			}
		})
	}
}

// TestBatchStaysWithinMaxBatchBytes: a record that would take the open
// batch past MaxBatchBytes starts the next batch, so a batch is at most
// MaxBatchBytes or one record, and fits a gRPC message (it could hold
// MaxBatchBytes and then a record of the largest max.record.bytes).
func TestBatchStaysWithinMaxBatchBytes(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	const maxBatch = 1000
	p := newTestProducer(t, cl, ProducerOptions{Linger: time.Hour, MaxBatchBytes: maxBatch})
	ctx := testCtx(t)
	var rs []*Result
	for _, n := range []int{600, 600, 100, 2000, 50} {
		rs = append(rs, p.Produce(ctx, &Record{Topic: "t", Value: make([]byte, n)}))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitAll(t, ctx, rs)
	var got [][]int
	for _, req := range fc.requests() {
		var sizes []int
		total := 0
		for _, r := range req.GetRecords() {
			sizes = append(sizes, len(r.GetValue()))
			total += (&Record{Value: r.GetValue()}).size()
		}
		got = append(got, sizes)
		if total > maxBatch && len(sizes) > 1 {
			t.Errorf("a batch of %d records holds %d bytes, more than MaxBatchBytes %d", len(sizes), total, maxBatch)
		}
	}
	if fmt.Sprint(got) != "[[600] [600 100] [2000] [50]]" {
		t.Fatalf("batches %v, want [[600] [600 100] [2000] [50]]", got)
	}
}

// TestRecordLargerThanAnyTopicRefused: a record above the largest
// max.record.bytes is refused before it is sent (it failed in gRPC with
// ResourceExhausted).
func TestRecordLargerThanAnyTopicRefused(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	cl := newTestClient(t, fc)
	p := newTestProducer(t, cl, ProducerOptions{})
	ctx := testCtx(t)
	_, err := p.ProduceSync(ctx, &Record{Topic: "t", Key: []byte("k"), Value: make([]byte, stratav1.MaxRecordBytes)})
	var tl *RecordTooLargeError
	if !errors.As(err, &tl) || tl.Size != stratav1.MaxRecordBytes+1 || Code(err) != codes.InvalidArgument {
		t.Fatalf("ProduceSync = %v, want a *RecordTooLargeError of %d bytes", err, stratav1.MaxRecordBytes+1)
	}
	if !strings.Contains(err.Error(), "max.record.bytes is at most") {
		t.Fatalf("%q does not name max.record.bytes", err)
	}
	if n := len(fc.requests()); n != 0 {
		t.Fatalf("%d produce requests sent", n)
	}
}
