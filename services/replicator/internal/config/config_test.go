package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var key = base64.StdEncoding.EncodeToString(make([]byte, 32))

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func valid() []string {
	return []string{"--node-id=2", "--cluster-key=" + key, "--tls-cert=c", "--tls-key=k", "--tls-ca=ca",
		"--serf-advertise=10.0.0.2:7946", "--raft-advertise=10.0.0.2:7947", "--advertise=10.0.0.2:9093"}
}

func TestParseFlagsAndEnv(t *testing.T) {
	c, err := Parse(append(valid(), "--join=a:1, b:2", "--bootstrap-expect=3"),
		env(map[string]string{"STRATA_DATA_DIR": "/data", "STRATA_NODE_ID": "7", "STRATA_PREFERRED_LEADER_INTERVAL": "1m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.NodeID != 2 { // the flag wins over STRATA_NODE_ID
		t.Fatalf("node id %d", c.NodeID)
	}
	if c.DataDir != "/data" || c.PreferredLeaderInterval != time.Minute {
		t.Fatalf("env not applied: %+v", c)
	}
	if len(c.Join) != 2 || c.Join[1] != "b:2" || c.BootstrapExpect != 3 {
		t.Fatalf("join %q expect %d", c.Join, c.BootstrapExpect)
	}
	if c.BrokerAdvertise != c.BrokerAddr {
		t.Fatalf("broker advertise %q", c.BrokerAdvertise)
	}
	c, err = Parse(append(valid(), "--max-conns-per-ip=5"), env(map[string]string{"STRATA_MAX_CONNS": "100", "STRATA_MAX_CONNS_PER_IP": "50"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxConns != 100 || c.MaxConnsPerIP != 5 {
		t.Fatalf("max-conns %d, max-conns-per-ip %d; want 100 from the environment and 5 from the flag", c.MaxConns, c.MaxConnsPerIP)
	}
	d := Default()
	if d.BrokerProbeInterval != 500*time.Millisecond || d.BrokerProbeTimeout != time.Second || d.BrokerProbeFailures != 3 || d.BrokerReconnectBackoff != 500*time.Millisecond {
		t.Fatalf("broker probe defaults %s/%s/%d, reconnect %s", d.BrokerProbeInterval, d.BrokerProbeTimeout, d.BrokerProbeFailures, d.BrokerReconnectBackoff)
	}
	c, err = Parse(append(valid(), "--broker-probe-failures=5"), env(map[string]string{"STRATA_BROKER_PROBE_INTERVAL": "250ms",
		"STRATA_BROKER_PROBE_TIMEOUT": "2s", "STRATA_BROKER_PROBE_FAILURES": "4", "STRATA_BROKER_RECONNECT_BACKOFF": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.BrokerProbeInterval != 250*time.Millisecond || c.BrokerProbeTimeout != 2*time.Second || c.BrokerProbeFailures != 5 || c.BrokerReconnectBackoff != time.Second {
		t.Fatalf("broker probe %s/%s/%d, reconnect %s; want 250ms, 2s, 5 (the flag) and 1s", c.BrokerProbeInterval, c.BrokerProbeTimeout, c.BrokerProbeFailures, c.BrokerReconnectBackoff)
	}
}

// TestBrokerLocalSocket: off by default; the path and the broker's uid
// are flags and STRATA_* variables, the uid this replicator's own unless
// set.
func TestBrokerLocalSocket(t *testing.T) {
	c, err := Parse(valid(), env(nil))
	if err != nil || c.BrokerLocalSocket != "" || c.BrokerLocalSocketPeerUID() != uint32(os.Getuid()) {
		t.Fatalf("default: %q uid %d, %v", c.BrokerLocalSocket, c.BrokerLocalSocketPeerUID(), err)
	}
	c, err = Parse(append(valid(), "--broker-local-socket-uid=65532"), env(map[string]string{"STRATA_BROKER_LOCAL_SOCKET": "/run/strata/broker.sock"}))
	if err != nil || c.BrokerLocalSocket != "/run/strata/broker.sock" || c.BrokerLocalSocketPeerUID() != 65532 {
		t.Fatalf("set: %q uid %d, %v", c.BrokerLocalSocket, c.BrokerLocalSocketPeerUID(), err)
	}
}

func TestValidateNamesTheProblem(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"node id", []string{"--node-id=0"}, nil, "node-id"},
		{"short key", []string{"--cluster-key=" + base64.StdEncoding.EncodeToString([]byte("short"))}, nil, "32 bytes"},
		{"no tls", []string{"--tls-ca="}, nil, "tls-cert, tls-key and tls-ca"},
		{"wildcard advertise", []string{"--raft-advertise=0.0.0.0:7947"}, nil, "raft-advertise"},
		{"wildcard broker addr", []string{"--broker-addr=0.0.0.0:9092"}, nil, "broker-addr"},
		{"bad join", []string{"--join=nohostport"}, nil, "join"},
		{"both bootstraps", []string{"--bootstrap", "--bootstrap-expect=3"}, nil, "exclusive"},
		{"bad env", nil, map[string]string{"STRATA_BOOTSTRAP_EXPECT": "three"}, "STRATA_BOOTSTRAP_EXPECT"},
		{"log format", []string{"--log-format=xml"}, nil, "log-format"},
		{"zero max conns", []string{"--max-conns=0"}, nil, "max-conns must be >= 1, got 0"},
		{"zero probe interval", []string{"--broker-probe-interval=0s"}, nil, "broker-probe-interval must be >= 10ms, got 0s"},
		{"tiny probe timeout", nil, map[string]string{"STRATA_BROKER_PROBE_TIMEOUT": "1ms"}, "broker-probe-timeout must be >= 10ms, got 1ms"},
		{"no probe failures", []string{"--broker-probe-failures=0"}, nil, "broker-probe-failures must be >= 1, got 0"},
		{"zero reconnect backoff", []string{"--broker-reconnect-backoff=0s"}, nil, "broker-reconnect-backoff must be >= 10ms, got 0s"},
		{"per-ip cap above total", nil, map[string]string{"STRATA_MAX_CONNS": "10", "STRATA_MAX_CONNS_PER_IP": "11"},
			"max-conns-per-ip must be >= 1 and <= max-conns (10), got 11"},
		{"long local socket", []string{"--broker-local-socket=/" + strings.Repeat("s", 107)}, nil, "broker-local-socket"},
		{"bad local socket uid", []string{"--broker-local-socket-uid=-5"}, nil, "broker-local-socket-uid must be -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(append(valid(), tc.args...), env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want mention of %q", err, tc.want)
			}
		})
	}
}

func TestDefaultNeedsOnlySecrets(t *testing.T) {
	if err := Default().Validate(); err == nil {
		t.Fatal("default config without key and certs validated")
	}
}

// withoutKey is valid() minus --cluster-key.
func withoutKey() []string {
	var args []string
	for _, a := range valid() {
		if !strings.HasPrefix(a, "--cluster-key=") {
			args = append(args, a)
		}
	}
	return args
}

func writeKeyFile(tb testing.TB, content string) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "gossip.key")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestClusterKeyFile(t *testing.T) {
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	t.Run("read and trimmed", func(t *testing.T) {
		path := writeKeyFile(t, "  "+other+"\n\n")
		c, err := Parse(append(withoutKey(), "--cluster-key-file="+path), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.ClusterKey != other {
			t.Fatalf("cluster key %q, want %q from the file", c.ClusterKey, other)
		}
	})
	t.Run("from env", func(t *testing.T) {
		path := writeKeyFile(t, other)
		c, err := Parse(withoutKey(), env(map[string]string{"STRATA_CLUSTER_KEY_FILE": path}))
		if err != nil {
			t.Fatal(err)
		}
		if c.ClusterKey != other {
			t.Fatalf("cluster key %q, want %q", c.ClusterKey, other)
		}
	})

	tests := []struct {
		name string
		args func(tb testing.TB) []string
		env  map[string]string
		want string
	}{
		{"both flags", func(tb testing.TB) []string {
			return append(valid(), "--cluster-key-file="+writeKeyFile(tb, other))
		}, nil, "exclusive"},
		{"file and env key", func(tb testing.TB) []string {
			return append(withoutKey(), "--cluster-key-file="+writeKeyFile(tb, other))
		}, map[string]string{"STRATA_CLUSTER_KEY": key}, "exclusive"},
		{"missing file", func(tb testing.TB) []string {
			return append(withoutKey(), "--cluster-key-file="+filepath.Join(tb.TempDir(), "absent"))
		}, nil, "cluster-key-file: open"},
		{"short key in file", func(tb testing.TB) []string {
			return append(withoutKey(), "--cluster-key-file="+writeKeyFile(tb, base64.StdEncoding.EncodeToString([]byte("short"))))
		}, nil, "cluster-key-file "},
		{"empty file", func(tb testing.TB) []string {
			return append(withoutKey(), "--cluster-key-file="+writeKeyFile(tb, "\n"))
		}, nil, "32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.args(t), env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want mention of %q", err, tc.want)
			}
		})
	}
}

// TestGRPCLimitFlags: the gRPC server's handshake deadline and stream
// caps are flags (and STRATA_* variables) like the broker's, validated.
func TestGRPCLimitFlags(t *testing.T) {
	c, err := Parse(append(valid(), "--handshake-timeout", "2s", "--max-concurrent-streams", "7"),
		env(map[string]string{"STRATA_MAX_STREAMS_PER_IDENTITY": "9"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HandshakeTimeout != 2*time.Second || c.MaxConcurrentStreams != 7 || c.MaxStreamsPerIdentity != 9 {
		t.Fatalf("limits %v %d %d", c.HandshakeTimeout, c.MaxConcurrentStreams, c.MaxStreamsPerIdentity)
	}
	for _, bad := range [][]string{{"--handshake-timeout", "11s"}, {"--max-concurrent-streams", "0"}, {"--max-streams-per-identity", "0"}} {
		if _, err := Parse(append(valid(), bad...), env(nil)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
