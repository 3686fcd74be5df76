package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusedConnectionsExplained runs the rough edges of a new user
// against a real mTLS broker and admin: each failure says what the server
// did and what to do.
func TestRefusedConnectionsExplained(t *testing.T) {
	c := newSecureCluster(t)
	c.user(t, "alice") // a certificate, and no grant at all
	foreign := filepath.Join(c.dir, "foreign")
	if out, err := exec.Command(adminBin, "pki", "init", "--out", foreign, "--ca-name", "foreign", "--node", "1").CombinedOutput(); err != nil {
		t.Fatalf("pki init: %v\n%s", err, out)
	}
	foreignTLS := []string{"--ca", filepath.Join(c.pki, "ca.pem"),
		"--cert", filepath.Join(foreign, "operator.pem"), "--key", filepath.Join(foreign, "operator-key.pem")}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"plaintext to the TLS broker", []string{"--brokers", c.brokers, "--insecure", "topic", "list"},
			[]string{"broker " + c.brokers + " requires TLS"}},
		{"a certificate of another cluster", append(append([]string{"--brokers", c.brokers}, foreignTLS...), "topic", "list"),
			[]string{"refused this client's certificate (tls: unknown certificate authority)", "strata cert issue"}},
		{"admin: a certificate of another cluster", append(append([]string{"--admin", "https://" + c.adminAddr}, foreignTLS...), "acl", "list"),
			[]string{"admin https://" + c.adminAddr + " refused this client's certificate (tls: unknown certificate authority)"}},
		{"a user without a grant", []string{"--context", "alice", "topic", "list"},
			[]string{`identity "alice" may not describe on "cluster"`, "strata acl add p alice cluster describe"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs, code := cliWith(t, c.ctxFile, "", tc.args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
		})
	}
}
