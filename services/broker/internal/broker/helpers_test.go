package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is a broker on loopback with ephemeral ports in dir.
func testConfig(dir string) config.Config {
	c := config.Default()
	c.DataDir = dir
	c.InsecureNoAuth = true
	c.Listen = "127.0.0.1:0"
	c.MetricsListen = "127.0.0.1:0"
	c.Advertise = "127.0.0.1:9092"
	c.TopicDefaults.Fsync = "never"
	c.TopicDefaults.SegmentBytes = 1 << 20
	c.MaxRecvMsgBytes = 2 << 20
	c.ShutdownTimeout = 5 * time.Second
	return c
}

type clients struct {
	log    stratav1.LogClient
	topics stratav1.TopicsClient
	meta   stratav1.MetadataClient
	conn   *grpc.ClientConn
}

// startBroker starts a broker and dials it; cleanup closes both.
func startBroker(tb testing.TB, cfg config.Config) (*Broker, clients) {
	tb.Helper()
	b, err := Start(context.Background(), cfg, zaptest.NewLogger(tb), Options{Getenv: func(string) string { return "" }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Shutdown(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return b, dial(tb, b)
}

func dial(tb testing.TB, b *Broker) clients {
	tb.Helper()
	conn, err := grpc.NewClient(b.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return clients{stratav1.NewLogClient(conn), stratav1.NewTopicsClient(conn), stratav1.NewMetadataClient(conn), conn}
}

func ctxT(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func createTopic(tb testing.TB, c clients, name string, cfg *stratav1.TopicConfig) {
	tb.Helper()
	if _, err := c.topics.CreateTopic(ctxT(tb), &stratav1.CreateTopicRequest{Name: name, Config: cfg}); err != nil {
		tb.Fatal(err)
	}
}

func values(n int, prefix string) []*stratav1.Record {
	recs := make([]*stratav1.Record, n)
	for i := range recs {
		recs[i] = &stratav1.Record{Value: fmt.Appendf(nil, "%s%06d", prefix, i)}
	}
	return recs
}

func wantCode(tb testing.TB, err error, code codes.Code) *status.Status {
	tb.Helper()
	st, ok := status.FromError(err)
	if !ok || st.Code() != code {
		tb.Fatalf("err = %v, want code %v", err, code)
	}
	return st
}

// eventually polls cond until it holds or the deadline passes.
func eventually(tb testing.TB, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met before the deadline")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
