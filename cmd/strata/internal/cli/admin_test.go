package cli

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseACLLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for a usage error
	}{
		{[]string{"p", "alice", "orders-*", "produce"}, "p, alice, orders-*, produce, allow"},
		{[]string{"p, alice, orders, consume, deny"}, "p, alice, orders, consume, deny"},
		{[]string{"p,", "alice,", "orders,", "consume"}, "p, alice, orders, consume, allow"},
		{[]string{"g", "alice", "writers"}, "g, alice, writers"},
		{[]string{"q", "alice", "produce", "1048576"}, "q, alice, produce, 1048576"},
		{[]string{"q, *, consume, 10"}, "q, *, consume, 10"},
		{[]string{"q", "alice", "produce"}, ""},
		{[]string{"q", "alice", "produce", "1.5"}, ""},
		{[]string{"q", "alice", "produce", "0"}, ""},
		{[]string{"g alice"}, ""},
		{[]string{"p", "alice", "orders"}, ""},
		{[]string{"p", "a", "b", "c", "d", "e"}, ""},
		{[]string{"x", "alice", "writers"}, ""},
		{[]string{""}, ""},
	} {
		t.Run(strings.Join(tc.args, "|"), func(t *testing.T) {
			doc, line, err := parseACLLine(tc.args)
			if tc.want == "" {
				var ue *usageError
				if !errors.As(err, &ue) {
					t.Fatalf("parseACLLine = %q, %v; want a usage error", line, err)
				}
				return
			}
			if err != nil || line != tc.want || len(doc.Rules)+len(doc.Bindings)+len(doc.Quotas) != 1 {
				t.Fatalf("parseACLLine = %+v %q, %v; want %q", doc, line, err, tc.want)
			}
		})
	}
}

// TestAdminCommandsNeedMTLSContext: the admin commands refuse, as usage
// errors (exit 2), a context they cannot use, before any network call.
func TestAdminCommandsNeedMTLSContext(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(dir, "ctx.json")}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no admin address", []string{"--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem", "acl", "list"}, "no admin address"},
		{"plain http admin", []string{"--admin", "http://127.0.0.1:9443", "--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem", "acl", "list"}, "want https://host:port"},
		{"insecure context", []string{"--admin", "https://127.0.0.1:9443", "--insecure", "acl", "list"}, "always needs mutual TLS"},
		{"no client certificate", []string{"--admin", "https://127.0.0.1:9443", "--ca", "ca.pem", "cert", "ca"}, "needs a client certificate"},
		{"bad acl line", []string{"--admin", "https://127.0.0.1:9443", "acl", "add", "p", "alice"}, "4 or 5 fields"},
		{"acl apply without a file", []string{"acl", "apply"}, "expected FILE"},
		{"cert issue without a name", []string{"cert", "issue"}, "expected NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			io, _, errb := testIO(vars)
			code := Run(context.Background(), tc.args, io)
			if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), tc.want)
			}
		})
	}
}

func TestContextSetAdmin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctx.json")
	vars := map[string]string{"STRATA_CONTEXT_FILE": path}
	io, _, errb := testIO(vars)
	if code := Run(context.Background(), []string{"context", "set", "dev", "--admin", "https://127.0.0.1:9443", "--brokers", "127.0.0.1:9092"}, io); code != 0 {
		t.Fatalf("context set: %d %s", code, errb)
	}
	cf, err := loadContexts(path)
	if err != nil || cf.Contexts["dev"].Admin != "https://127.0.0.1:9443" {
		t.Fatalf("context = %+v, %v", cf.Contexts["dev"], err)
	}
	// STRATA_ADMIN fills a context without an admin address; --admin wins.
	vars["STRATA_ADMIN"] = "https://env:1"
	e := &env{io: IO{Getenv: func(k string) string { return vars[k] }}, g: &globals{}}
	if c, err := e.resolve(); err != nil || c.Admin != "https://127.0.0.1:9443" {
		t.Fatalf("context admin must win over STRATA_ADMIN: %q %v", c.Admin, err)
	}
	e.g.admin = "https://flag:2"
	if c, err := e.resolve(); err != nil || c.Admin != "https://flag:2" {
		t.Fatalf("--admin must win: %q %v", c.Admin, err)
	}
}
