package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-log/strata/pkg/pki"
)

func runForTest(tb testing.TB, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestPKIInitWritesAndKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	args := []string{"pki", "init", "--out", dir, "--ca-name", "strata-test-ca",
		"--node", "1", "--node", "2", "--node", "3", "--host", "strata.example", "--host", "10.0.0.9"}

	out, _, err := runForTest(t, args...)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	names := []string{"ca", "broker-1", "broker-2", "broker-3",
		"replicator-1", "replicator-2", "replicator-3", "admin", "operator"}
	for _, n := range names {
		for _, f := range []string{n + ".pem", n + "-key.pem"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Fatalf("missing %s: %v", f, err)
			}
		}
	}
	if !strings.Contains(out, "wrote CA") || strings.Contains(out, "kept") {
		t.Fatalf("first run report should say everything was written:\n%s", out)
	}

	ca, err := pki.LoadCAFiles(filepath.Join(dir, pki.CAFileName), filepath.Join(dir, pki.CAKeyFileName), nil)
	if err != nil {
		t.Fatalf("load CA: %v", err)
	}
	adminPEM, err := os.ReadFile(filepath.Join(dir, "admin.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(adminPEM)
	if block == nil {
		t.Fatal("admin.pem holds no PEM block")
	}
	adminCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminCert.Verify(x509.VerifyOptions{
		Roots:     ca.CertPool(),
		DNSName:   "strata.example",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Fatalf("admin cert does not verify for the extra --host: %v", err)
	}

	before := readAll(t, dir, names)
	out, _, err = runForTest(t, args...)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !strings.Contains(out, "kept  CA") || strings.Contains(out, "wrote ") {
		t.Fatalf("second run report should say everything was kept:\n%s", out)
	}
	after := readAll(t, dir, names)
	for f, b := range before {
		if !bytes.Equal(b, after[f]) {
			t.Errorf("%s changed on the second run", f)
		}
	}
}

func readAll(tb testing.TB, dir string, names []string) map[string][]byte {
	tb.Helper()
	m := make(map[string][]byte)
	for _, n := range names {
		for _, f := range []string{n + ".pem", n + "-key.pem"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				tb.Fatal(err)
			}
			m[f] = b
		}
	}
	return m
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"pki without init", []string{"pki"}, "init"},
		{"missing out", []string{"pki", "init", "--ca-name", "c", "--node", "1"}, "--out is required"},
		{"missing ca name", []string{"pki", "init", "--out", "d", "--node", "1"}, "--ca-name is required"},
		{"missing node", []string{"pki", "init", "--out", "d", "--ca-name", "c"}, "--node is required"},
		{"duplicate node", []string{"pki", "init", "--out", "d", "--ca-name", "c", "--node", "1", "--node", "1"}, "given twice"},
		{"unknown flag", []string{"pki", "init", "--bogus"}, "bogus"},
		{"stray argument", []string{"pki", "init", "--out", "d", "--ca-name", "c", "--node", "1", "extra"}, "unexpected argument"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runForTest(t, tc.args...)
			if !errors.Is(err, errUsage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestPKIInitGossipKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	args := []string{"pki", "init", "--out", dir, "--ca-name", "strata-test-ca", "--node", "1"}
	path := filepath.Join(dir, "gossip.key")

	out, _, err := runForTest(t, args...)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if !strings.Contains(out, "wrote        "+path) {
		t.Fatalf("first run should report writing %s:\n%s", path, out)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("gossip.key mode %v, want 0600", st.Mode().Perm())
	}
	first, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(first)))
	if err != nil || len(key) != 32 {
		t.Fatalf("gossip.key %q: %d bytes, %v; want base64 of 32 bytes", first, len(key), err)
	}
	if bytes.Equal(key, make([]byte, 32)) {
		t.Fatal("gossip.key is all zeros")
	}

	out, _, err = runForTest(t, args...)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if !strings.Contains(out, "kept         "+path) {
		t.Fatalf("second run should report keeping %s:\n%s", path, out)
	}
	if second, err := os.ReadFile(path); err != nil || !bytes.Equal(first, second) {
		t.Fatalf("gossip.key changed on the second run (%v)", err)
	}

	other := filepath.Join(t.TempDir(), "pki")
	if _, _, err := runForTest(t, "pki", "init", "--out", other, "--ca-name", "c", "--node", "1"); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(other, "gossip.key")); err != nil || bytes.Equal(b, first) {
		t.Fatalf("two clusters got the same gossip key (%v)", err)
	}
}

func TestPKIInitRefusesBadGossipKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(path, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runForTest(t, "pki", "init", "--out", dir, "--ca-name", "c", "--node", "1")
	if err == nil || !strings.Contains(err.Error(), "gossip.key") || !strings.Contains(err.Error(), "32 bytes") {
		t.Fatalf("err = %v, want a complaint about the short gossip.key", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "c2hvcnQ=\n" {
		t.Fatalf("a bad gossip.key was replaced: %q (%v)", b, err)
	}
}
