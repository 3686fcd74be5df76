package cli

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
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

// TestConfigRows: describe shows every setting as the topic has it,
// "(default)" for one left zero (the brokers' default, in a cluster's
// metadata from before the controller wrote defaults down) and
// "unlimited" for a retention of -1.
func TestConfigRows(t *testing.T) {
	got := configRows(&stratav1.TopicConfig{RetentionBytes: -1, RetentionMs: 3600000, Fsync: "always"})
	want := [][2]string{{"retention.bytes", "unlimited"}, {"retention.ms", "3600000"}, {"segment.bytes", "(default)"},
		{"segment.ms", "(default)"}, {"max.record.bytes", "(default)"}, {"fsync", "always"},
		{"min.insync.replicas", "(default)"}, {"unclean.leader.election", "false"},
		{"cleanup.policy", "(default)"}, {"delete.retention.ms", "(default)"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// topicsRecorder answers Metadata and the Topics calls as a broker would,
// and records what the CLI asked.
type topicsRecorder struct {
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedTopicsServer
	mu    sync.Mutex
	calls []proto.Message
}

func (r *topicsRecorder) record(m proto.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, m)
}

func (r *topicsRecorder) asked() []proto.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *topicsRecorder) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	return &stratav1.MetadataResponse{}, nil
}

// CreateTopic answers as a 3-broker cluster's controller: one partition
// and a replication factor of 3 unless asked otherwise.
func (r *topicsRecorder) CreateTopic(_ context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	r.record(req)
	cfg := topicconfig.FromProto(req.GetConfig())
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = topicconfig.DefaultReplicationFactor(3)
	}
	cfg = topicconfig.Default().Merge(cfg)
	tm := &stratav1.TopicMetadata{Name: req.GetName(), Config: cfg.Proto()}
	for p := range cfg.Partitions {
		tm.Partitions = append(tm.Partitions, &stratav1.PartitionMetadata{Partition: p})
	}
	return &stratav1.CreateTopicResponse{Topic: tm}, nil
}

func (r *topicsRecorder) DescribeTopic(_ context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	r.record(req)
	return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetName())
}

func (r *topicsRecorder) AlterTopicConfig(_ context.Context, req *stratav1.AlterTopicConfigRequest) (*stratav1.AlterTopicConfigResponse, error) {
	r.record(req)
	return &stratav1.AlterTopicConfigResponse{Topic: &stratav1.TopicMetadata{Name: req.GetName()}}, nil
}

func (r *topicsRecorder) DeleteTopic(_ context.Context, req *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	r.record(req)
	return &stratav1.DeleteTopicResponse{}, nil
}

// serveTopics starts a topicsRecorder and returns it with the CLI
// arguments that reach it.
func serveTopics(t *testing.T) (*topicsRecorder, []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &topicsRecorder{}
	srv := grpc.NewServer()
	stratav1.RegisterMetadataServer(srv, r)
	stratav1.RegisterTopicsServer(srv, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(func() { srv.Stop(); <-done })
	return r, []string{"--brokers", l.Addr().String(), "--insecure"}
}

// runCLI runs the CLI with args and returns its exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	code := Run(context.Background(), args, io)
	return code, out.String(), errb.String()
}

// TestTopicCreateLeavesReplicationToTheCluster: without
// --replication-factor the request leaves it 0, for the controller to
// choose min(3, live brokers) (it sent 1 before, and a 3-node cluster got
// unreplicated topics), --help says so, and the answer names the
// partitions in the singular when there is one.
func TestTopicCreateLeavesReplicationToTheCluster(t *testing.T) {
	r, conn := serveTopics(t)
	code, out, errb := runCLI(t, append(conn, "topic", "create", "orders")...)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errb)
	}
	calls := r.asked()
	if len(calls) != 1 {
		t.Fatalf("calls %v", calls)
	}
	if cfg := calls[0].(*stratav1.CreateTopicRequest).GetConfig(); cfg.GetReplicationFactor() != 0 || cfg.GetPartitions() != 0 {
		t.Fatalf("sent partitions=%d replication_factor=%d, want 0 (the server's default)", cfg.GetPartitions(), cfg.GetReplicationFactor())
	}
	if want := "created topic \"orders\" with 1 partition, replication factor 3\n"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}

	code, out, errb = runCLI(t, append(conn, "topic", "create", "wide", "--partitions", "3", "--replication-factor", "2")...)
	if code != exitOK || out != "created topic \"wide\" with 3 partitions, replication factor 2\n" {
		t.Fatalf("exit %d: %q %s", code, out, errb)
	}
	if cfg := r.asked()[1].(*stratav1.CreateTopicRequest).GetConfig(); cfg.GetReplicationFactor() != 2 || cfg.GetPartitions() != 3 {
		t.Fatalf("sent %v", cfg)
	}

	for bad, want := range map[string]string{"0": "must be at least 1", "-1": "must be at least 1", "x": "not a number"} {
		if code, _, errb := runCLI(t, append(conn, "topic", "create", "t", "--replication-factor", bad)...); code != exitUsage ||
			!strings.Contains(errb, want) {
			t.Errorf("--replication-factor %s: exit %d %s", bad, code, errb)
		}
	}

	code, out, _ = runCLI(t, "topic", "create", "--help")
	if code != exitOK || !strings.Contains(out, "the cluster's, 3 or every live broker when fewer are alive; 1 on a single broker") ||
		!strings.Contains(out, "max.record.bytes: ") || !strings.Contains(out, "in [1, 67108864]") {
		t.Fatalf("help (exit %d) does not say the replication default or the settings:\n%s", code, out)
	}
	if len(r.asked()) != 2 {
		t.Fatalf("refused commands reached the server: %v", r.asked()[2:])
	}
}

// TestTopicCommandsCheckBeforeSending: a name or setting the brokers
// refuse is refused by the CLI with their message, without a call: "."
// with a message that does not claim '.' is allowed, an empty name without
// an RPC path, max.record.bytes above the limit with the range.
func TestTopicCommandsCheckBeforeSending(t *testing.T) {
	r, conn := serveTopics(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic", "create", "."}, `"." and ".." are reserved`},
		{[]string{"topic", "create", ""}, "a topic name is required"},
		{[]string{"topic", "describe", ""}, "a topic name is required"},
		{[]string{"topic", "delete", ".."}, `"." and ".." are reserved`},
		{[]string{"topic", "alter", "a/b", "--config", "fsync=never"}, "character '/' at 1"},
		{[]string{"topic", "alter", "t", "--config", "max.record.bytes=104857600"}, "max.record.bytes must be in [1, 67108864], got 104857600"},
		{[]string{"topic", "create", "t", "--config", "retention.bytes=0"}, "retention.bytes must be -1 (unlimited) or at least 1, got 0"},
		{[]string{"topic", "create", "t", "--config", "colour=blue"}, `unknown setting "colour"; the settings are retention.bytes,`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errb := runCLI(t, append(conn, tc.args...)...)
			if code != exitUsage || !strings.Contains(errb, tc.want) {
				t.Fatalf("exit %d, stderr %q, want a usage error saying %q\n%s", code, errb, tc.want, out)
			}
			for _, leak := range []string{"[a-zA-Z0-9._-]", "/strata.v1."} {
				if strings.Contains(errb, leak) {
					t.Errorf("stderr %q says %q", errb, leak)
				}
			}
		})
	}
	if calls := r.asked(); len(calls) != 0 {
		t.Fatalf("refused commands reached the server: %v", calls)
	}
}
