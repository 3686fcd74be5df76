package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/connlimit/flood"
	"github.com/strata-log/strata/pkg/pki"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServe runs serve on a loopback port and returns its address and a
// stop function that waits for it to end.
func startServe(tb testing.TB, cfg serveConfig, lg *zap.Logger) (addr string, stop func() error) {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, ln, lg, ready) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		tb.Fatalf("serve: %v", err)
	}
	return ln.Addr().String(), func() error { cancel(); return <-done }
}

func httpsClient(tb testing.TB, pkiDir, identity string) *http.Client {
	tb.Helper()
	r, err := pki.NewReloader(pki.DirFiles(pkiDir, identity), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tc, err := r.ClientConfig("127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

type policyJSON struct {
	Policy  string `json:"policy"`
	Version uint64 `json:"version"`
}

func getPolicyHTTPS(tb testing.TB, c *http.Client, addr string) policyJSON {
	tb.Helper()
	resp, err := c.Get("https://" + addr + "/v1/acl/policy")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET policy = %d", resp.StatusCode)
	}
	var p policyJSON
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		tb.Fatal(err)
	}
	return p
}

func TestServeOverMTLS(t *testing.T) {
	pkiDir := filepath.Join(t.TempDir(), "pki")
	if _, _, err := runForTest(t, "pki", "init", "--out", pkiDir, "--ca-name", "ca", "--node", "1"); err != nil {
		t.Fatal(err)
	}
	files := pki.DirFiles(pkiDir, "admin")
	cfg := defaultServeConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = files.CertFile, files.KeyFile, files.CAFile
	lg := zaptest.NewLogger(t)

	addr, stop := startServe(t, cfg, lg)
	operator := httpsClient(t, pkiDir, "operator")
	before := getPolicyHTTPS(t, operator, addr)

	// broker-1 holds describe on cluster but not admin.
	broker := httpsClient(t, pkiDir, "broker-1")
	if got := getPolicyHTTPS(t, broker, addr); got != before {
		t.Fatalf("broker GET = %+v", got)
	}
	newPolicy := before.Policy + "p, broker, cluster, alter, allow\n"
	body, err := json.Marshal(map[string]string{"policy": newPolicy})
	if err != nil {
		t.Fatal(err)
	}
	put := func(c *http.Client) int {
		req, err := http.NewRequest(http.MethodPut, "https://"+addr+"/v1/acl/policy", strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode
	}
	if code := put(broker); code != http.StatusForbidden {
		t.Fatalf("broker PUT = %d, want 403", code)
	}
	if code := put(operator); code != http.StatusOK {
		t.Fatalf("operator PUT = %d, want 200", code)
	}

	// No client certificate: the TLS handshake itself is refused.
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: operator.Transport.(*http.Transport).TLSClientConfig.Clone()}}
	bare.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = nil
	bare.Transport.(*http.Transport).TLSClientConfig.Certificates = nil
	if resp, err := bare.Get("https://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("request without client certificate got %d", resp.StatusCode)
	}
	bare.Transport.(*http.Transport).CloseIdleConnections()

	closeIdle(operator, broker)
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	// Restart on the same data dir: the replaced policy is still in force.
	addr, stop = startServe(t, cfg, lg)
	got := getPolicyHTTPS(t, operator, addr)
	if got.Policy != newPolicy || got.Version != before.Version+1 {
		t.Fatalf("after restart: %+v", got)
	}
	closeIdle(operator)
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

func TestServeUsage(t *testing.T) {
	_, _, err := runForTest(t, "serve", "--listen", "127.0.0.1:0")
	if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--data-dir is required") {
		t.Fatalf("err = %v", err)
	}
}

// closeIdle closes the clients' idle connections so that a graceful
// shutdown need not wait for them.
func closeIdle(clients ...*http.Client) {
	for _, c := range clients {
		c.CloseIdleConnections()
	}
}

// TestServeLimitsFromFlagsAndEnvironment: the listener limits are flags
// and STRATA_* variables (flags win), and out-of-range values are refused
// by name.
func TestServeLimitsFromFlagsAndEnvironment(t *testing.T) {
	required := []string{"--data-dir", "d", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca"}
	env := map[string]string{"STRATA_HANDSHAKE_TIMEOUT": "2s", "STRATA_MAX_CONNS": "10", "STRATA_MAX_CONNS_PER_IP": "4"}
	cfg, err := parseServe(append(required, "--max-conns-per-ip", "5"), func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HandshakeTimeout != 2*time.Second || cfg.MaxConns != 10 || cfg.MaxConnsPerIP != 5 {
		t.Errorf("got handshake=%s conns=%d per-ip=%d", cfg.HandshakeTimeout, cfg.MaxConns, cfg.MaxConnsPerIP)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"handshake over 10s", []string{"--handshake-timeout", "30s"}, "--handshake-timeout must be > 0 and <= 10s, got 30s"},
		{"zero conns", []string{"--max-conns", "0"}, "--max-conns must be >= 1, got 0"},
		{"per-ip above total", []string{"--max-conns", "3", "--max-conns-per-ip", "4"}, "--max-conns-per-ip must be >= 1 and <= --max-conns (3), got 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServe(append(required, tc.args...), func(string) string { return "" }, io.Discard)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a usage error containing %q", err, tc.want)
			}
		})
	}
}

// TestServeCommandReadsEnvironment runs `strata-admin serve` as main does,
// configured by STRATA_* variables alone, and asks it /healthz. It failed
// while serve read no environment (--data-dir is required).
func TestServeCommandReadsEnvironment(t *testing.T) {
	pkiDir := filepath.Join(t.TempDir(), "pki")
	if _, _, err := runForTest(t, "pki", "init", "--out", pkiDir, "--ca-name", "ca", "--node", "1"); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	for k, v := range identityEnv(pkiDir, "admin", addr) {
		t.Setenv(k, v)
	}
	t.Setenv("STRATA_DATA_DIR", filepath.Join(t.TempDir(), "data"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, io.Discard, io.Discard) }()
	files := pki.DirFiles(pkiDir, "admin")
	hc := healthcheckConfig{Listen: addr, TLSCert: files.CertFile, TLSKey: files.KeyFile, TLSCA: files.CAFile}
	flood.Until(t, 10*time.Second, "serve, configured by the environment, answers /healthz", func() bool {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v", err)
		default:
		}
		return healthcheck(ctx, hc, io.Discard) == nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// TestServeLogFlags: the logger's flags are checked with the others, by
// name.
func TestServeLogFlags(t *testing.T) {
	required := []string{"--data-dir", "d", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca"}
	env := map[string]string{"STRATA_LOG_LEVEL": "debug", "STRATA_LOG_FORMAT": "console"}
	cfg, err := parseServe(required, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.LogLevel != "debug" || cfg.LogFormat != "console" {
		t.Errorf("log level %q, format %q from the environment", cfg.LogLevel, cfg.LogFormat)
	}
	_, err = parseServe(append(required, "--log-level", "loud", "--log-format", "xml"), func(string) string { return "" }, io.Discard)
	for _, want := range []string{`--log-level must be debug, info, warn or error, got "loud"`, `--log-format must be json or console`} {
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want a usage error containing %q", err, want)
		}
	}
}
