package acl

import (
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/pki"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The test service strata.test.Chat: Ping (unary, object cluster) answers
// the caller's identity; Chat (bidirectional, object = each message's
// value) answers "identity:value" for each message.
const (
	methodPing = "/strata.test.Chat/Ping"
	methodChat = "/strata.test.Chat/Chat"
)

func chatServiceDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "strata.test.Chat",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Ping",
			Handler: func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				h := func(ctx context.Context, _ any) (any, error) {
					id, _ := IdentityFromContext(ctx)
					return wrapperspb.String(id), nil
				}
				if icpt == nil {
					return h(ctx, in)
				}
				return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: methodPing}, h)
			},
		}},
		Streams: []grpc.StreamDesc{{
			StreamName:    "Chat",
			ServerStreams: true,
			ClientStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				for {
					in := new(wrapperspb.StringValue)
					if err := stream.RecvMsg(in); errors.Is(err, io.EOF) {
						return nil
					} else if err != nil {
						return err
					}
					id, _ := IdentityFromContext(stream.Context())
					if err := stream.SendMsg(wrapperspb.String(id + ":" + in.Value)); err != nil {
						return err
					}
				}
			},
		}},
	}
}

const testPolicy = DefaultPolicy + `
p, alice, orders, describe, allow
p, alice, orders, produce, allow
`

func testTable() MethodTable {
	healthTopic := TopicOf(func(r *healthpb.HealthCheckRequest) string { return r.GetService() })
	return Merge(MethodTable{
		"/grpc.health.v1.Health/Check": {Action: ActionDescribe, Object: healthTopic},
		"/grpc.health.v1.Health/Watch": {Action: ActionDescribe, Object: healthTopic},
		// Health/List is deliberately missing: default deny.
		methodPing: {Action: ActionAdmin},
		methodChat: {Action: ActionProduce, Object: TopicOf(func(r *wrapperspb.StringValue) string { return r.GetValue() })},
	})
}

type grpcFixture struct {
	dir   string
	addr  string
	authz *Authorizer
}

func startGRPC(t *testing.T) *grpcFixture {
	t.Helper()
	lg := zaptest.NewLogger(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := pki.InitCluster(dir, pki.ClusterOptions{
		CAName:    "test-ca",
		Nodes:     []string{"1"},
		Operators: []string{"operator", "alice", "mallory"},
	}, lg); err != nil {
		t.Fatal(err)
	}
	authz, err := NewAuthorizer(Options{Policy: testPolicy}, lg)
	if err != nil {
		t.Fatal(err)
	}
	icpt, err := NewInterceptor(authz, testTable(), lg)
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, err := pki.NewReloader(pki.DirFiles(dir, "broker-1"), pki.ReloaderOptions{}, lg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(srvTLS.ServerConfig())),
		grpc.ChainUnaryInterceptor(icpt.Unary()),
		grpc.ChainStreamInterceptor(icpt.Stream()),
	)
	hs := health.NewServer()
	hs.SetServingStatus("orders", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("payments", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	srv.RegisterService(chatServiceDesc(), struct{}{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		hs.Shutdown()
		srv.Stop()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &grpcFixture{dir: dir, addr: ln.Addr().String(), authz: authz}
}

// dial connects as identity name (its certificate from the fixture's dir).
func (f *grpcFixture) dial(t *testing.T, name string) *grpc.ClientConn {
	t.Helper()
	r, err := pki.NewReloader(pki.DirFiles(f.dir, name), pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := r.ClientConfig("broker-1")
	if err != nil {
		t.Fatal(err)
	}
	return f.dialCreds(t, credentials.NewTLS(cfg))
}

func (f *grpcFixture) dialCreds(t *testing.T, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cc.Close(); err != nil {
			t.Error(err)
		}
	})
	return cc
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code codes.Code, fragments ...string) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("err = %v, want code %s", err, code)
	}
	for _, f := range fragments {
		if !strings.Contains(status.Convert(err).Message(), f) {
			t.Fatalf("message %q lacks %q", status.Convert(err).Message(), f)
		}
	}
}

// wantDenialInfo checks the ErrorInfo that tells a client which grant is
// missing.
func wantDenialInfo(t *testing.T, err error, identity, action, object string) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == ReasonDenied && info.GetDomain() == ErrorDomain {
			got := info.GetMetadata()
			if got["identity"] != identity || got["action"] != action || got["object"] != object {
				t.Fatalf("ErrorInfo metadata %v, want identity %q, action %q, object %q", got, identity, action, object)
			}
			return
		}
	}
	t.Fatalf("%v carries no %s ErrorInfo: %v", err, ReasonDenied, status.Convert(err).Details())
}

func ping(ctx context.Context, cc *grpc.ClientConn) (string, error) {
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, methodPing, wrapperspb.String(""), out)
	return out.GetValue(), err
}

func TestInterceptorUnary(t *testing.T) {
	f := startGRPC(t)
	alice := healthpb.NewHealthClient(f.dial(t, "alice"))
	mallory := healthpb.NewHealthClient(f.dial(t, "mallory"))
	operator := f.dial(t, "operator")

	if _, err := alice.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: "orders"}); err != nil {
		t.Fatalf("alice describe orders: %v", err)
	}
	_, err := alice.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: "payments"})
	wantCode(t, err, codes.PermissionDenied, "alice", "describe", "payments")
	wantDenialInfo(t, err, "alice", "describe", "payments")
	_, err = mallory.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: "orders"})
	wantCode(t, err, codes.PermissionDenied, "mallory")
	// No topic: a clear message, without the RPC path (issue 13).
	_, err = alice.Check(callCtx(t), &healthpb.HealthCheckRequest{Service: ""})
	wantCode(t, err, codes.InvalidArgument, "a topic name is required")
	if msg := status.Convert(err).Message(); strings.Contains(msg, "/grpc.health") {
		t.Fatalf("message %q shows the RPC path", msg)
	}

	// Object cluster: operator (admin) may, alice may not.
	if id, err := ping(callCtx(t), operator); err != nil || id != "operator" {
		t.Fatalf("operator ping = %q, %v", id, err)
	}
	_, err = ping(callCtx(t), f.dial(t, "alice"))
	wantCode(t, err, codes.PermissionDenied, "alice", "admin", "cluster")
	wantDenialInfo(t, err, "alice", "admin", "cluster")

	// A method missing from the table is denied, even to admin.
	_, err = healthpb.NewHealthClient(operator).List(callCtx(t), &healthpb.HealthListRequest{})
	wantCode(t, err, codes.PermissionDenied, "/grpc.health.v1.Health/List")
}

func TestInterceptorIgnoresMetadataIdentity(t *testing.T) {
	f := startGRPC(t)
	alice := f.dial(t, "alice")
	ctx := metadata.AppendToOutgoingContext(callCtx(t),
		"identity", "operator", "x-strata-identity", "admin", "authorization", "Bearer operator")
	_, err := ping(ctx, alice)
	wantCode(t, err, codes.PermissionDenied, `"alice"`)
	_, err = healthpb.NewHealthClient(alice).Check(ctx, &healthpb.HealthCheckRequest{Service: "payments"})
	wantCode(t, err, codes.PermissionDenied, "alice")

	st, err := alice.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, methodChat)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendMsg(wrapperspb.String("orders")); err != nil {
		t.Fatal(err)
	}
	out := new(wrapperspb.StringValue)
	if err := st.RecvMsg(out); err != nil || out.GetValue() != "alice:orders" {
		t.Fatalf("handler saw %q, %v; want alice:orders", out.GetValue(), err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := st.RecvMsg(out); !errors.Is(err, io.EOF) {
		t.Fatalf("stream end: %v", err)
	}
}

func TestInterceptorStreams(t *testing.T) {
	f := startGRPC(t)
	alice := f.dial(t, "alice")
	chat := func(t *testing.T) grpc.ClientStream {
		t.Helper()
		st, err := alice.NewStream(callCtx(t), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, methodChat)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	send := func(t *testing.T, st grpc.ClientStream, topic string) error {
		t.Helper()
		if err := st.SendMsg(wrapperspb.String(topic)); err != nil {
			return err
		}
		return st.RecvMsg(new(wrapperspb.StringValue))
	}

	t.Run("every message is authorized", func(t *testing.T) {
		st := chat(t)
		for i := 0; i < 3; i++ {
			if err := send(t, st, "orders"); err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		err := send(t, st, "payments")
		wantCode(t, err, codes.PermissionDenied, "alice", "produce", "payments")
	})
	t.Run("server stream", func(t *testing.T) {
		hc := healthpb.NewHealthClient(alice)
		w, err := hc.Watch(callCtx(t), &healthpb.HealthCheckRequest{Service: "orders"})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := w.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("watch orders: %v, %v", resp, err)
		}
		w, err = hc.Watch(callCtx(t), &healthpb.HealthCheckRequest{Service: "payments"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.Recv()
		wantCode(t, err, codes.PermissionDenied, "payments")
	})
	t.Run("policy change applies mid-stream", func(t *testing.T) {
		st := chat(t)
		if err := send(t, st, "orders"); err != nil {
			t.Fatal(err)
		}
		if err := f.authz.Replace(DefaultPolicy + "p, alice, orders, describe, allow\n"); err != nil {
			t.Fatal(err)
		}
		err := send(t, st, "orders")
		wantCode(t, err, codes.PermissionDenied, "alice", "produce", "orders")
	})
}

func TestInterceptorNoCertificate(t *testing.T) {
	f := startGRPC(t)
	t.Run("TLS without client cert fails the handshake", func(t *testing.T) {
		r, err := pki.NewReloader(pki.DirFiles(f.dir, "alice"), pki.ReloaderOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := r.ClientConfig("broker-1")
		if err != nil {
			t.Fatal(err)
		}
		cfg.GetClientCertificate = nil // present nothing
		cc := f.dialCreds(t, credentials.NewTLS(cfg))
		_, err = ping(callCtx(t), cc)
		if code := status.Code(err); code != codes.Unavailable {
			t.Fatalf("err = %v, want the handshake refused (Unavailable)", err)
		}
	})

	// The interceptor path itself: calls without a verified TLS peer.
	authz, err := NewAuthorizer(Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	icpt, err := NewInterceptor(authz, testTable(), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	handler := func(context.Context, any) (any, error) {
		t.Fatal("handler ran for an unauthenticated call")
		return nil, nil
	}
	for name, ctx := range map[string]context.Context{
		"no peer":              context.Background(),
		"peer without auth":    peer.NewContext(context.Background(), &peer.Peer{}),
		"peer with other auth": peer.NewContext(context.Background(), &peer.Peer{AuthInfo: fakeAuth{}}),
		"tls without chain":    peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}}),
		"metadata only": metadata.NewIncomingContext(context.Background(),
			metadata.Pairs("identity", "operator")),
	} {
		t.Run("unary "+name, func(t *testing.T) {
			_, err := icpt.Unary()(ctx, wrapperspb.String("orders"), &grpc.UnaryServerInfo{FullMethod: methodPing}, handler)
			wantCode(t, err, codes.Unauthenticated)
		})
		t.Run("stream "+name, func(t *testing.T) {
			err := icpt.Stream()(nil, fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: methodChat},
				func(any, grpc.ServerStream) error {
					t.Fatal("handler ran for an unauthenticated stream")
					return nil
				})
			wantCode(t, err, codes.Unauthenticated)
		})
	}
}

func TestNewInterceptorRejectsBadTable(t *testing.T) {
	authz, err := NewAuthorizer(Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, table := range map[string]MethodTable{
		"unknown action": {"/x.Y/Z": {Action: "fly"}},
		"no action":      {"/x.Y/Z": {}},
		"short name":     {"Z": {Action: ActionAdmin}},
	} {
		if _, err := NewInterceptor(authz, table, nil); !errors.Is(err, ErrBadMethodTable) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := NewInterceptor(authz, Merge(HealthAndReflection(), testTable()), nil); err != nil {
		t.Errorf("good table refused: %v", err)
	}
}

type fakeAuth struct{}

func (fakeAuth) AuthType() string { return "insecure" }

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s fakeStream) Context() context.Context { return s.ctx }
