package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/strata-log/strata/pkg/adminapi"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// The admin API's consumer group routes against a real broker: groups
// made over the Groups gRPC service (a member-less commit, a member's
// Session), read, reset and deleted through admin, which reaches the
// group's coordinator and the partition leaders as its own identity.

// clientTLS is a TLS 1.3 client config for a certificate, its key and the
// cluster CA.
func clientTLS(tb testing.TB, certFile, keyFile, caFile string) *tls.Config {
	tb.Helper()
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		tb.Fatal(err)
	}
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS13}
}

// operatorConn dials the broker at addr as the operator.
func operatorConn(tb testing.TB, pkiDir, addr string) *grpc.ClientConn {
	tb.Helper()
	tc := clientTLS(tb, filepath.Join(pkiDir, "operator.pem"), filepath.Join(pkiDir, "operator-key.pem"), filepath.Join(pkiDir, "ca.pem"))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := conn.Close(); err != nil {
			tb.Error(err)
		}
	})
	return conn
}

// coordinatorUp waits until the broker names a coordinator for group (the
// offsets topic is made at the first use).
func coordinatorUp(tb testing.TB, g stratav1.GroupsClient, group string) {
	tb.Helper()
	within(tb, 15*time.Second, "a coordinator for "+group, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := g.FindCoordinator(ctx, &stratav1.FindCoordinatorRequest{Group: group})
		return err
	})
}

// commitWithoutMember stores offsets for a group without members, as a
// consumer assigning itself partitions does; the group exists after it.
func commitWithoutMember(tb testing.TB, g stratav1.GroupsClient, group, topic string, offsets map[int32]int64) {
	tb.Helper()
	req := &stratav1.CommitOffsetsRequest{Group: group}
	for p, o := range offsets {
		req.Offsets = append(req.Offsets, &stratav1.PartitionOffset{Topic: topic, Partition: p, Offset: o})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := g.CommitOffsets(ctx, req); err != nil {
		tb.Fatalf("commit for %s: %v", group, err)
	}
}

// groupMember is one member of a group, joined over a Session stream.
type groupMember struct {
	id     string
	stream grpc.BidiStreamingClient[stratav1.SessionRequest, stratav1.SessionResponse]
	cancel context.CancelFunc
}

// joinGroup joins group as a member subscribed to topics and acknowledges
// its first assignment; its session lasts a minute without heartbeats,
// longer than a test holds it (the stream, at most two). It leaves at the
// end of the test unless leave was called.
func joinGroup(tb testing.TB, g stratav1.GroupsClient, group string, topics ...string) *groupMember {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	m := &groupMember{cancel: cancel}
	tb.Cleanup(func() { m.leave(tb) })
	var err error
	if m.stream, err = g.Session(ctx); err != nil {
		tb.Fatal(err)
	}
	join := &stratav1.Join{Group: group, Topics: topics, ClientId: "e2e", SessionTimeoutMs: 60_000}
	if err := m.stream.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Join{Join: join}}); err != nil {
		tb.Fatal(err)
	}
	joined, err := m.stream.Recv()
	if err != nil || joined.GetJoined() == nil {
		tb.Fatalf("join %s: %v %v", group, joined, err)
	}
	m.id = joined.GetJoined().GetMemberId()
	a, err := m.stream.Recv()
	if err != nil || a.GetAssignment() == nil {
		tb.Fatalf("assignment in %s: %v %v", group, a, err)
	}
	ack := &stratav1.Ack{MemberEpoch: a.GetAssignment().GetMemberEpoch(), Owned: a.GetAssignment().GetPartitions(), Seq: a.GetAssignment().GetSeq()}
	if err := m.stream.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Ack{Ack: ack}}); err != nil {
		tb.Fatal(err)
	}
	return m
}

// leave sends Leave and ends the stream. It may be called more than once.
func (m *groupMember) leave(tb testing.TB) {
	tb.Helper()
	if m.stream == nil {
		return
	}
	if err := m.stream.Send(&stratav1.SessionRequest{Kind: &stratav1.SessionRequest_Leave{Leave: &stratav1.Leave{}}}); err != nil && err != io.EOF {
		tb.Errorf("leave: %v", err)
	}
	if err := m.stream.CloseSend(); err != nil {
		tb.Errorf("close session: %v", err)
	}
	// The coordinator ends the stream once the member is gone.
	for {
		if _, err := m.stream.Recv(); err != nil {
			break
		}
	}
	m.cancel()
	m.stream = nil
}

// adminCall calls the admin API and decodes a 2xx answer into out; it
// returns the status.
func adminCall(tb testing.TB, c *http.Client, method, url string, in, out any) int {
	tb.Helper()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			tb.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	if resp.StatusCode/100 == 2 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("%s %s: %v: %s", method, url, err, b)
		}
	} else if resp.StatusCode/100 != 2 {
		tb.Logf("%s %s: %s %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	return resp.StatusCode
}

func partitionOf(tb testing.TB, g adminapi.Group, topic string, p int32) adminapi.GroupPartition {
	tb.Helper()
	for _, x := range g.Partitions {
		if x.Topic == topic && x.Partition == p {
			return x
		}
	}
	tb.Fatalf("group %s has no %s/%d: %+v", g.Group, topic, p, g.Partitions)
	return adminapi.GroupPartition{}
}

// TestAdminGroupsEndToEnd: through admin's API, a group made at a real
// broker is listed and described with its lag per partition from the
// leader; its offsets are reset to each target (a dry run stores
// nothing; to_time finds the first record at or after the time); a group
// with a live member refuses a reset unless forced, and a delete; once
// the member left it is deleted. A user sees only the groups the policy
// lets it describe.
func TestAdminGroupsEndToEnd(t *testing.T) {
	c := newSecureCluster(t)
	mustCLI(t, c.ctxFile, "", "topic", "create", "orders", "--partitions", "2")
	conn := operatorConn(t, c.pki, c.brokers)
	// Ten records on partition 0 one second apart (producer timestamps),
	// four on partition 1.
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
	produce := func(p int32, n int) {
		req := &stratav1.ProduceRequest{Topic: "orders", Partition: p, Acks: stratav1.Acks_ACKS_ALL}
		for i := range n {
			req.Records = append(req.Records, &stratav1.Record{Value: fmt.Appendf(nil, "r%d", i), TimestampMs: base + int64(i)*1000})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := stratav1.NewLogClient(conn).Produce(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 10)
	produce(1, 4)
	groups := stratav1.NewGroupsClient(conn)
	coordinatorUp(t, groups, "billing")
	commitWithoutMember(t, groups, "billing", "orders", map[int32]int64{0: 2, 1: 1})

	api := operatorClient(t, c.pki)
	url := "https://" + c.adminAddr
	describe := func() adminapi.Group {
		t.Helper()
		var g adminapi.Group
		if code := adminCall(t, api, http.MethodGet, url+adminapi.GroupPath("billing"), nil, &g); code != http.StatusOK {
			t.Fatalf("describe billing: %d", code)
		}
		return g
	}
	reset := func(req adminapi.ResetOffsetsRequest, want int) adminapi.ResetOffsetsResult {
		t.Helper()
		var res adminapi.ResetOffsetsResult
		if code := adminCall(t, api, http.MethodPost, url+adminapi.GroupOffsetsPath("billing"), req, &res); code != want {
			t.Fatalf("reset %+v: %d, want %d", req, code, want)
		}
		return res
	}
	committed := func() [2]int64 {
		g := describe()
		return [2]int64{partitionOf(t, g, "orders", 0).CommittedOffset, partitionOf(t, g, "orders", 1).CommittedOffset}
	}

	t.Run("list", func(t *testing.T) {
		var l adminapi.GroupList
		if code := adminCall(t, api, http.MethodGet, url+adminapi.PathGroups, nil, &l); code != http.StatusOK {
			t.Fatalf("list: %d", code)
		}
		if len(l.Groups) != 1 || l.Groups[0].Group != "billing" || l.Groups[0].State != "empty" || l.Groups[0].Members != 0 || len(l.Unreached) != 0 {
			t.Fatalf("list %+v", l)
		}
	})
	t.Run("describe with lag from the leader", func(t *testing.T) {
		g := describe()
		p0, p1 := partitionOf(t, g, "orders", 0), partitionOf(t, g, "orders", 1)
		if p0.CommittedOffset != 2 || p0.HighWatermark != 10 || p0.LogEndOffset != 10 || p0.Lag != 8 || p0.CommitTime == nil {
			t.Fatalf("orders/0 %+v", p0)
		}
		if p1.CommittedOffset != 1 || p1.HighWatermark != 4 || p1.Lag != 3 || g.Lag != 11 {
			t.Fatalf("orders/1 %+v, total lag %d", p1, g.Lag)
		}
	})
	off := func(v int64) *int64 { return &v }
	t.Run("reset", func(t *testing.T) {
		res := reset(adminapi.ResetOffsetsRequest{Topic: "orders", ToEarliest: true, DryRun: true}, http.StatusOK)
		if len(res.Offsets) != 2 || res.Offsets[0].Previous != 2 || res.Offsets[0].Offset != 0 || !res.DryRun {
			t.Fatalf("dry run %+v", res)
		}
		if got := committed(); got != [2]int64{2, 1} {
			t.Fatalf("a dry run stored %v", got)
		}
		at := time.UnixMilli(base + 4500)
		reset(adminapi.ResetOffsetsRequest{Topic: "orders", Partitions: []int32{0}, ToTime: &at}, http.StatusOK)
		if got := committed(); got != [2]int64{5, 1} {
			t.Fatalf("to_time %s: committed %v, want [5 1]", at.UTC(), got)
		}
		later := time.UnixMilli(base + 60_000)
		reset(adminapi.ResetOffsetsRequest{Topic: "orders", Partitions: []int32{1}, ToTime: &later}, http.StatusOK)
		reset(adminapi.ResetOffsetsRequest{Topic: "orders", Partitions: []int32{0}, ShiftBy: off(-2)}, http.StatusOK)
		if got := committed(); got != [2]int64{3, 4} {
			t.Fatalf("to_time past the newest, then shift_by -2: committed %v, want [3 4]", got)
		}
		reset(adminapi.ResetOffsetsRequest{Topic: "orders", ToOffset: off(1000)}, http.StatusOK)
		if g := describe(); g.Lag != 0 || partitionOf(t, g, "orders", 0).CommittedOffset != 10 {
			t.Fatalf("to_offset past the end: %+v", g)
		}
	})
	t.Run("a live member", func(t *testing.T) {
		m := joinGroup(t, groups, "billing", "orders")
		g := describe()
		if len(g.Members) != 1 || g.Members[0].MemberID != m.id || g.Members[0].Identity != "operator" ||
			partitionOf(t, g, "orders", 1).MemberID != m.id {
			t.Fatalf("with a member: %+v", g)
		}
		reset(adminapi.ResetOffsetsRequest{Topic: "orders", ToEarliest: true}, http.StatusPreconditionFailed)
		reset(adminapi.ResetOffsetsRequest{Topic: "orders", ToEarliest: true, Force: true}, http.StatusOK)
		if code := adminCall(t, api, http.MethodDelete, url+adminapi.GroupPath("billing"), nil, nil); code != http.StatusPreconditionFailed {
			t.Fatalf("delete with a member: %d", code)
		}
		m.leave(t)
		within(t, 10*time.Second, "delete once the member left", func() error {
			if code := adminCall(t, api, http.MethodDelete, url+adminapi.GroupPath("billing"), nil, nil); code != http.StatusNoContent {
				return fmt.Errorf("delete: %d", code)
			}
			return nil
		})
		if code := adminCall(t, api, http.MethodGet, url+adminapi.GroupPath("billing"), nil, nil); code != http.StatusNotFound {
			t.Fatalf("describe after delete: %d", code)
		}
	})
	t.Run("a user sees the groups it may describe", func(t *testing.T) {
		commitWithoutMember(t, groups, "app-1", "orders", map[int32]int64{0: 1})
		commitWithoutMember(t, groups, "other", "orders", map[int32]int64{0: 1})
		c.user(t, "alice")
		mustCLI(t, c.ctxFile, "", "acl", "add", "p", "alice", "cluster", "describe")
		users := filepath.Join(c.dir, "users", "alice")
		alice := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: clientTLS(t, filepath.Join(users, "alice.pem"), filepath.Join(users, "alice-key.pem"), filepath.Join(users, "ca.pem"))}}
		t.Cleanup(alice.CloseIdleConnections)
		names := func() []string {
			var l adminapi.GroupList
			if code := adminCall(t, alice, http.MethodGet, url+adminapi.PathGroups, nil, &l); code != http.StatusOK {
				t.Fatalf("alice lists: %d", code)
			}
			var out []string
			for _, g := range l.Groups {
				out = append(out, g.Group)
			}
			return out
		}
		if got := names(); len(got) != 0 {
			t.Fatalf("alice without group rules lists %v", got)
		}
		if code := adminCall(t, alice, http.MethodGet, url+adminapi.GroupPath("app-1"), nil, nil); code != http.StatusForbidden {
			t.Fatalf("alice describes app-1: %d", code)
		}
		mustCLI(t, c.ctxFile, "", "acl", "add", "p", "alice", "group:app-*", "describe")
		if got := names(); !slices.Equal(got, []string{"app-1"}) {
			t.Fatalf("alice with describe on group:app-* lists %v", got)
		}
		if code := adminCall(t, alice, http.MethodGet, url+adminapi.GroupPath("app-1"), nil, nil); code != http.StatusOK {
			t.Fatalf("alice describes app-1: %d", code)
		}
		if code := adminCall(t, alice, http.MethodPost, url+adminapi.GroupOffsetsPath("app-1"), adminapi.ResetOffsetsRequest{Topic: "orders", ToEarliest: true}, nil); code != http.StatusForbidden {
			t.Fatalf("alice resets app-1 with describe only: %d", code)
		}
	})
}
