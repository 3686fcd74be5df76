package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/pkg/pki"
)

// identityEnv is the healthcheck environment of identity dialling listen.
func identityEnv(pkiDir, identity, listen string) map[string]string {
	f := pki.DirFiles(pkiDir, identity)
	return map[string]string{"STRATA_LISTEN": listen,
		"STRATA_TLS_CERT": f.CertFile, "STRATA_TLS_KEY": f.KeyFile, "STRATA_TLS_CA": f.CAFile}
}

func TestHealthcheck(t *testing.T) {
	pkiDir := filepath.Join(t.TempDir(), "pki")
	if _, _, err := runForTest(t, "pki", "init", "--out", pkiDir, "--ca-name", "ca", "--node", "1"); err != nil {
		t.Fatal(err)
	}
	files := pki.DirFiles(pkiDir, "admin")
	cfg := defaultServeConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = files.CertFile, files.KeyFile, files.CAFile
	addr, stop := startServe(t, cfg, zaptest.NewLogger(t))
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}

	// A server with the admin's certificate that answers 503.
	r, err := pki.NewReloader(files, pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	unwell := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	unwell.TLS = r.ServerConfig()
	unwell.StartTLS()
	t.Cleanup(unwell.Close)
	unwellAddr := strings.TrimPrefix(unwell.URL, "https://")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // "" means healthy
	}{
		{"healthy, own identity", identityEnv(pkiDir, "admin", addr), nil, ""},
		{"wildcard listen dials loopback", identityEnv(pkiDir, "admin", "0.0.0.0:"+port), nil, ""},
		{"flags only", nil, []string{"--listen", addr, "--tls-cert", files.CertFile, "--tls-key", files.KeyFile, "--tls-ca", files.CAFile}, ""},
		{"another identity answers", identityEnv(pkiDir, "broker-1", addr), nil, "broker-1"},
		{"not 200", identityEnv(pkiDir, "admin", unwellAddr), nil, "503"},
		{"nothing listening", identityEnv(pkiDir, "admin", closed), nil, "connection refused"},
		{"flag wins over env", identityEnv(pkiDir, "admin", addr), []string{"--listen", closed}, closed},
		{"missing tls", map[string]string{"STRATA_LISTEN": addr}, nil, "--tls-cert is required; --tls-key is required"},
		{"bad flag", nil, []string{"--bogus"}, "bogus"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			start := time.Now()
			err := runHealthcheck(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &errOut)
			if took := time.Since(start); took > hcheck.Timeout+time.Second {
				t.Errorf("took %s, want at most %s", took, hcheck.Timeout)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatalf("healthcheck: %v", err)
				}
				if !strings.Contains(out.String(), "healthy") {
					t.Fatalf("stdout %q, want healthy", out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("reason %q is not one line", err)
			}
			if errors.Is(err, errUsage) {
				t.Fatalf("err = %v is a usage error (exit 2, which Docker reserves)", err)
			}
		})
	}
}
