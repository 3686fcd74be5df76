package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/pkg/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clusterPKI writes a CA, replicator-1 and replicator-2 key pairs and a
// gossip key file, as `strata-admin pki init` does.
func clusterPKI(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "pki")
	if _, err := pki.InitCluster(dir, pki.ClusterOptions{CAName: "healthcheck-test", Nodes: []string{"1", "2"}}, zap.NewNop()); err != nil {
		tb.Fatal(err)
	}
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	if err := os.WriteFile(filepath.Join(dir, "gossip.key"), []byte(key+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// replicatorEnv is the STRATA_* environment of replicator-<id> listening on listen.
func replicatorEnv(pkiDir, id, listen string) map[string]string {
	f := pki.DirFiles(pkiDir, "replicator-"+id)
	return map[string]string{
		"STRATA_NODE_ID": id, "STRATA_LISTEN": listen, "STRATA_ADVERTISE": "replicator-" + id + ":9093",
		"STRATA_SERF_ADVERTISE": "10.0.0.1:7946", "STRATA_RAFT_ADVERTISE": "replicator-" + id + ":7000",
		"STRATA_CLUSTER_KEY_FILE": filepath.Join(pkiDir, "gossip.key"),
		"STRATA_TLS_CERT":         f.CertFile, "STRATA_TLS_KEY": f.KeyFile, "STRATA_TLS_CA": f.CAFile,
	}
}

// startHealthServer serves grpc.health.v1 with status under the
// replicator's own server TLS config for replicator-1.
func startHealthServer(tb testing.TB, pkiDir string, status healthpb.HealthCheckResponse_ServingStatus) string {
	tb.Helper()
	f := pki.DirFiles(pkiDir, "replicator-1")
	serverTLS, _, err := loadTLS(f.CertFile, f.KeyFile, f.CAFile)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(serverTLS)))
	hs := health.NewServer()
	hs.SetServingStatus("", status)
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return ln.Addr().String()
}

func closedAddr(tb testing.TB) string {
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

func TestHealthcheck(t *testing.T) {
	pkiDir := clusterPKI(t)
	serving := startHealthServer(t, pkiDir, healthpb.HealthCheckResponse_SERVING)
	notServing := startHealthServer(t, pkiDir, healthpb.HealthCheckResponse_NOT_SERVING)
	closed := closedAddr(t)
	_, servingPort, err := net.SplitHostPort(serving)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // "" means healthy
	}{
		{"serving, own identity", replicatorEnv(pkiDir, "1", serving), nil, ""},
		{"wildcard listen dials loopback", replicatorEnv(pkiDir, "1", "0.0.0.0:"+servingPort), nil, ""},
		{"another identity answers", replicatorEnv(pkiDir, "2", serving), nil, "replicator-2"},
		{"not serving", replicatorEnv(pkiDir, "1", notServing), nil, "NOT_SERVING"},
		{"nothing listening", replicatorEnv(pkiDir, "1", closed), nil, closed},
		{"flag wins over env", replicatorEnv(pkiDir, "1", serving), []string{"--listen", closed}, closed},
		{"bad config", map[string]string{"STRATA_LISTEN": serving}, nil, "config: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			start := time.Now()
			err := healthcheck(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out)
			if took := time.Since(start); took > hcheck.Timeout+time.Second {
				t.Errorf("took %s, want at most %s", took, hcheck.Timeout)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("healthcheck: %v", err)
				}
				if !strings.Contains(out.String(), "SERVING") {
					t.Fatalf("stdout %q, want SERVING", out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			if line := hcheck.OneLine(err); strings.Contains(line, "\n") {
				t.Fatalf("reason %q is not one line", line)
			}
		})
	}
}

func TestOneLine(t *testing.T) {
	err := errors.Join(errors.New("config: node-id must be positive"), errors.New("tls-cert  is required\n"))
	if got, want := hcheck.OneLine(err), "config: node-id must be positive; tls-cert is required"; got != want {
		t.Fatalf("oneLine = %q, want %q", got, want)
	}
}
