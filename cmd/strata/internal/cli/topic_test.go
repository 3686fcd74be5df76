package cli

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// clusterBroker answers Metadata and DescribeTopic as a cluster-mode
// broker does: the cluster's view of the topic, with the offsets of the
// partitions this broker leads and -1 (unknown here) for the others.
type clusterBroker struct {
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedTopicsServer
	id  int32
	led map[int32][3]int64 // partition -> log start, log end, HW
	md  *stratav1.MetadataResponse
}

func (b *clusterBroker) view() *stratav1.MetadataResponse {
	md := proto.Clone(b.md).(*stratav1.MetadataResponse)
	for _, t := range md.GetTopics() {
		for _, p := range t.GetPartitions() {
			p.LogStartOffset, p.LogEndOffset, p.HighWatermark = -1, -1, -1
			if o, ok := b.led[p.GetPartition()]; ok {
				p.LogStartOffset, p.LogEndOffset, p.HighWatermark = o[0], o[1], o[2]
			}
		}
	}
	return md
}

func (b *clusterBroker) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	return b.view(), nil
}

func (b *clusterBroker) DescribeTopic(context.Context, *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	return &stratav1.DescribeTopicResponse{Topic: b.view().GetTopics()[0]}, nil
}

// TestTopicDescribeOffsetsFromEachLeader is the three-node report: the
// broker that answers knows only its own partitions' offsets; describe
// shows every led partition's offsets from its leader and "-", not 0, for
// a partition no leader reports (offline here).
func TestTopicDescribeOffsetsFromEachLeader(t *testing.T) {
	brokers := []*clusterBroker{
		{id: 1, led: map[int32][3]int64{1: {0, 133333, 133333}}},
		{id: 2, led: map[int32][3]int64{2: {7, 133333, 133333}}},
		{id: 3, led: map[int32][3]int64{0: {0, 133334, 133334}}},
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after every server's Stop
	var infos []*stratav1.BrokerInfo
	for _, b := range brokers {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		stratav1.RegisterMetadataServer(srv, b)
		stratav1.RegisterTopicsServer(srv, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				t.Errorf("serve: %v", err)
			}
		}()
		t.Cleanup(srv.Stop)
		infos = append(infos, &stratav1.BrokerInfo{Id: b.id, Address: l.Addr().String(), Alive: true})
	}
	tm := &stratav1.TopicMetadata{Name: "t", Config: &stratav1.TopicConfig{Partitions: 4, ReplicationFactor: 3}}
	for p, leader := range []int32{3, 1, 2, -1} {
		pm := &stratav1.PartitionMetadata{Partition: int32(p), LeaderId: leader, Replicas: []int32{1, 2, 3}, Isr: []int32{1, 2, 3}}
		if leader < 0 {
			pm.Offline, pm.Isr = true, nil
		} else {
			pm.LeaderAddress = infos[leader-1].Address
		}
		tm.Partitions = append(tm.Partitions, pm)
	}
	for _, b := range brokers {
		b.md = &stratav1.MetadataResponse{Brokers: infos, Topics: []*stratav1.TopicMetadata{tm}, ControllerId: 1}
	}

	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	if code := Run(context.Background(), []string{"--brokers", infos[0].Address, "--insecure", "topic", "describe", "t"}, io); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	want := map[string][3]string{ // partition -> LOG-START, LOG-END, HW
		"0": {"0", "133334", "133334"},
		"1": {"0", "133333", "133333"},
		"2": {"7", "133333", "133333"},
		"3": {"-", "-", "-"},
	}
	_, table, _ := strings.Cut(out.String(), "\nPARTITIONS\n")
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("row %q", line)
		}
		w, ok := want[f[0]]
		if !ok {
			t.Fatalf("unexpected row %q", line)
		}
		delete(want, f[0])
		if got := [3]string(f[len(f)-3:]); got != w {
			t.Errorf("partition %s: LOG-START, LOG-END, HW = %v, want %v\n%s", f[0], got, w, out)
		}
	}
	if len(want) > 0 {
		t.Errorf("rows missing for partitions %v:\n%s", want, out)
	}
}

// TestConfigNum: a cluster's metadata keeps a topic's settings as given, 0
// for the brokers' default and -1 for no retention limit; describe says so
// rather than printing the numbers.
func TestConfigNum(t *testing.T) {
	for v, want := range map[int64]string{0: "(default)", -1: "unlimited", 3600000: "3600000"} {
		if got := configNum(v); got != want {
			t.Errorf("configNum(%d) = %q, want %q", v, got, want)
		}
	}
}
