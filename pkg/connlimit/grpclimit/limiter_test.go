package grpclimit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/connlimit/flood"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tlsPair returns server and client configs trusting one self-signed
// certificate for "localhost", client certificates required.
func tlsPair(tb testing.TB) (server, client *tls.Config) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	server = &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
	client = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	return server, client
}

// testIdentity names a call by its x-test-identity metadata. The limiter
// takes any identity function; the services give it the verified
// certificate's (pki.IdentityFromPeer), which one self-signed test
// certificate cannot vary.
func testIdentity(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("x-test-identity"); len(v) == 1 {
		return v[0], true
	}
	return "", false
}

type fixture struct {
	addr      string
	clientTLS *tls.Config
	metrics   *Metrics
	logs      *observer.ObservedLogs
}

// startServer serves grpc.health.v1 over mTLS on loopback with l's
// credentials, stats handler and interceptors and the given options.
func startServer(tb testing.TB, opts Options, sopts ...grpc.ServerOption) *fixture {
	tb.Helper()
	serverTLS, clientTLS := tlsPair(tb)
	core, logs := observer.New(zapcore.WarnLevel)
	opts.Metrics, opts.Logger = NewMetrics("test", "svc"), zap.New(core)
	l := New(opts)
	srv := grpc.NewServer(append([]grpc.ServerOption{
		grpc.Creds(l.Credentials(credentials.NewTLS(serverTLS))),
		grpc.StatsHandler(l.StatsHandler()),
		grpc.MaxConcurrentStreams(opts.MaxStreamsPerConn),
		grpc.ChainUnaryInterceptor(l.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(l.StreamInterceptor()),
	}, sopts...)...)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return &fixture{addr: ln.Addr().String(), clientTLS: clientTLS, metrics: opts.Metrics, logs: logs}
}

func (f *fixture) dial(tb testing.TB) healthpb.HealthClient {
	tb.Helper()
	cc, err := grpc.NewClient(f.addr, grpc.WithTransportCredentials(credentials.NewTLS(f.clientTLS)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

func ctxAs(tb testing.TB, identity string) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	if identity != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-test-identity", identity)
	}
	return ctx
}

// watch opens a health Watch stream (it stays open until ctx ends) and
// waits for its first answer, so that the call is in flight on the server.
func watch(tb testing.TB, c healthpb.HealthClient, ctx context.Context) error {
	tb.Helper()
	ws, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return err
	}
	_, err = ws.Recv()
	return err
}

// TestHandshakeDeadline: grpc.ConnectionTimeout bounds the TLS handshake
// done by the server's credentials, for a client that says nothing and
// for one that stalls mid-handshake; Credentials counts both as timeouts.
func TestHandshakeDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	f := startServer(t, Options{}, grpc.ConnectionTimeout(deadline))
	fl, err := flood.Start(flood.Options{
		Addr: f.addr, From: "127.0.0.1", Conns: 3, MaxDials: 3, Bound: 5 * time.Second,
		Kinds: []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fl.Stop() })
	timeouts := func() float64 { return testutil.ToFloat64(f.metrics.handshakeFailures.WithLabelValues(ReasonTimeout)) }
	flood.Until(t, 5*time.Second, "three handshake timeouts counted", func() bool { return timeouts() == 3 })
	// The server counts a timeout before the flood reads the close: Wait
	// (MaxDials spent, each connection closed or held for Bound) rather
	// than Stop, which would close a connection the flood has not yet
	// seen closed and so not count it.
	res := fl.Wait()
	if len(res.Closed) != 3 {
		t.Fatalf("flood: %+v, want its 3 connections closed by the server", res)
	}
	for _, c := range res.Closed {
		if c.Lifetime < deadline || c.Lifetime > deadline+time.Second {
			t.Errorf("%s connection closed after %v, want at the %v deadline", c.Kind, c.Lifetime, deadline)
		}
	}
	if got := testutil.ToFloat64(f.metrics.handshakeFailures.WithLabelValues(ReasonError)); got != 0 {
		t.Errorf("handshake failures{error} = %v, want 0", got)
	}
	if n := f.logs.FilterMessageSnippet("TLS handshake").Len(); n != 1 {
		t.Errorf("%d handshake warnings, want 1 (rate limited)", n)
	}
	// A client that finishes its handshake is served.
	if _, err := f.dial(t).Check(ctxAs(t, ""), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestIdentityCap: an identity at its cap is refused ResourceExhausted,
// over any connection; other identities and calls without one are not;
// a finished call gives its slot back.
func TestIdentityCap(t *testing.T) {
	f := startServer(t, Options{MaxStreamsPerIdentity: 2, Identity: testIdentity})
	c1, c2 := f.dial(t), f.dial(t)
	aliceCtx, endAlice := context.WithCancel(ctxAs(t, "alice"))
	defer endAlice()
	if err := watch(t, c1, aliceCtx); err != nil {
		t.Fatal(err)
	}
	if err := watch(t, c2, aliceCtx); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"unary over the cap", func() error {
			_, err := c1.Check(ctxAs(t, "alice"), &healthpb.HealthCheckRequest{})
			return err
		}, codes.ResourceExhausted},
		{"stream over the cap on another connection", func() error { return watch(t, f.dial(t), ctxAs(t, "alice")) }, codes.ResourceExhausted},
		{"another identity", func() error { return watch(t, c1, ctxAs(t, "bob")) }, codes.OK},
		{"no identity", func() error { return watch(t, c1, ctxAs(t, "")) }, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := status.Code(tc.call()); got != tc.want {
				t.Fatalf("code = %v, want %v", got, tc.want)
			}
		})
	}
	if got := testutil.ToFloat64(f.metrics.identityRefused); got != 2 {
		t.Errorf("identity refusals = %v, want 2", got)
	}
	if n := f.logs.FilterField(zap.String("identity", "alice")).Len(); n != 1 {
		t.Errorf("%d refusal warnings for alice, want 1 (rate limited)", n)
	}
	endAlice()
	flood.Until(t, 5*time.Second, "alice's slots given back", func() bool {
		_, err := c1.Check(ctxAs(t, "alice"), &healthpb.HealthCheckRequest{})
		return err == nil
	})
}

// TestConnStreamLimitReported: a connection whose calls in flight reach
// MaxStreamsPerConn is counted and logged once per reaching.
func TestConnStreamLimitReported(t *testing.T) {
	f := startServer(t, Options{MaxStreamsPerConn: 2})
	c := f.dial(t)
	ctx := ctxAs(t, "")
	if err := watch(t, c, ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.metrics.connStreamLimit); got != 0 {
		t.Fatalf("limit reached = %v with 1 of 2 streams open", got)
	}
	if err := watch(t, c, ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.metrics.connStreamLimit); got != 1 {
		t.Fatalf("limit reached = %v with 2 of 2 streams open, want 1", got)
	}
	if n := f.logs.FilterMessageSnippet("concurrent stream limit").Len(); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
	// Another connection has its own streams.
	if err := watch(t, f.dial(t), ctx); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(f.metrics.connStreamLimit); got != 1 {
		t.Errorf("limit reached = %v after a stream on another connection, want 1", got)
	}
}
