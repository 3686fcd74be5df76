package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// fakeNode answers Topics and Metadata as a cluster-mode broker does: the
// cluster's view, with offsets for the partitions it leads (in the epoch
// it believes) and -1 for the others.
type fakeNode struct {
	stratav1.UnimplementedTopicsServer
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedGroupsServer                    // groups_test.go
	stratav1.UnimplementedLogServer                       // groups_test.go
	led                                map[int32][4]int64 // partition -> epoch, log start, log end, HW
	topics                             []*stratav1.TopicMetadata
	groups                             fakeGroups // groups_test.go
}

func (n *fakeNode) view() []*stratav1.TopicMetadata {
	var out []*stratav1.TopicMetadata
	for _, t := range n.topics {
		t = proto.Clone(t).(*stratav1.TopicMetadata)
		for _, p := range t.GetPartitions() {
			p.LogStartOffset, p.LogEndOffset, p.HighWatermark = -1, -1, -1
			if o, ok := n.led[p.GetPartition()]; ok && t.GetName() == "t" {
				p.LeaderEpoch = int32(o[0])
				p.LogStartOffset, p.LogEndOffset, p.HighWatermark = o[1], o[2], o[3]
			}
		}
		out = append(out, t)
	}
	return out
}

func (n *fakeNode) DescribeTopic(context.Context, *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	return &stratav1.DescribeTopicResponse{Topic: n.view()[0]}, nil
}

func (n *fakeNode) ListTopics(context.Context, *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	return &stratav1.ListTopicsResponse{Topics: n.view()}, nil
}

func (n *fakeNode) Metadata(_ context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	resp := &stratav1.MetadataResponse{}
	for _, t := range n.view() {
		for _, name := range req.GetTopics() {
			if t.GetName() == name {
				resp.Topics = append(resp.Topics, t)
			}
		}
	}
	return resp, nil
}

// serveNodes serves each node with TLS on a loopback port and returns a
// Client dialled to them, in order.
func serveNodes(tb testing.TB, nodes ...*fakeNode) *Client {
	tb.Helper()
	ca, err := pki.CreateCA(pki.CAOptions{CommonName: "test-ca"}, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	kp, err := ca.Issue(pki.IssueRequest{CommonName: "broker", Profile: pki.ProfileServer, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	tb.Cleanup(wg.Wait) // after every server's Stop
	var addrs []string
	for _, n := range nodes {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}})))
		stratav1.RegisterTopicsServer(srv, n)
		stratav1.RegisterMetadataServer(srv, n)
		stratav1.RegisterGroupsServer(srv, n)
		stratav1.RegisterLogServer(srv, n)
		wg.Go(func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				tb.Errorf("serve: %v", err)
			}
		})
		tb.Cleanup(srv.Stop)
		addrs = append(addrs, l.Addr().String())
	}
	c, err := Dial(addrs, func(host string) (*tls.Config, error) {
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.CertPool(), ServerName: host}, nil
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// TestOffsetsFromEachLeader: the node that answers a describe or a list
// knows only the offsets of the partitions it leads; admin answers every
// led partition's offsets from its leader (it answered -1 for the rest),
// the newer epoch when a deposed leader still reports one, and -1 for an
// offline partition.
func TestOffsetsFromEachLeader(t *testing.T) {
	tm := &stratav1.TopicMetadata{Name: "t", Config: &stratav1.TopicConfig{Partitions: 4, ReplicationFactor: 3}}
	for p, leader := range []int32{3, 1, 2, -1} {
		pm := &stratav1.PartitionMetadata{Partition: int32(p), LeaderId: leader, LeaderEpoch: 5, Replicas: []int32{1, 2, 3}, Isr: []int32{1, 2, 3}}
		if leader < 0 {
			pm.Offline, pm.Isr = true, nil
		}
		tm.Partitions = append(tm.Partitions, pm)
	}
	other := &stratav1.TopicMetadata{Name: "u", Partitions: []*stratav1.PartitionMetadata{{Partition: 0, LeaderId: 1, LeaderEpoch: 1}}}
	topics := []*stratav1.TopicMetadata{tm, other}
	c := serveNodes(t,
		&fakeNode{topics: topics, led: map[int32][4]int64{1: {5, 0, 133333, 133333}}},
		// Node 2 leads partition 2 and still thinks it leads 1 (epoch 4).
		&fakeNode{topics: topics, led: map[int32][4]int64{2: {5, 7, 133333, 133330}, 1: {4, 0, 99, 99}}},
		&fakeNode{topics: topics, led: map[int32][4]int64{0: {5, 0, 133334, 133334}}},
	)
	want := map[int32][3]int64{ // partition -> log start, log end, HW
		0: {0, 133334, 133334},
		1: {0, 133333, 133333},
		2: {7, 133333, 133330},
		3: {-1, -1, -1},
	}
	check := func(t *testing.T, tm *stratav1.TopicMetadata) {
		t.Helper()
		for _, p := range tm.GetPartitions() {
			got := [3]int64{p.GetLogStartOffset(), p.GetLogEndOffset(), p.GetHighWatermark()}
			if got != want[p.GetPartition()] {
				t.Errorf("partition %d: log start, log end, HW = %v, want %v", p.GetPartition(), got, want[p.GetPartition()])
			}
		}
	}
	t.Run("describe", func(t *testing.T) {
		resp, err := c.DescribeTopic(context.Background(), &stratav1.DescribeTopicRequest{Name: "t"})
		if err != nil {
			t.Fatal(err)
		}
		check(t, resp.GetTopic())
	})
	t.Run("list", func(t *testing.T) {
		resp, err := c.ListTopics(context.Background(), &stratav1.ListTopicsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetTopics()) != 2 || resp.GetTopics()[0].GetName() != "t" {
			t.Fatalf("topics %v", resp.GetTopics())
		}
		check(t, resp.GetTopics()[0])
		// No node leads u/0 here: unknown, not 0.
		if p := resp.GetTopics()[1].GetPartitions()[0]; p.GetLogEndOffset() != -1 {
			t.Errorf("u/0 log end %d, want -1", p.GetLogEndOffset())
		}
	})
}
