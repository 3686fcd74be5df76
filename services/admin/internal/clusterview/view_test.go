package clusterview

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNode answers Metadata with topic t (two partitions), with offsets
// only for the partition it leads, and Consume only for that partition.
type fakeNode struct {
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedLogServer
	id    int32
	leads int32
}

func (f *fakeNode) Metadata(_ context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	var parts []*stratav1.PartitionMetadata
	for p := int32(0); p < 2; p++ {
		pm := &stratav1.PartitionMetadata{Partition: p, LeaderId: p + 1, Replicas: []int32{1, 2}, Isr: []int32{1, 2},
			LogStartOffset: -1, LogEndOffset: -1, HighWatermark: -1}
		if p == f.leads {
			pm.LogStartOffset, pm.LogEndOffset, pm.HighWatermark = 0, 10*int64(p+1), 10*int64(p+1)
		}
		parts = append(parts, pm)
	}
	return &stratav1.MetadataResponse{ControllerId: 1, Brokers: []*stratav1.BrokerInfo{{Id: 1, Alive: true}, {Id: 2, Alive: true}},
		Topics: []*stratav1.TopicMetadata{{Name: "t", Partitions: parts}}}, nil
}

func (f *fakeNode) Consume(_ context.Context, req *stratav1.ConsumeRequest) (*stratav1.ConsumeResponse, error) {
	if req.GetPartition() != f.leads {
		return nil, status.Error(codes.FailedPrecondition, "not the leader")
	}
	return &stratav1.ConsumeResponse{Topic: req.GetTopic(), Partition: req.GetPartition(),
		Records: []*stratav1.Record{{Offset: req.GetOffset(), Value: []byte{byte(f.id)}}}, NextOffset: req.GetOffset() + 1}, nil
}

type testPKI struct {
	server, client tls.Certificate
	ca             *pki.CA
}

func newTestPKI(tb testing.TB) testPKI {
	tb.Helper()
	ca, err := pki.CreateCA(pki.CAOptions{CommonName: "view-test"}, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	pair := func(req pki.IssueRequest) tls.Certificate {
		kp, err := ca.Issue(req)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	return testPKI{ca: ca,
		server: pair(pki.IssueRequest{CommonName: "broker-1", Profile: pki.ProfileServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}),
		client: pair(pki.IssueRequest{CommonName: "admin", Profile: pki.ProfileClient})}
}

func (p testPKI) tlsFor(host string) (*tls.Config, error) {
	return &tls.Config{ServerName: host, RootCAs: p.ca.CertPool(), Certificates: []tls.Certificate{p.client}, MinVersion: tls.VersionTLS13}, nil
}

func serveNode(tb testing.TB, p testPKI, f *fakeNode) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS13})))
	stratav1.RegisterMetadataServer(srv, f)
	stratav1.RegisterLogServer(srv, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil {
			tb.Error(err)
		}
	}()
	tb.Cleanup(func() { srv.Stop(); <-done })
	return ln.Addr().String()
}

// downAddr is an address nothing listens on.
func downAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

func TestSnapshotMergesOffsetsFromEachLeader(t *testing.T) {
	p := newTestPKI(t)
	down := downAddr(t)
	a, b := serveNode(t, p, &fakeNode{id: 1, leads: 0}), serveNode(t, p, &fakeNode{id: 2, leads: 1})
	v, err := Dial([]string{down, a, b}, p.tlsFor, Options{CallTimeout: time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	snap, err := v.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Reach[0].Err == nil || snap.Reach[1].Err != nil || snap.Reach[2].Err != nil {
		t.Fatalf("reach: %+v", snap.Reach)
	}
	parts := snap.Topics[0].GetPartitions()
	if parts[0].GetLogEndOffset() != 10 || parts[1].GetLogEndOffset() != 20 || parts[1].GetHighWatermark() != 20 {
		t.Fatalf("offsets not merged from each leader: %v", parts)
	}
	for part, want := range map[int32]byte{0: 1, 1: 2} {
		resp, err := v.Read(ctx, "t", part, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetRecords()[0].GetValue()[0]; got != want {
			t.Fatalf("partition %d read from node %d, want %d", part, got, want)
		}
	}
	// A partition no node leads: every node is tried; the last refusal
	// comes back.
	if _, err := v.Read(ctx, "t", 7, 0, 1); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("read of an unled partition: %v", err)
	}
}

func TestSnapshotFailsOnlyWhenNoNodeAnswers(t *testing.T) {
	p := newTestPKI(t)
	v, err := Dial([]string{downAddr(t), downAddr(t)}, p.tlsFor, Options{CallTimeout: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	}()
	snap, err := v.Snapshot(context.Background())
	if !errors.Is(err, ErrNoNodeAnswered) || len(snap.Reach) != 2 || snap.Reach[1].Err == nil {
		t.Fatalf("Snapshot with every node down = %+v, %v", snap, err)
	}
	if _, err := Dial(nil, p.tlsFor, Options{}, nil); !errors.Is(err, ErrNoAddrs) {
		t.Fatalf("Dial without addresses: %v", err)
	}
}
