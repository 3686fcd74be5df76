package broker

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/grpctls/localsock"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/config"
)

// streamStatus is the status an AppendStream answer carries, or nil.
func streamStatus(r *stratav1.AppendResponse) *status.Status {
	e := r.GetError()
	if e == nil {
		return nil
	}
	return status.New(codes.Code(e.GetCode()), e.GetMessage())
}

// TestAppendStreamAppendsAsAppendDoes: on one stream, as this node's
// replicator: fetched frames are appended at the follower's log end, a
// repeat of them is refused in-band with the unary Append's very error
// and the stream goes on, a high watermark passes on, and closing the
// stream ends it cleanly.
func TestAppendStreamAppendsAsAppendDoes(t *testing.T) {
	pr := newPair(t, []int32{1, 2}, 1)
	ctx := ctxT(t)
	if _, err := pr.op1.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "events", Records: values(5, "s"), Acks: stratav1.Acks_ACKS_LEADER}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := pr.fetcher(fctx, 1, 0).Recv()
	if err != nil || len(resp.GetFrames()) == 0 {
		t.Fatalf("fetch: %v, %d frame bytes", err, len(resp.GetFrames()))
	}
	req := &stratav1.AppendRequest{Topic: "events", LeaderEpoch: 1, RecordsEpoch: resp.GetRecordsEpoch(),
		Frames: resp.GetFrames(), LeaderHighWatermark: 3}

	s, err := pr.rep2.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(r *stratav1.AppendRequest, id uint64) *stratav1.AppendResponse {
		t.Helper()
		r = proto.CloneOf(r)
		r.RequestId = id
		if err := s.Send(r); err != nil {
			t.Fatal(err)
		}
		a, err := s.Recv()
		if err != nil {
			t.Fatalf("request %d: %v", id, err)
		}
		if a.GetRequestId() != id {
			t.Fatalf("answer to %d, want %d", a.GetRequestId(), id)
		}
		return a
	}
	if a := exchange(req, 1); a.GetError() != nil || a.GetLogEndOffset() != 5 {
		t.Fatalf("append: %v", a)
	}
	a := exchange(req, 2)
	_, uerr := pr.rep2.Append(ctx, req)
	if st := streamStatus(a); st == nil || st.Code() != codes.FailedPrecondition || uerr == nil ||
		st.Message() != status.Convert(uerr).Message() || st.Code() != status.Code(uerr) {
		t.Fatalf("the same frames again: stream %v, unary %v; want the same FailedPrecondition", a, uerr)
	}
	if a := exchange(&stratav1.AppendRequest{Topic: "events", LeaderEpoch: 1, LeaderHighWatermark: 5}, 3); a.GetError() != nil || a.GetLogEndOffset() != 5 {
		t.Fatalf("high watermark: %v", a)
	}
	if st := pr.status(pr.rep2); st.GetHighWatermark() != 5 || st.GetLogEndOffset() != 5 {
		t.Fatalf("follower HW %d, LEO %d; want 5, 5", st.GetHighWatermark(), st.GetLogEndOffset())
	}
	if a := exchange(&stratav1.AppendRequest{Topic: "nope", LeaderEpoch: 1}, 4); streamStatus(a).Code() != codes.NotFound {
		t.Fatalf("unknown topic: %v", a)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, want the stream ended cleanly", err)
	}
}

// TestAppendStreamOnlyForItsReplicator: the stream is refused at its
// opening to anyone but this node's replicator.
func TestAppendStreamOnlyForItsReplicator(t *testing.T) {
	pr := newPair(t, []int32{1, 2}, 1)
	for _, who := range []string{"replicator-1", "broker-2", "operator"} {
		s, err := replicaClient(t, pr.follower, pr.certs, who).AppendStream(ctxT(t))
		if err == nil {
			_, err = s.Recv()
		}
		wantCode(t, err, codes.PermissionDenied)
	}
}

// TestAppendStreamEndsAtShutdown: a broker stopping ends the open append
// stream (Unavailable) at once; its graceful stop does not wait for it.
func TestAppendStreamEndsAtShutdown(t *testing.T) {
	pr := newPair(t, []int32{1, 2}, 1)
	s, err := pr.rep2.AppendStream(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&stratav1.AppendRequest{Topic: "events", LeaderEpoch: 1, RequestId: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := pr.follower.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("shutdown took %s: it waited for the append stream", took)
	}
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("after shutdown: %v, want Unavailable", err)
	}
}

// socketDir is a new private directory for a local socket (a short path:
// at most 107 bytes).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "strata-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) //nolint:errcheck // a temp dir
	return dir
}

// startSocketBroker starts broker-1 in cluster mode with a local socket.
func startSocketBroker(t *testing.T, path string, mod func(*config.Config)) (*Broker, string) {
	t.Helper()
	certs := initClusterCerts(t)
	fr := startFakeReplicator(t, certs)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ReplicatorAddr, cfg.LocalSocket = fr.addr, path
	if mod != nil {
		mod(&cfg)
	}
	return startTLSBroker(t, cfg), certs
}

// dialSocket dials a broker's local socket as this process's uid.
func dialSocket(t *testing.T, path string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(localsock.Target(path), grpc.WithTransportCredentials(localsock.Credentials(uint32(os.Getuid()), nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() }) //nolint:errcheck // a test client
	return conn
}

// TestLocalSocketServesOnlyLocalReplica: the socket (mode 0600) answers
// LocalReplica, stream and unary, to a peer of the broker's uid, as the
// node's replicator; nothing else is served there; a stopped broker
// removes it.
func TestLocalSocketServesOnlyLocalReplica(t *testing.T) {
	path := filepath.Join(socketDir(t), "broker.sock")
	b, _ := startSocketBroker(t, path, nil)
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v; want a socket with mode 0600", fi, err)
	}
	if b.LocalSocketAddr() == nil {
		t.Fatal("LocalSocketAddr is nil")
	}
	conn := dialSocket(t, path)
	ctx := ctxT(t)
	lr := stratav1.NewLocalReplicaClient(conn)
	if _, err := lr.ApplyPartitionState(ctx, orders(stratav1.Role_ROLE_FOLLOWER, 1, 2, "b2:9092")); err != nil {
		t.Fatalf("apply over the socket: %v", err)
	}
	s, err := lr.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&stratav1.AppendRequest{Topic: "orders", LeaderEpoch: 1, RequestId: 5}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.Recv(); err != nil || a.GetRequestId() != 5 || a.GetError() != nil {
		t.Fatalf("append over the socket: %v, %v", a, err)
	}
	if _, err := stratav1.NewLogClient(conn).Produce(ctx, &stratav1.ProduceRequest{Topic: "orders", Records: values(1, "x")}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("Log.Produce over the socket: %v, want Unimplemented", err)
	}
	if _, err := stratav1.NewReplicaToolsClient(conn).PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: "orders"}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ReplicaTools over the socket: %v, want Unimplemented", err)
	}
	if err := b.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after shutdown: %v, want it removed", err)
	}
}

// TestLocalSocketRefusesAnotherUID: a broker that admits another uid
// (here: not this test's) refuses this process at the connection, and
// nothing it asked reaches the broker.
func TestLocalSocketRefusesAnotherUID(t *testing.T) {
	path := filepath.Join(socketDir(t), "broker.sock")
	startSocketBroker(t, path, func(c *config.Config) { c.LocalSocketPeerUID = int64(os.Getuid()) + 1 })
	conn := dialSocket(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := stratav1.NewLocalReplicaClient(conn).StorageId(ctx, &stratav1.StorageIdRequest{})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("a peer of another uid: %v, want the connection refused", err)
	}
}

// TestLocalSocketStaleAtStart: a socket left at the path by a crash is
// replaced; a regular file there is refused, never removed.
func TestLocalSocketStaleAtStart(t *testing.T) {
	dir := socketDir(t)
	path := filepath.Join(dir, "broker.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false) // as a killed broker leaves it
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	startSocketBroker(t, path, nil)
	if _, err := stratav1.NewLocalReplicaClient(dialSocket(t, path)).StorageId(ctxT(t), &stratav1.StorageIdRequest{}); err != nil {
		t.Fatalf("over the replaced socket: %v", err)
	}

	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("not a socket"), 0o600); err != nil {
		t.Fatal(err)
	}
	certs := initClusterCerts(t)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ReplicatorAddr, cfg.LocalSocket = startFakeReplicator(t, certs).addr, file
	if _, err := Start(context.Background(), cfg, zaptest.NewLogger(t), Options{Getenv: func(string) string { return "" }}); err == nil ||
		!strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Start over a regular file: %v, want a refusal", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "not a socket" {
		t.Fatalf("the file after the refusal: %q, %v", b, err)
	}
}
