package adminapi

import (
	"encoding/json"
	"testing"
	"time"
)

// TestJSON pins every body's wire form: field names and which fields are
// left out when empty. Clients built before this package depend on it.
func TestJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	off := int64(42)
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"error", Error{Error: "forbidden"}, `{"error":"forbidden"}`},
		{"policy", Policy{Policy: "p, a, b, c, allow\n", Version: 3}, `{"policy":"p, a, b, c, allow\n","version":3}`},
		{"policy without version", Policy{Policy: "x"}, `{"policy":"x"}`},
		{"rules", Rules{Version: 2, Rules: []Rule{{"alice", "orders", "produce", ""}}, Bindings: []Binding{{"alice", "writers"}},
			Quotas: []Quota{{"alice", "produce", 1024}}},
			`{"version":2,"rules":[{"subject":"alice","object":"orders","action":"produce"}],"bindings":[{"identity":"alice","role":"writers"}],"quotas":[{"subject":"alice","kind":"produce","bytes_per_second":1024}]}`},
		{"rules edit", Rules{Rules: []Rule{{"alice", "orders", "produce", "deny"}}},
			`{"rules":[{"subject":"alice","object":"orders","action":"produce","effect":"deny"}],"bindings":null}`},
		{"cert request", CertRequest{Name: "bob"}, `{"name":"bob"}`},
		{"cert request full", CertRequest{Name: "web", Profile: "server", Hosts: []string{"h"}, Validity: "24h"},
			`{"name":"web","profile":"server","hosts":["h"],"validity":"24h"}`},
		{"csr request", CSRRequest{CSR: "PEM"}, `{"csr":"PEM"}`},
		{"cert bundle", CertBundle{Name: "bob", Profile: "client", Serial: "1f", NotAfter: at, Cert: "C", CA: "A"},
			`{"name":"bob","profile":"client","serial":"1f","not_after":"2026-03-01T12:00:00Z","cert":"C","ca":"A"}`},
		{"cert list", CertList{Certificates: []IssuedCert{{Name: "bob", Profile: "client", Serial: "1f", NotBefore: at, NotAfter: at}}},
			`{"certificates":[{"name":"bob","profile":"client","serial":"1f","not_before":"2026-03-01T12:00:00Z","not_after":"2026-03-01T12:00:00Z"}]}`},
		{"group list", GroupList{Groups: []GroupSummary{{Group: "g", State: "stable", Members: 2, CoordinatorID: 1}}},
			`{"groups":[{"group":"g","state":"stable","members":2,"coordinator_id":1}]}`},
		{"group", Group{Group: "g", State: "empty", Assignor: "range", Members: []GroupMember{},
			Partitions: []GroupPartition{{Topic: "t", CommittedOffset: 5, CommitTime: &at, LogStartOffset: 0, LogEndOffset: 9, HighWatermark: 9, Lag: 4}}, Lag: 4},
			`{"group":"g","state":"empty","group_epoch":0,"assignor":"range","coordinator_id":0,"members":[],"partitions":[{"topic":"t","partition":0,"committed_offset":5,"commit_time":"2026-03-01T12:00:00Z","log_start_offset":0,"log_end_offset":9,"high_watermark":9,"lag":4}],"lag":4}`},
		{"member", GroupMember{MemberID: "m", Identity: "app", MemberEpoch: 3, Topics: []string{"t"}, Assigned: []TopicPartitions{{"t", []int32{0, 1}}}},
			`{"member_id":"m","identity":"app","member_epoch":3,"topics":["t"],"assigned":[{"topic":"t","partitions":[0,1]}]}`},
		{"reset request", ResetOffsetsRequest{Topic: "t", ToOffset: &off, DryRun: true}, `{"topic":"t","to_offset":42,"dry_run":true}`},
		{"reset request to time", ResetOffsetsRequest{Topic: "t", ToTime: &at}, `{"topic":"t","to_time":"2026-03-01T12:00:00Z"}`},
		{"reset result", ResetOffsetsResult{Group: "g", Offsets: []PartitionReset{{Topic: "t", Partition: 1, Previous: -1, Offset: 7}}},
			`{"group":"g","dry_run":false,"offsets":[{"topic":"t","partition":1,"previous":-1,"offset":7}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
		})
	}
}

func TestLines(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"rule, effect defaults to allow", Rule{"alice", "orders-*", "produce", ""}.Line(), "p, alice, orders-*, produce, allow"},
		{"rule deny", Rule{"alice", "group:g", "consume", "deny"}.Line(), "p, alice, group:g, consume, deny"},
		{"binding", Binding{"alice", "writers"}.Line(), "g, alice, writers"},
		{"quota", Quota{"*", "consume", 1 << 20}.Line(), "q, *, consume, 1048576"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Fatalf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestPaths(t *testing.T) {
	tests := []struct{ got, want string }{
		{TopicPath("orders"), "/v1/topics/orders"},
		{GroupPath("billing app"), "/v1/groups/billing%20app"},
		{GroupOffsetsPath("g/1"), "/v1/groups/g%2F1/offsets"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
