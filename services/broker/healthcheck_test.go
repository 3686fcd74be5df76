package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/pkg/pki"
	"github.com/strata-log/strata/services/broker/internal/broker"
	"github.com/strata-log/strata/services/broker/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clusterPKI writes a CA with broker-1 and broker-2 key pairs.
func clusterPKI(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "pki")
	if _, err := pki.InitCluster(dir, pki.ClusterOptions{CAName: "healthcheck-test", Nodes: []string{"1", "2"}}, zap.NewNop()); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// tlsEnv is the STRATA_* environment of an mTLS broker listening on listen
// as identity.
func tlsEnv(pkiDir, identity, listen string) map[string]string {
	f := pki.DirFiles(pkiDir, identity)
	return map[string]string{
		"STRATA_LISTEN": listen, "STRATA_DATA_DIR": "/unused",
		"STRATA_TLS_CERT": f.CertFile, "STRATA_TLS_KEY": f.KeyFile, "STRATA_TLS_CA": f.CAFile,
	}
}

// startTLSBroker runs a real broker as broker-1 on a loopback port.
func startTLSBroker(tb testing.TB, pkiDir string) string {
	tb.Helper()
	f := pki.DirFiles(pkiDir, "broker-1")
	cfg := config.Default()
	cfg.DataDir = tb.TempDir()
	cfg.Listen, cfg.MetricsListen = "127.0.0.1:0", ""
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = f.CertFile, f.KeyFile, f.CAFile
	cfg.ShutdownTimeout = 5 * time.Second
	b, err := broker.Start(context.Background(), cfg, zaptest.NewLogger(tb), broker.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Shutdown(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return b.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
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
	addr := startTLSBroker(t, pkiDir)
	closed := closedAddr(t)

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // "" means healthy
	}{
		{"serving, own identity", tlsEnv(pkiDir, "broker-1", addr), nil, ""},
		{"wildcard listen dials loopback", tlsEnv(pkiDir, "broker-1", "0.0.0.0:"+port(t, addr)), []string{"--advertise", "broker-1:9092"}, ""},
		{"another identity answers", tlsEnv(pkiDir, "broker-2", addr), nil, "broker-2"},
		{"nothing listening", tlsEnv(pkiDir, "broker-1", closed), nil, closed},
		{"plaintext against TLS", map[string]string{"STRATA_LISTEN": addr, "STRATA_INSECURE_NO_AUTH": "true"}, nil, "Unavailable"},
		{"flag wins over env", tlsEnv(pkiDir, "broker-1", addr), []string{"--listen", closed}, closed},
		{"bad config", map[string]string{"STRATA_LISTEN": addr}, nil, "config: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			start := time.Now()
			err := healthcheck(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &errOut)
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
			t.Log(err)
			if line := hcheck.OneLine(err); strings.Contains(line, "\n") {
				t.Fatalf("reason %q is not one line", line)
			}
		})
	}
}

// TestHealthcheckBounded: a listener that accepts and never answers the
// TLS handshake fails the check when the deadline passes.
func TestHealthcheckBounded(t *testing.T) {
	pkiDir := clusterPKI(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		if err := ln.Close(); err != nil {
			t.Error(err)
		}
		<-done
	})
	env := tlsEnv(pkiDir, "broker-1", ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = healthcheck(ctx, nil, func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "DeadlineExceeded") {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("took %s after a 300ms deadline", took)
	}
}

func port(tb testing.TB, addr string) string {
	tb.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestHealthcheckNotServing: an answer other than SERVING is unhealthy.
func TestHealthcheckNotServing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	env := map[string]string{"STRATA_LISTEN": ln.Addr().String(), "STRATA_INSECURE_NO_AUTH": "true"}
	err = healthcheck(context.Background(), nil, func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "NOT_SERVING") {
		t.Fatalf("err = %v, want NOT_SERVING", err)
	}
}
