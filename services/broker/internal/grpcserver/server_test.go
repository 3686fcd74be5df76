package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestServer serves a fresh registry over bufconn.
func newTestServer(tb testing.TB) (stratav1.LogClient, *topic.Registry) {
	tb.Helper()
	lg := zaptest.NewLogger(tb)
	reg, err := topic.Open(topic.Options{
		Dir: tb.TempDir(),
		Defaults: topicconfig.Config{Partitions: 1, ReplicationFactor: 1, RetentionBytes: -1, RetentionMs: -1,
			SegmentBytes: 1 << 20, SegmentMs: 3600_000, MaxRecordBytes: 1 << 16, Fsync: "never", MinInsyncReplicas: 1,
			CleanupPolicy: topicconfig.CleanupDelete, DeleteRetentionMs: 3600_000},
		State: func(string, int32) partition.State {
			return partition.State{Role: partition.RoleLeader, LeaderID: 1, ISR: []int32{1}}
		},
		Logger: lg,
	})
	if err != nil {
		tb.Fatal(err)
	}
	srv := New(Config{NodeID: 1, AdvertiseAddr: "bufconn", MaxRecvMsgBytes: 4 << 20, MaxSendMsgBytes: 4 << 20,
		MaxConcurrentStreams: 100, MaxOpenStreams: 100, ProduceStreamInFlight: 4,
		KeepaliveMinTime: time.Second, KeepaliveTime: time.Minute, KeepaliveTimeout: time.Second}, reg, reg, nil, lg, Options{})
	lis := bufconn.Listen(1 << 20)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		conn.Close()
		srv.Stop(context.Background())
		if err := <-served; err != nil {
			tb.Error(err)
		}
		if err := reg.Close(); err != nil {
			tb.Error(err)
		}
	})
	return stratav1.NewLogClient(conn), reg
}

// The hand-built ConsumeResponse is byte-for-byte what proto.Marshal
// writes for the same message.
func TestConsumeResponseWireMatchesProto(t *testing.T) {
	frames := []struct {
		rec   *stratav1.Record
		ts    int64
		off   int64
		epoch int32
	}{
		{&stratav1.Record{Key: []byte("k"), Value: []byte("v"), Headers: []*stratav1.Header{{Key: "h", Value: []byte("1")}}}, 1700000000000, 0, 0},
		{&stratav1.Record{Value: make([]byte, 300)}, 1700000000001, 1, 2},
		{&stratav1.Record{}, 0, 2, 2},
	}
	var w consumeResponseBuilder
	w.reset("topic", 3)
	want := &stratav1.ConsumeResponse{Topic: "topic", Partition: 3, NextOffset: 3, HighWatermark: 10, LogStartOffset: 0}
	for _, f := range frames {
		w.addRecord(logstore.Frame{Offset: f.off, Timestamp: f.ts, Payload: partition.EncodePayload(nil, f.rec)}, f.epoch)
		want.Records = append(want.Records, &stratav1.Record{Key: f.rec.Key, Value: f.rec.Value, Headers: f.rec.Headers, TimestampMs: f.ts, Offset: f.off, LeaderEpoch: f.epoch})
	}
	got := w.finish(3, 10, 0)
	lib, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(lib) {
		t.Fatalf("wire bytes differ:\n got %x\nwant %x", got, lib)
	}
}

func TestConsumeStreamHonoursDeadline(t *testing.T) {
	c, reg := newTestServer(t)
	if _, err := reg.Create(context.Background(), "d", topicconfig.Config{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s, err := c.ConsumeStream(ctx, &stratav1.ConsumeStreamRequest{Topic: "d"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Recv() // the log is empty: the stream waits until the deadline
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("Recv = %v, want DeadlineExceeded", err)
	}
}

func TestProduceStreamPipelinesInOrder(t *testing.T) {
	c, reg := newTestServer(t)
	if _, err := reg.Create(context.Background(), "p", topicconfig.Config{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps, err := c.ProduceStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Far more requests than ProduceStreamInFlight, sent before reading
	// any answer: the server must keep receiving while answers queue.
	const n = 200
	sent := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := ps.Send(&stratav1.ProduceRequest{Topic: "p", Records: []*stratav1.Record{{Value: []byte("x")}}, CorrelationId: uint64(i)}); err != nil {
				sent <- err
				return
			}
		}
		sent <- ps.CloseSend()
	}()
	for i := 0; i < n; i++ {
		r, err := ps.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.CorrelationId != uint64(i) || r.BaseOffset != int64(i) {
			t.Fatalf("answer %d: correlation %d offset %d", i, r.CorrelationId, r.BaseOffset)
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
}

func TestToStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"not found", topic.ErrNotFound, codes.NotFound},
		{"partition", topic.ErrPartitionNotFound, codes.NotFound},
		{"exists", topic.ErrExists, codes.AlreadyExists},
		{"too large", &partition.RecordTooLargeError{Index: 2, Size: 10, Max: 5}, codes.InvalidArgument},
		{"out of range", &logstore.OutOfRangeError{Offset: 9, Start: 0, End: 3}, codes.OutOfRange},
		{"not leader", &partition.NotLeaderError{LeaderID: 2}, codes.FailedPrecondition},
		{"isr", &partition.NotEnoughReplicasError{ISR: 1, MinISR: 2}, codes.Unavailable},
		{"isr after append", &partition.NotEnoughReplicasError{ISR: 1, MinISR: 2, AfterAppend: true}, codes.Unavailable},
		{"lease expired", fmt.Errorf("produce: %w", &partition.LeaseExpiredError{Topic: "t", Epoch: 3, Since: 4 * time.Second, Lease: 3 * time.Second}), codes.Unavailable},
		{"closed", logstore.ErrClosed, codes.Unavailable},
		{"failed", logstore.ErrFailed, codes.Unavailable},
		{"corrupt", &logstore.CorruptError{}, codes.DataLoss},
		{"no space", fmt.Errorf("partition t/0: append: %w", &logstore.NoSpaceError{Dir: "/data/topics/t/0", Free: 512, Err: syscall.ENOSPC}), codes.ResourceExhausted},
		{"no space outside the log", &fs.PathError{Op: "write", Path: "/data/topics/t/topic.json.tmp", Err: syscall.ENOSPC}, codes.ResourceExhausted},
		{"quota", &fs.PathError{Op: "write", Path: "/data/topics/t/topic.json.tmp", Err: syscall.EDQUOT}, codes.ResourceExhausted},
		{"failed after no space", fmt.Errorf("%w: %w", logstore.ErrFailed, &logstore.NoSpaceError{Dir: "/d", Free: -1, Err: syscall.ENOSPC}), codes.Unavailable},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"other", errors.New("boom"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(toStatus(tt.err)); got != tt.want {
				t.Fatalf("toStatus(%v) = %v, want %v", tt.err, got, tt.want)
			}
			// The per-request error of a ProduceStream answer carries the same code.
			if got := codes.Code(toProtoError(tt.err).GetCode()); got != tt.want {
				t.Fatalf("toProtoError(%v) code = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}
