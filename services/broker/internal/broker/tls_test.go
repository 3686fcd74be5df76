package broker

import (
	"testing"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestMutualTLS(t *testing.T) {
	certs := t.TempDir()
	if _, err := pki.InitCluster(certs, pki.ClusterOptions{CAName: "strata-test", Nodes: []string{"1"}}, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	cfg := tlsConfig(t.TempDir(), certs)
	b, _ := startBroker(t, cfg) // the plaintext clients of startBroker are not used

	op, err := pki.NewReloader(pki.DirFiles(certs, "operator"), pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := op.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	conn, err := grpc.NewClient(b.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := stratav1.NewTopicsClient(conn).CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "secure"}); err != nil {
		t.Fatalf("CreateTopic over mTLS: %v", err)
	}
	if _, err := stratav1.NewLogClient(conn).Produce(ctx, &stratav1.ProduceRequest{Topic: "secure", Records: values(1, "x")}); err != nil {
		t.Fatalf("Produce over mTLS: %v", err)
	}

	plain, err := grpc.NewClient(b.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	if _, err := stratav1.NewTopicsClient(plain).ListTopics(ctx, &stratav1.ListTopicsRequest{}); err == nil {
		t.Fatal("a plaintext client was served by a TLS broker")
	}
}
