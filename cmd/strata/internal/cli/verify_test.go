package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/cmd/strata/internal/verify"
	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// fakeBroker serves Metadata (the whole fake cluster's) and ReadReplica
// (its own copies), in pages of at most two records so that paging is
// exercised.
type fakeBroker struct {
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedReplicaToolsServer
	id     int32
	md     func() *stratav1.MetadataResponse
	copies map[int32]fakeCopy // by partition
}

type fakeCopy struct {
	start, hw int64
	values    []string // at offsets start, start+1, ...
}

func (b *fakeBroker) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	return b.md(), nil
}

func (b *fakeBroker) ReadReplica(_ context.Context, req *stratav1.ReadReplicaRequest) (*stratav1.ReadReplicaResponse, error) {
	c, ok := b.copies[req.GetPartition()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such partition")
	}
	end := c.start + int64(len(c.values))
	if req.GetOffset() < c.start || req.GetOffset() > end {
		st, err := status.New(codes.OutOfRange, "out of range").WithDetails(
			&stratav1.OffsetRange{Requested: req.GetOffset(), LogStartOffset: c.start, EndOffset: end})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	resp := &stratav1.ReadReplicaResponse{LogStartOffset: c.start, LogEndOffset: end, HighWatermark: c.hw, Role: stratav1.Role_ROLE_FOLLOWER}
	off := req.GetOffset()
	for ; off < end && len(resp.Records) < 2; off++ {
		resp.Records = append(resp.Records, &stratav1.Record{Offset: off, Value: []byte(c.values[off-c.start])})
	}
	resp.NextOffset = off
	return resp, nil
}

// startFakeCluster serves each broker on its own loopback port; the
// metadata names partition p's leader leaders[p], every broker a replica
// and in the ISR. It returns the first broker's address.
func startFakeCluster(tb testing.TB, topic string, leaders []int32, brokers ...*fakeBroker) string {
	tb.Helper()
	var infos []*stratav1.BrokerInfo
	var ids []int32
	var wg sync.WaitGroup
	// Cleanups run last-in first-out: this one after every server's Stop.
	tb.Cleanup(wg.Wait)
	for _, b := range brokers {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		srv := grpc.NewServer()
		stratav1.RegisterMetadataServer(srv, b)
		stratav1.RegisterReplicaToolsServer(srv, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				tb.Errorf("serve: %v", err)
			}
		}()
		tb.Cleanup(srv.Stop)
		infos = append(infos, &stratav1.BrokerInfo{Id: b.id, Address: l.Addr().String(), Alive: true})
		ids = append(ids, b.id)
	}
	tm := &stratav1.TopicMetadata{Name: topic, Config: &stratav1.TopicConfig{Partitions: int32(len(leaders))}}
	for p, l := range leaders {
		tm.Partitions = append(tm.Partitions, &stratav1.PartitionMetadata{Partition: int32(p), LeaderId: l, Replicas: ids, Isr: ids})
	}
	md := &stratav1.MetadataResponse{Brokers: infos, Topics: []*stratav1.TopicMetadata{tm}}
	for _, b := range brokers {
		b.md = func() *stratav1.MetadataResponse { return md }
	}
	return infos[0].Address
}

func writeOutcomeLog(tb testing.TB, topic string, outs ...verify.Outcome) string {
	tb.Helper()
	return writeOutcomeLogHeader(tb, verify.Header{Run: "r", Topic: topic, Producers: 1}, outs...)
}

func writeOutcomeLogHeader(tb testing.TB, h verify.Header, outs ...verify.Outcome) string {
	tb.Helper()
	var buf bytes.Buffer
	if err := verify.EncodeHeader(&buf, h); err != nil {
		tb.Fatal(err)
	}
	for _, o := range outs {
		if err := verify.EncodeOutcome(&buf, o); err != nil {
			tb.Fatal(err)
		}
	}
	path := filepath.Join(tb.TempDir(), "out.jsonl")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestVerifyCheckReadsEveryReplica(t *testing.T) {
	values := []string{"r-p0-0", "r-p0-1", "r-p0-2", "r-p0-3", "r-p0-4"}
	acks := make([]verify.Outcome, len(values))
	for i, v := range values {
		acks[i] = verify.Outcome{Kind: verify.KindAck, Value: v, Partition: 0, Offset: int64(i)}
	}
	tests := []struct {
		name     string
		follower fakeCopy
		outcomes []verify.Outcome
		wantCode int
		want     string // in stdout
	}{
		{"clean", fakeCopy{hw: 5, values: values}, acks, exitOK, `"passed": true`},
		{"follower diverges below HW", fakeCopy{hw: 5, values: []string{"r-p0-0", "r-p0-1", "X", "r-p0-3", "r-p0-4"}}, acks, exitError, `"divergent": 1`},
		{"lost ack", fakeCopy{hw: 5, values: values},
			append(acks[:5:5], verify.Outcome{Kind: verify.KindAck, Value: "r-p0-9", Partition: 0, Offset: 9}), exitError, `"lost": 1`},
		{"follower behind, out of its HW: passes", fakeCopy{hw: 2, values: values[:3]}, acks, exitOK, `"passed": true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leader := &fakeBroker{id: 1, copies: map[int32]fakeCopy{0: {hw: 5, values: values}}}
			follower := &fakeBroker{id: 2, copies: map[int32]fakeCopy{0: tt.follower}}
			addr := startFakeCluster(t, "t", []int32{1}, leader, follower)
			if tt.follower.hw < 5 {
				// Out of the ISR: only then may it lag below the leader's HW.
				md := leader.md()
				md.Topics[0].Partitions[0].Isr = []int32{1}
			}
			log := writeOutcomeLog(t, "t", tt.outcomes...)
			io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
			code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "--timeout", "20s",
				"verify", "check", "--topic", "t", "--log", log, "--json"}, io)
			if code != tt.wantCode || !strings.Contains(out.String(), tt.want) {
				t.Fatalf("exit %d (want %d), stdout:\n%s\nstderr: %s", code, tt.wantCode, out, errb)
			}
			var res struct {
				Partitions []struct {
					Replicas []verify.ReplicaSummary `json:"replicas"`
				} `json:"partitions"`
			}
			if err := json.Unmarshal(out.Bytes(), &res); err != nil {
				t.Fatal(err)
			}
			if r := res.Partitions[0].Replicas; len(r) != 2 || r[0].Broker != 1 || r[0].Records != 5 || r[1].Records != len(tt.follower.values) {
				t.Fatalf("replicas read: %+v", r)
			}
		})
	}
}

func TestVerifyCheckHumanReport(t *testing.T) {
	values := []string{"r-p0-0", "r-p0-1"}
	// Partition 1's copies start at 1 (retention): the reader must follow
	// the OutOfRange answer to the log start.
	b1 := &fakeBroker{id: 1, copies: map[int32]fakeCopy{0: {hw: 2, values: values}, 1: {start: 1, hw: 2, values: []string{"r-p0-2"}}}}
	b2 := &fakeBroker{id: 2, copies: map[int32]fakeCopy{0: {hw: 2, values: values}, 1: {start: 1, hw: 2, values: []string{"r-p0-2"}}}}
	addr := startFakeCluster(t, "t", []int32{1, 2}, b1, b2)
	log := writeOutcomeLog(t, "t",
		verify.Outcome{Kind: verify.KindAck, Value: "r-p0-0", Partition: 0, Offset: 0},
		verify.Outcome{Kind: verify.KindIndefinite, Value: "r-p0-1", Partition: 0, Offset: -1},
		verify.Outcome{Kind: verify.KindAck, Value: "r-p0-2", Partition: 1, Offset: 1},
		verify.Outcome{Kind: verify.KindIndefinite, Value: "r-p0-3", Partition: 1, Offset: -1})
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	if code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "t", "--log", log}, io); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	for _, want := range []string{"RESULT: PASS: 2 acknowledged records", "1 of 2 indefinite outcomes found", "TOTAL"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}

	// The wrong topic's log is a usage error.
	io, _, errb = testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	if code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "other", "--log", log}, io); code != exitUsage {
		t.Fatalf("wrong topic: exit %d, %s", code, errb)
	}
}

func TestVerifyCheckUnreadableBroker(t *testing.T) {
	b1 := &fakeBroker{id: 1, copies: map[int32]fakeCopy{0: {hw: 1, values: []string{"v"}}}}
	addr := startFakeCluster(t, "t", []int32{1}, b1)
	md := b1.md()
	// Broker 2 is a replica at an address where nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	md.Brokers = append(md.Brokers, &stratav1.BrokerInfo{Id: 2, Address: dead})
	md.Topics[0].Partitions[0].Replicas = []int32{1, 2}
	log := writeOutcomeLog(t, "t", verify.Outcome{Kind: verify.KindAck, Value: "v", Partition: 0, Offset: 0})
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "t", "--log", log, "--rpc-timeout", "5s"}, io)
	if code != exitError || !strings.Contains(errb.String(), "check incomplete") || !strings.Contains(out.String(), "unreadable") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out, errb)
	}
}

func TestOutcomeOf(t *testing.T) {
	now := time.Now()
	sent := client.RecordMetadata{Partition: 2, Offset: -1, Produced: now.Add(-time.Second), Acked: now}
	tests := []struct {
		name string
		m    client.RecordMetadata
		err  error
		want verify.Kind
	}{
		{"ack", client.RecordMetadata{Partition: 1, Offset: 7, Acked: now}, nil, verify.KindAck},
		{"never queued", client.RecordMetadata{Partition: -1, Offset: -1}, context.Canceled, verify.KindFailed},
		{"delivery timeout", sent, fmt.Errorf("%w: %w", client.ErrDeliveryTimeout, &client.BrokerError{Code: codes.Unavailable}), verify.KindIndefinite},
		{"closed at the drain deadline", sent, client.ErrClosed, verify.KindIndefinite},
		{"answer deadline", sent, context.DeadlineExceeded, verify.KindIndefinite},
		{"refused", sent, &client.BrokerError{Code: codes.PermissionDenied}, verify.KindFailed},
		{"invalid", sent, &client.BrokerError{Code: codes.InvalidArgument}, verify.KindFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := outcomeOf(3, 9, "v", tt.m, tt.err)
			if o.Kind != tt.want {
				t.Fatalf("kind %s, want %s", o.Kind, tt.want)
			}
			if tt.want == verify.KindAck && (o.Offset != 7 || o.Error != "") || tt.want != verify.KindAck && (o.Offset != -1 || o.Error == "") ||
				o.TimeMs != tt.m.Acked.UnixMilli() || o.ProducedMs != tt.m.Produced.UnixMilli() {
				t.Fatalf("outcome %+v", o)
			}
		})
	}
}

func TestOutcomeWriterWritesEveryOutcome(t *testing.T) {
	var buf bytes.Buffer
	w := newOutcomeWriter(&buf)
	if err := verify.EncodeHeader(w.bw, verify.Header{Run: "r", Topic: "t"}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(stop)
	}()
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				w.add(verify.Outcome{Kind: verify.KindAck, Value: fmt.Sprintf("r-p%d-%d", p, i), Partition: 0, Offset: int64(p*500 + i)})
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-done
	if w.err != nil {
		t.Fatal(w.err)
	}
	l, err := verify.ReadLog(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Outcomes) != 2000 || w.acked.Load() != 2000 || l.Truncated {
		t.Fatalf("%d outcomes in the log, %d counted", len(l.Outcomes), w.acked.Load())
	}
}

func TestVerifyProduceUsage(t *testing.T) {
	for _, args := range [][]string{
		{"verify", "produce", "--out", "x"},
		{"verify", "produce", "--topic", "t", "--out", "x"},
		{"verify", "produce", "--topic", "t", "--out", "x", "--duration", "1s", "--acks", "none"},
		{"verify", "check", "--topic", "t"},
	} {
		io, _, errb := testIO(nil)
		if code := Run(context.Background(), args, io); code != exitUsage {
			t.Errorf("%v: exit %d, %s", args, code, errb)
		}
	}
}

func TestVerifyCheckReadsAgainAfterLeaderChange(t *testing.T) {
	values := []string{"r-p0-0"}
	b1 := &fakeBroker{id: 1, copies: map[int32]fakeCopy{0: {hw: 1, values: values}}}
	b2 := &fakeBroker{id: 2, copies: map[int32]fakeCopy{0: {hw: 1, values: values}}}
	addr := startFakeCluster(t, "t", []int32{1}, b1, b2)
	// The epoch goes up with every metadata request until the fourth: the
	// first read of the replicas straddles a change, the second does not.
	var mu sync.Mutex
	calls := 0
	stable := b1.md()
	for _, b := range []*fakeBroker{b1, b2} {
		b.md = func() *stratav1.MetadataResponse {
			mu.Lock()
			defer mu.Unlock()
			calls++
			md := proto.Clone(stable).(*stratav1.MetadataResponse)
			md.Topics[0].Partitions[0].LeaderEpoch = int32(min(calls, 4))
			return md
		}
	}
	log := writeOutcomeLog(t, "t", verify.Outcome{Kind: verify.KindAck, Value: "r-p0-0", Partition: 0, Offset: 0})
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "t", "--log", log}, io)
	if code != exitOK || strings.Count(errb.String(), "reading again") < 1 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out, errb)
	}
}

// staleCluster is two brokers where broker 1, back from a partition,
// still claims partition 0 at epoch 0 with a stale copy, and broker 2
// leads it at epoch 1 alone in the ISR.
func staleCluster(t *testing.T) (addr string, b1, b2 *fakeBroker) {
	t.Helper()
	b1 = &fakeBroker{id: 1, copies: map[int32]fakeCopy{0: {hw: 1, values: []string{"r-p0-0"}}}}
	b2 = &fakeBroker{id: 2, copies: map[int32]fakeCopy{0: {hw: 3, values: []string{"r-p0-0", "r-p0-1", "r-p0-2"}}}}
	addr = startFakeCluster(t, "t", []int32{1}, b1, b2)
	stale := b1.md()
	fresh := proto.Clone(stale).(*stratav1.MetadataResponse)
	fp := fresh.Topics[0].Partitions[0]
	fp.LeaderId, fp.LeaderEpoch, fp.Isr = 2, 1, []int32{2}
	b1.md = func() *stratav1.MetadataResponse { return stale }
	b2.md = func() *stratav1.MetadataResponse { return fresh }
	return addr, b1, b2
}

func TestVerifyStatusTakesTheFreshestAnswer(t *testing.T) {
	addr, b1, b2 := staleCluster(t)
	status := func() (leader int32, converged bool, why string) {
		t.Helper()
		io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
		if code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "status", "--topic", "t", "--json"}, io); code != exitOK {
			t.Fatalf("exit %d: %s", code, errb)
		}
		var res struct {
			Partitions []statusPartition `json:"partitions"`
			Converged  bool              `json:"converged"`
			Why        []string          `json:"not_converged_because"`
		}
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		return res.Partitions[0].Leader, res.Converged, strings.Join(res.Why, "; ")
	}
	// Asked through broker 1 only, the view still comes from both.
	if leader, converged, why := status(); leader != 2 || converged || !strings.Contains(why, "freshest: leader 2 epoch 1") {
		t.Fatalf("leader %d converged %v: %s", leader, converged, why)
	}
	// Broker 1 caught up and is back in the ISR: both agree, converged.
	healed := proto.Clone(b2.md()).(*stratav1.MetadataResponse)
	healed.Topics[0].Partitions[0].Isr = []int32{2, 1}
	for _, b := range []*fakeBroker{b1, b2} {
		b.md = func() *stratav1.MetadataResponse { return healed }
	}
	if leader, converged, why := status(); leader != 2 || !converged {
		t.Fatalf("after healing: leader %d converged %v: %s", leader, converged, why)
	}
}

func TestVerifyCheckIgnoresStaleLeader(t *testing.T) {
	addr, _, _ := staleCluster(t)
	log := writeOutcomeLog(t, "t",
		verify.Outcome{Kind: verify.KindAck, Value: "r-p0-0", Partition: 0, Offset: 0},
		verify.Outcome{Kind: verify.KindAck, Value: "r-p0-1", Partition: 0, Offset: 1},
		verify.Outcome{Kind: verify.KindAck, Value: "r-p0-2", Partition: 0, Offset: 2})
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "t", "--log", log}, io)
	if code != exitOK || !strings.Contains(out.String(), "RESULT: PASS: 3 acknowledged") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out, errb)
	}
}

// TestVerifyCheckIdempotence: a duplicate and a reorder on the leader each
// fail the check of an idempotent producer's log, and are counted in a
// passing check when the producer was not idempotent.
func TestVerifyCheckIdempotence(t *testing.T) {
	ackAt := func(seq, off int64) verify.Outcome {
		return verify.Outcome{Kind: verify.KindAck, Value: fmt.Sprintf("r-p0-%d", seq), Producer: 0, Seq: seq, Partition: 0, Offset: off}
	}
	tests := []struct {
		name     string
		stored   []string
		outcomes []verify.Outcome
		counted  string // in the passing report of the producer that is not idempotent
		fails    string // in the failing report of the idempotent one
	}{
		{"duplicate of an acked record", []string{"r-p0-0", "r-p0-1", "r-p0-1"},
			[]verify.Outcome{ackAt(0, 0), ackAt(1, 1)},
			"1 duplicates of acked and 0 of indefinite records, 0 reordered",
			"1 records of idempotent producers stored more than once"},
		{"reorder", []string{"r-p0-0", "r-p0-2", "r-p0-1"},
			[]verify.Outcome{ackAt(0, 0), ackAt(2, 1), ackAt(1, 2)},
			"0 duplicates of acked and 0 of indefinite records, 1 reordered",
			"1 records of idempotent producers stored out of their producer's order"},
	}
	for _, tt := range tests {
		for _, idem := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/idempotent=%t", tt.name, idem), func(t *testing.T) {
				n := int64(len(tt.stored))
				leader := &fakeBroker{id: 1, copies: map[int32]fakeCopy{0: {hw: n, values: tt.stored}}}
				follower := &fakeBroker{id: 2, copies: map[int32]fakeCopy{0: {hw: n, values: tt.stored}}}
				addr := startFakeCluster(t, "t", []int32{1}, leader, follower)
				log := writeOutcomeLogHeader(t, verify.Header{Run: "r", Topic: "t", Producers: 1, Idempotent: idem}, tt.outcomes...)
				io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
				code := Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "t", "--log", log}, io)
				want, wantCode := "RESULT: PASS: 3 acknowledged", exitOK
				if len(tt.outcomes) == 2 {
					want = "RESULT: PASS: 2 acknowledged"
				}
				want += " records all present on the leaders and in-sync replicas; no divergence below the HW, no gaps; " + tt.counted
				if idem {
					want, wantCode = "RESULT: FAIL: "+tt.fails, exitError
				}
				if code != wantCode || !strings.Contains(out.String(), want) || !strings.Contains(out.String(), "REORDERED") {
					t.Fatalf("exit %d (want %d), want %q in stdout:\n%s\nstderr: %s", code, wantCode, want, out, errb)
				}

				// The JSON report says the same.
				io, out, errb = testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
				code = Run(context.Background(), []string{"--brokers", addr, "--insecure", "verify", "check", "--topic", "t", "--log", log, "--json"}, io)
				var res struct {
					Passed         bool          `json:"passed"`
					IdempotentLogs int           `json:"idempotent_logs"`
					Total          verify.Counts `json:"total"`
				}
				if err := json.Unmarshal(out.Bytes(), &res); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				dups, reorders := res.Total.DupAcked, res.Total.Reordered
				if code != wantCode || res.Passed == idem || dups+reorders != 1 || (res.IdempotentLogs == 1) != idem ||
					idem && res.Total.DupIdempotent+res.Total.ReorderedIdempotent != 1 {
					t.Fatalf("exit %d: %+v\nstderr: %s", code, res, errb)
				}
			})
		}
	}
}
