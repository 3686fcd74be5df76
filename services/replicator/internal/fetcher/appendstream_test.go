package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

// TestOneAppendStreamAcrossRestarts: the fetchers of two partitions, led
// by two brokers, append over one AppendStream, never the unary Append;
// when the local broker restarts the stream fails, the next append opens
// a new one, and replication goes on over it.
func TestOneAppendStreamAcrossRestarts(t *testing.T) {
	e := newEnv(t)
	// A second topic, u, led by broker 3.
	e.apply(metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: "u",
		Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 3}, Assignment: [][]int32{{3, 2, 1}}}})
	if l := e.fsm.State().Topics["u"].Partitions[0].Leader; l != 3 {
		t.Fatalf("u is led by %d, want 3", l)
	}
	b1, b3 := e.brokers[1], e.brokers[3]
	b1.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0, run("a", 0, 0, 20)...)
	b3.SetPartition("u", 0, stratav1.Role_ROLE_LEADER, 0, 0, run("c", 0, 0, 20)...)
	e.start(Options{MaxBytes: 512, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, true)
	waitBoth := func() {
		t.Helper()
		e.waitSame(b1, true)
		testutil.Eventually(t, 10*time.Second, func() error {
			_, want, err := b3.Log("u", 0)
			if err != nil {
				return err
			}
			_, got, err := e.local.Log("u", 0)
			if err != nil {
				return err
			}
			if len(got) != len(want) {
				return fmt.Errorf("u: %d records here, %d on the leader", len(got), len(want))
			}
			return nil
		})
	}
	waitBoth()
	s := e.local.Stats()
	if s.AppendStreams != 1 || s.UnaryAppends != 0 || s.Appends < 2 || s.Refused != 0 {
		t.Fatalf("before the restart: %d append streams, %d unary appends, %d appends, %d refused; want 1 stream carrying every append",
			s.AppendStreams, s.UnaryAppends, s.Appends, s.Refused)
	}

	e.local.Restart()
	e.ready <- struct{}{} // the applier re-applies the states
	b1.Produce(topic, 0, "after-1", "after-2")
	b3.Produce("u", 0, "after-3")
	waitBoth()
	after := e.local.Stats()
	if after.AppendStreams < 2 || after.UnaryAppends != 0 || after.Appends <= s.Appends {
		t.Fatalf("after the restart: %d append streams, %d unary appends, %d appends (%d before)",
			after.AppendStreams, after.UnaryAppends, after.Appends, s.Appends)
	}
}

// TestAppendsOverTheLocalSocket: with the broker's local socket the
// appends take it (one stream, admitted by uid, no TLS), and come back to
// it when the broker restarts and makes the socket again.
func TestAppendsOverTheLocalSocket(t *testing.T) {
	e := newEnvWith(t, envOptions{localSocket: true})
	leader := e.brokers[1]
	leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0, run("a", 0, 0, 30)...)
	e.start(Options{MaxBytes: 512}, true)
	e.waitSame(leader, true)
	s := e.local.Stats()
	if s.LocalSocketStreams != 1 || s.AppendStreams != 1 || s.UnaryAppends != 0 || s.Appends == 0 {
		t.Fatalf("%d streams over the socket, %d in all, %d unary appends, %d appends; want every append on one socket stream",
			s.LocalSocketStreams, s.AppendStreams, s.UnaryAppends, s.Appends)
	}
	e.local.Restart()
	e.ready <- struct{}{}
	leader.Produce(topic, 0, "after")
	e.waitSame(leader, true)
	if s := e.local.Stats(); s.LocalSocketStreams < 2 || s.LocalSocketStreams != s.AppendStreams {
		t.Fatalf("after the restart: %d streams over the socket of %d", s.LocalSocketStreams, s.AppendStreams)
	}
}

// TestStreamErrorIsTheUnaryError: an append the broker refuses fails on
// the stream with the status the unary Append fails with (code, message,
// details), and the stream goes on.
func TestStreamErrorIsTheUnaryError(t *testing.T) {
	e := newEnv(t)
	e.local.SetPartition(topic, 0, stratav1.Role_ROLE_FOLLOWER, 2, 0, run("a", 2, 0, 3)...)
	conn := e.ownConn()
	stream, unary := NewLocalClient(conn), NewLocalClient(conn, WithUnaryAppend())
	defer stream.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, a := range []*LocalAppend{
		{Topic: topic, LeaderEpoch: 1, LeaderHighWatermark: 3},                           // an older epoch
		{Topic: topic, LeaderEpoch: 2, RecordsEpoch: 3},                                  // records epoch past the leader's
		{Topic: "nope", LeaderEpoch: 2},                                                  // no such topic
		{Topic: topic, Partition: 7, LeaderEpoch: 2},                                     // no such partition
		{Topic: topic, LeaderEpoch: 2, Frames: badFrames()},                              // frames not at the log end
		{Topic: topic, LeaderEpoch: 2, Frames: mem.BufferSlice{mem.SliceBuffer("junk")}}, // not frames
	} {
		_, serr := stream.Append(ctx, a)
		_, uerr := unary.Append(ctx, a)
		if serr == nil || uerr == nil {
			t.Fatalf("%+v: stream %v, unary %v; want both refused", a, serr, uerr)
		}
		if s, u := status.Convert(serr).Proto(), status.Convert(uerr).Proto(); !proto.Equal(s, u) {
			t.Fatalf("%+v:\nstream %v\nunary  %v", a, s, u)
		}
	}
	// The stream is still there: a good append goes through.
	leo, err := stream.Append(ctx, &LocalAppend{Topic: topic, LeaderEpoch: 2, LeaderHighWatermark: 2})
	if err != nil || leo != 3 {
		t.Fatalf("append after the refusals: %d, %v", leo, err)
	}
	if s := e.local.Stats(); s.AppendStreams != 1 {
		t.Fatalf("%d append streams, want 1", s.AppendStreams)
	}
}

// badFrames is a frame at offset 10, past the end of a log that ends at 3.
func badFrames() mem.BufferSlice {
	return mem.BufferSlice{mem.SliceBuffer(logstore.AppendFrame(nil, 10, time.Now().UnixMilli(), []byte("x")))}
}

// ownConn dials the local broker as this node's replicator.
func (e *env) ownConn() *grpc.ClientConn {
	e.t.Helper()
	conn, err := brokerdial.Dial(e.local.Addr(), e.ca.ClientTLS(e.t, "replicator-2"), brokerdial.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() }) //nolint:errcheck // a test client
	return conn
}

// fakeLocal is a LocalReplica whose AppendStream answers with answer (nil:
// Unimplemented, as a broker that predates it), over plaintext loopback;
// with shuffle each answer comes after a random delay of its own, so
// answers overtake one another.
type fakeLocal struct {
	stratav1.UnimplementedLocalReplicaServer
	answer  func(req *stratav1.AppendRequest) *stratav1.AppendResponse
	shuffle bool
	streams atomic.Int32
	unary   atomic.Int32
}

func (f *fakeLocal) AppendStream(s grpc.BidiStreamingServer[stratav1.AppendRequest, stratav1.AppendResponse]) error {
	f.streams.Add(1)
	if f.answer == nil {
		return status.Error(codes.Unimplemented, "unknown method AppendStream")
	}
	var (
		mu sync.Mutex // one Send at a time
		wg sync.WaitGroup
	)
	defer wg.Wait()
	for {
		req, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp := f.answer(req)
		if !f.shuffle {
			if err := s.Send(resp); err != nil {
				return err
			}
			continue
		}
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			mu.Lock()
			defer mu.Unlock()
			s.Send(resp) //nolint:errcheck // the stream's end shows in Recv
		})
	}
}

func (f *fakeLocal) Append(_ context.Context, req *stratav1.AppendRequest) (*stratav1.AppendResponse, error) {
	f.unary.Add(1)
	return &stratav1.AppendResponse{LogEndOffset: int64(len(req.GetFrames()))}, nil
}

func serveFake(t *testing.T, f *fakeLocal) *grpc.ClientConn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	stratav1.RegisterLocalReplicaServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // stopped below
	}()
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close() //nolint:errcheck // a test client
		srv.Stop()
		<-done
	})
	return conn
}

// TestAppendErrorCarriesOffsetRange: an append refused on the stream with
// OutOfRange keeps its OffsetRange detail (and any other), which is what
// fixRange reads.
func TestAppendErrorCarriesOffsetRange(t *testing.T) {
	rng := &stratav1.OffsetRange{Requested: 50, LogStartOffset: 0, EndOffset: 20}
	info := &errdetails.ErrorInfo{Reason: "R", Domain: "d"}
	f := &fakeLocal{answer: func(req *stratav1.AppendRequest) *stratav1.AppendResponse {
		a1, _ := anypb.New(rng)
		a2, _ := anypb.New(info)
		return &stratav1.AppendResponse{RequestId: req.GetRequestId(), Error: &stratav1.AppendError{
			Code: int32(codes.OutOfRange), Message: "offset 50 out of range [0, 20)", Details: []*anypb.Any{a1, a2}}}
	}}
	c := NewLocalClient(serveFake(t, f))
	defer c.Close()
	_, err := c.Append(context.Background(), &LocalAppend{Topic: topic})
	if status.Code(err) != codes.OutOfRange || status.Convert(err).Message() != "offset 50 out of range [0, 20)" {
		t.Fatalf("err = %v, want OutOfRange with the broker's message", err)
	}
	if got := offsetRange(err); !proto.Equal(got, rng) {
		t.Fatalf("offsetRange(err) = %v, want %v", got, rng)
	}
	if d := status.Convert(err).Details(); len(d) != 2 || !proto.Equal(d[1].(proto.Message), info) {
		t.Fatalf("details %v, want the OffsetRange and the ErrorInfo", d)
	}
}

// TestAppendsAnsweredOutOfOrder: concurrent appends share the stream and
// each gets its own answer, whatever the order the broker answers in.
func TestAppendsAnsweredOutOfOrder(t *testing.T) {
	f := &fakeLocal{shuffle: true, answer: func(req *stratav1.AppendRequest) *stratav1.AppendResponse {
		return &stratav1.AppendResponse{RequestId: req.GetRequestId(), LogEndOffset: int64(req.GetPartition())*1000 + int64(len(req.GetFrames()))}
	}}
	c := NewLocalClient(serveFake(t, f))
	defer c.Close()
	var wg sync.WaitGroup
	for p := range int32(8) {
		wg.Go(func() {
			for i := range 50 {
				frames := make([]byte, i+1)
				leo, err := c.Append(context.Background(), &LocalAppend{Topic: topic, Partition: p,
					Frames: mem.BufferSlice{mem.SliceBuffer(frames)}})
				if want := int64(p)*1000 + int64(i+1); err != nil || leo != want {
					t.Errorf("partition %d append %d: %d, %v; want %d", p, i, leo, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := f.streams.Load(); n != 1 {
		t.Fatalf("%d streams, want 1", n)
	}
}

// TestAppendHonoursItsDeadline: an append whose answer does not come
// returns at its deadline, and the stream serves the next one.
func TestAppendHonoursItsDeadline(t *testing.T) {
	var drop atomic.Bool
	drop.Store(true)
	f := &fakeLocal{answer: func(req *stratav1.AppendRequest) *stratav1.AppendResponse {
		if drop.Swap(false) { // the first request is never answered
			return &stratav1.AppendResponse{RequestId: 1 << 60}
		}
		return &stratav1.AppendResponse{RequestId: req.GetRequestId(), LogEndOffset: 7}
	}}
	c := NewLocalClient(serveFake(t, f))
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.Append(ctx, &LocalAppend{Topic: topic}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("returned after %s", took)
	}
	leo, err := c.Append(context.Background(), &LocalAppend{Topic: topic})
	if err != nil || leo != 7 {
		t.Fatalf("next append: %d, %v", leo, err)
	}
}

// TestFallsBackToUnaryAppend: a broker that predates AppendStream answers
// Unimplemented; the append goes through the unary Append, and so does
// every later one, without asking for a stream again.
func TestFallsBackToUnaryAppend(t *testing.T) {
	f := &fakeLocal{}
	c := NewLocalClient(serveFake(t, f))
	defer c.Close()
	for i := range 3 {
		leo, err := c.Append(context.Background(), &LocalAppend{Topic: topic, Frames: mem.BufferSlice{mem.SliceBuffer(make([]byte, i+1))}})
		if err != nil || leo != int64(i+1) {
			t.Fatalf("append %d: %d, %v", i, leo, err)
		}
	}
	if s, u := f.streams.Load(), f.unary.Load(); s != 1 || u != 3 {
		t.Fatalf("%d streams asked for, %d unary appends; want 1 and 3", s, u)
	}
}
