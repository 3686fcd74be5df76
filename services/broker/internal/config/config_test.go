package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // substring; empty means valid
	}{
		// Every case starts from Default() in plaintext dev mode (InsecureNoAuth).
		{"default dev mode", func(*Config) {}, ""},
		{"plaintext without insecure-no-auth", func(c *Config) { c.InsecureNoAuth = false }, "tls-cert, tls-key and tls-ca are required: without TLS there is no authentication"},
		{"tls with insecure-no-auth", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSCA = "c.pem", "k.pem", "ca.pem" }, "insecure-no-auth must not be set with tls-cert"},
		{"tls with acl policy", func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSCA, c.InsecureNoAuth, c.ACLPolicy = "c.pem", "k.pem", "ca.pem", false, "policy.csv"
		}, ""},
		{"acl policy without tls", func(c *Config) { c.ACLPolicy = "policy.csv" }, `acl-policy "policy.csv" needs tls-cert`},
		{"negative node id", func(c *Config) { c.NodeID = -1 }, "node-id must be >= 0"},
		{"empty data dir", func(c *Config) { c.DataDir = " " }, "data-dir must be set"},
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, `listen "localhost"`},
		{"wildcard listen needs advertise", func(c *Config) { c.Listen = "0.0.0.0:9092" }, "advertise must be set when listen"},
		{"wildcard listen with advertise", func(c *Config) { c.Listen = "0.0.0.0:9092"; c.Advertise = "broker-1:9092" }, ""},
		{"wildcard advertise", func(c *Config) { c.Advertise = "0.0.0.0:9092" }, "not a wildcard"},
		{"metrics off", func(c *Config) { c.MetricsListen = "" }, ""},
		{"bad metrics listen", func(c *Config) { c.MetricsListen = "9100" }, "metrics-listen"},
		{"tls complete", func(c *Config) { c.TLSCert, c.TLSKey, c.TLSCA, c.InsecureNoAuth = "c.pem", "k.pem", "ca.pem", false }, ""},
		{"tls without ca", func(c *Config) { c.TLSCert, c.TLSKey = "c.pem", "k.pem" }, "tls-cert, tls-key and tls-ca must be set together"},
		{"bad log level", func(c *Config) { c.LogLevel = "loud" }, "log-level must be"},
		{"zero partitions", func(c *Config) { c.TopicDefaults.Partitions = 0 }, "partitions must be in [1, 10000], got 0"},
		{"bad fsync", func(c *Config) { c.TopicDefaults.Fsync = "sometimes" }, `fsync must be always, never or interval:<duration>`},
		{"min isr above rf", func(c *Config) { c.TopicDefaults.MinInsyncReplicas = 2 }, "min.insync.replicas (2) must not exceed replication.factor (1)"},
		{"zero retention", func(c *Config) { c.TopicDefaults.RetentionBytes = 0 }, "retention.bytes must be -1 (unlimited) or at least 1, got 0"},
		{"recv smaller than record", func(c *Config) { c.MaxRecvMsgBytes = 512 << 10; c.TopicDefaults.MaxRecordBytes = 1 << 20 }, "max-recv-msg-bytes (524288) must be >= default-max-record-bytes (1048576)"},
		{"tiny recv", func(c *Config) { c.MaxRecvMsgBytes = 10 }, "max-recv-msg-bytes must be >= 65536"},
		{"zero streams", func(c *Config) { c.MaxOpenStreams = 0 }, "max-open-streams must be >= 1"},
		{"zero in flight", func(c *Config) { c.ProduceStreamInFlight = 0 }, "produce-stream-in-flight must be >= 1"},
		{"zero streams per identity", func(c *Config) { c.MaxStreamsPerIdentity = 0 }, "max-streams-per-identity must be >= 1"},
		{"zero handshake timeout", func(c *Config) { c.HandshakeTimeout = 0 }, "handshake-timeout must be > 0 and <= 10s, got 0s"},
		{"handshake timeout over 10s", func(c *Config) { c.HandshakeTimeout = 2 * time.Minute }, "handshake-timeout must be > 0 and <= 10s, got 2m0s"},
		{"handshake timeout of 10s", func(c *Config) { c.HandshakeTimeout = 10 * time.Second }, ""},
		{"zero max conns", func(c *Config) { c.MaxConns = 0 }, "max-conns must be >= 1"},
		{"per-ip cap above total", func(c *Config) { c.MaxConns, c.MaxConnsPerIP = 10, 11 }, "max-conns-per-ip must be >= 1 and <= max-conns (10), got 11"},
		{"per-ip cap equal to total", func(c *Config) { c.MaxConns, c.MaxConnsPerIP = 10, 10 }, ""},
		{"short keepalive", func(c *Config) { c.KeepaliveTime = time.Millisecond }, "keepalive-time must be >= 1s"},
		{"zero shutdown", func(c *Config) { c.ShutdownTimeout = 0 }, "shutdown-timeout must be > 0"},
		{"fast retention", func(c *Config) { c.RetentionCheckInterval = time.Millisecond }, "retention-check-interval must be >= 1s"},
		{"short leader lease", func(c *Config) { c.LeaderLease = 100 * time.Millisecond }, "leader-lease must be >= 500ms, got 100ms"},
		{"local socket without cluster mode", func(c *Config) { c.LocalSocket = "/run/strata/broker.sock" }, "local-socket serves LocalReplica to this node's replicator: it needs cluster mode"},
		{"local socket path too long", func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSCA, c.InsecureNoAuth, c.ReplicatorAddr = "c.pem", "k.pem", "ca.pem", false, "r:9093"
			c.LocalSocket = "/" + strings.Repeat("s", 107)
		}, "at most 107 bytes"},
		{"local socket in cluster mode", func(c *Config) {
			c.TLSCert, c.TLSKey, c.TLSCA, c.InsecureNoAuth, c.ReplicatorAddr = "c.pem", "k.pem", "ca.pem", false, "r:9093"
			c.LocalSocket, c.LocalSocketPeerUID = "/run/strata/broker.sock", 65532
		}, ""},
		{"bad local socket uid", func(c *Config) { c.LocalSocketPeerUID = -2 }, "local-socket-peer-uid must be -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			c.InsecureNoAuth = true
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.NodeID, c.LogLevel = -1, "x"
	err := c.Validate()
	for _, want := range []string{"node-id", "log-level"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %s", err, want)
		}
	}
}

func TestParse(t *testing.T) {
	env := map[string]string{
		"STRATA_DATA_DIR":           "/env/data",
		"STRATA_LISTEN":             "127.0.0.1:1111",
		"STRATA_DEFAULT_PARTITIONS": "3",
		"STRATA_AUTO_CREATE_TOPICS": "true",
	}
	c, err := Parse([]string{"--insecure-no-auth", "--listen", "127.0.0.1:2222", "--default-retention", "-1", "--node-id", "7"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/env/data" {
		t.Errorf("DataDir = %q, want from STRATA_DATA_DIR", c.DataDir)
	}
	if c.Listen != "127.0.0.1:2222" {
		t.Errorf("Listen = %q, want the flag to win over the environment", c.Listen)
	}
	if !c.InsecureNoAuth {
		t.Error("InsecureNoAuth = false, want --insecure-no-auth to set it")
	}
	if c.TopicDefaults.Partitions != 3 || !c.AutoCreateTopics || c.NodeID != 7 || c.TopicDefaults.RetentionMs != -1 {
		t.Errorf("got partitions=%d auto=%v node=%d retention=%d", c.TopicDefaults.Partitions, c.AutoCreateTopics, c.NodeID, c.TopicDefaults.RetentionMs)
	}

	if _, err := Parse(nil, func(k string) string {
		if k == "STRATA_NODE_ID" {
			return "abc"
		}
		return ""
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "STRATA_NODE_ID") {
		t.Errorf("bad env value: err = %v, want it to name STRATA_NODE_ID", err)
	}
	if _, err := Parse([]string{"-h"}, func(string) string { return "" }, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v, want flag.ErrHelp", err)
	}
	if _, err := Parse(nil, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "insecure-no-auth") {
		t.Errorf("plaintext without --insecure-no-auth: err = %v, want a refusal naming insecure-no-auth", err)
	}
	if _, err := Parse([]string{"--insecure-no-auth", "--default-partitions", "0"}, func(string) string { return "" }, io.Discard); err == nil {
		t.Error("--default-partitions 0: want a validation error")
	}
}

// TestParseConnectionLimits: each listener limit is a flag and a STRATA_*
// variable, flags winning.
func TestParseConnectionLimits(t *testing.T) {
	env := map[string]string{
		"STRATA_HANDSHAKE_TIMEOUT":        "3s",
		"STRATA_MAX_CONNS":                "100",
		"STRATA_MAX_CONNS_PER_IP":         "50",
		"STRATA_MAX_STREAMS_PER_IDENTITY": "7",
		"STRATA_MAX_CONCURRENT_STREAMS":   "9",
		"STRATA_INSECURE_NO_AUTH":         "true",
	}
	c, err := Parse([]string{"--max-conns-per-ip", "5"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HandshakeTimeout != 3*time.Second || c.MaxConns != 100 || c.MaxConnsPerIP != 5 || c.MaxStreamsPerIdentity != 7 || c.MaxConcurrentStreams != 9 {
		t.Errorf("got handshake=%s conns=%d per-ip=%d per-identity=%d per-conn=%d", c.HandshakeTimeout, c.MaxConns, c.MaxConnsPerIP, c.MaxStreamsPerIdentity, c.MaxConcurrentStreams)
	}
}

// TestParseLocalSocket: the local socket and its peer uid are flags and
// STRATA_* variables; the uid defaults to the broker's own.
func TestParseLocalSocket(t *testing.T) {
	env := map[string]string{"STRATA_LOCAL_SOCKET": "/run/strata/broker.sock", "STRATA_REPLICATOR_ADDR": "r:9093",
		"STRATA_TLS_CERT": "c.pem", "STRATA_TLS_KEY": "k.pem", "STRATA_TLS_CA": "ca.pem"}
	c, err := Parse(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.LocalSocket != "/run/strata/broker.sock" || c.LocalSocketPeerUID != -1 || c.LocalSocketUID() != uint32(os.Getuid()) {
		t.Errorf("got socket %q, peer uid %d (%d)", c.LocalSocket, c.LocalSocketPeerUID, c.LocalSocketUID())
	}
	if c, err = Parse([]string{"--local-socket-peer-uid", "65532"}, func(k string) string { return env[k] }, io.Discard); err != nil || c.LocalSocketUID() != 65532 {
		t.Errorf("--local-socket-peer-uid 65532: %d, %v", c.LocalSocketUID(), err)
	}
	if c, err = Parse([]string{"--insecure-no-auth"}, func(string) string { return "" }, io.Discard); err != nil || c.LocalSocket != "" {
		t.Errorf("default: socket %q (%v), want none", c.LocalSocket, err)
	}
}

// TestParseLeaderLease: the leader lease is a flag and a STRATA_* variable,
// 3s by default.
func TestParseLeaderLease(t *testing.T) {
	c, err := Parse([]string{"--insecure-no-auth"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.LeaderLease != 3*time.Second {
		t.Errorf("default LeaderLease = %s, want 3s", c.LeaderLease)
	}
	env := map[string]string{"STRATA_LEADER_LEASE": "2s", "STRATA_INSECURE_NO_AUTH": "true"}
	if c, err = Parse(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.LeaderLease != 2*time.Second {
		t.Errorf("LeaderLease = %s, want 2s from STRATA_LEADER_LEASE", c.LeaderLease)
	}
	if _, err := Parse([]string{"--leader-lease", "10ms"}, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "leader-lease") {
		t.Errorf("--leader-lease 10ms: err = %v, want a refusal naming leader-lease", err)
	}
}

// TestParseProducerIDExpiry: idle producer ids expire after 7 days by
// default; the flag and STRATA_PRODUCER_ID_EXPIRY change it, and a value
// under a minute is refused.
func TestParseProducerIDExpiry(t *testing.T) {
	c, err := Parse([]string{"--insecure-no-auth"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.ProducerIDExpiry != 7*24*time.Hour {
		t.Errorf("default ProducerIDExpiry = %s, want 168h", c.ProducerIDExpiry)
	}
	env := map[string]string{"STRATA_PRODUCER_ID_EXPIRY": "24h", "STRATA_INSECURE_NO_AUTH": "true"}
	if c, err = Parse(nil, func(k string) string { return env[k] }, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.ProducerIDExpiry != 24*time.Hour {
		t.Errorf("ProducerIDExpiry = %s, want 24h from STRATA_PRODUCER_ID_EXPIRY", c.ProducerIDExpiry)
	}
	if _, err := Parse([]string{"--producer-id-expiry", "5s"}, func(k string) string { return env[k] }, io.Discard); err == nil || !strings.Contains(err.Error(), "producer-id-expiry") {
		t.Errorf("--producer-id-expiry 5s: err = %v, want a refusal naming producer-id-expiry", err)
	}
}
