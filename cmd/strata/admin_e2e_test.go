package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the real strata-admin (pki init, serve), a real
// strata-broker with mutual TLS and --acl-admin-url, and the real strata
// CLI against them, all built in TestMain.

// proc is a running service binary.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startProc starts bin and waits until addr accepts connections.
func startProc(tb testing.TB, name, addr, bin string, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), out: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	tb.Cleanup(func() { p.stop(tb) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			tb.Fatalf("%s exited: %v\n%s", name, err, p.out)
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s did not listen on %s: %v\n%s", name, addr, err, p.out)
		}
		time.Sleep(20 * time.Millisecond) // polling a port: no other signal exists
	}
}

// stop ends the process with SIGTERM (SIGKILL after 10 s) and waits. It
// may be called more than once.
func (p *proc) stop(tb testing.TB) {
	tb.Helper()
	if p.cmd.ProcessState != nil {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Errorf("signal %s: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			tb.Errorf("%s exited with %v:\n%s", p.name, err, p.out)
		}
	case <-time.After(10 * time.Second):
		tb.Errorf("%s did not stop within 10s; killing it", p.name)
		if err := p.cmd.Process.Kill(); err != nil {
			tb.Error(err)
		}
		<-p.done
	}
}

func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// cliWith runs the strata binary with a contexts file and no connection
// flags of its own, returning stdout, stderr and the exit code.
func cliWith(tb testing.TB, ctxFile, stdin string, args ...string) (string, string, int) {
	tb.Helper()
	cmd := exec.Command(strataBin, append([]string{"--timeout", "30s"}, args...)...)
	cmd.Env = append(os.Environ(), "STRATA_CONTEXT_FILE="+ctxFile, "STRATA_CONTEXT=", "STRATA_ADMIN=", "STRATA_BROKERS=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	return out.String(), errb.String(), 0
}

func mustCLI(tb testing.TB, ctxFile, stdin string, args ...string) string {
	tb.Helper()
	out, errs, code := cliWith(tb, ctxFile, stdin, args...)
	if code != 0 {
		tb.Fatalf("strata %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

// within retries f until it returns nil or d passes, and returns how long
// it took.
func within(tb testing.TB, d time.Duration, what string, f func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > d {
			tb.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond) // each try is a whole CLI run; nothing to wait on
	}
}

// secureCluster is a PKI, a real admin and a real mTLS broker watching it.
type secureCluster struct {
	dir, pki           string
	adminAddr, brokers string
	adminData, brkData string
	admin, broker      *proc
	ctxFile            string
}

func (c *secureCluster) startAdmin(tb testing.TB) {
	tb.Helper()
	c.admin = startProc(tb, "strata-admin", c.adminAddr, adminBin, "serve",
		"--listen", c.adminAddr, "--data-dir", c.adminData,
		"--tls-cert", filepath.Join(c.pki, "admin.pem"), "--tls-key", filepath.Join(c.pki, "admin-key.pem"),
		"--tls-ca", filepath.Join(c.pki, "ca.pem"), "--ca-key", filepath.Join(c.pki, "ca-key.pem"),
		"--cluster-addrs", c.brokers)
}

func (c *secureCluster) startBroker(tb testing.TB) {
	tb.Helper()
	c.broker = startProc(tb, "strata-broker", c.brokers, brokerBin,
		"--data-dir", c.brkData, "--listen", c.brokers, "--metrics-listen", "", "--log-level", "warn",
		"--tls-cert", filepath.Join(c.pki, "broker-1.pem"), "--tls-key", filepath.Join(c.pki, "broker-1-key.pem"),
		"--tls-ca", filepath.Join(c.pki, "ca.pem"), "--acl-admin-url", "https://"+c.adminAddr)
}

func newSecureCluster(tb testing.TB) *secureCluster {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the real services")
	}
	dir := tb.TempDir()
	c := &secureCluster{dir: dir, pki: filepath.Join(dir, "pki"), adminAddr: freeAddr(tb), brokers: freeAddr(tb),
		adminData: filepath.Join(dir, "admin"), brkData: filepath.Join(dir, "broker"), ctxFile: filepath.Join(dir, "contexts.json")}
	if out, err := exec.Command(adminBin, "pki", "init", "--out", c.pki, "--ca-name", "e2e", "--node", "1").CombinedOutput(); err != nil {
		tb.Fatalf("pki init: %v\n%s", err, out)
	}
	c.startAdmin(tb)
	c.startBroker(tb)
	mustCLI(tb, c.ctxFile, "", "context", "set", "op", "--brokers", c.brokers, "--admin", "https://"+c.adminAddr,
		"--ca", filepath.Join(c.pki, "ca.pem"), "--cert", filepath.Join(c.pki, "operator.pem"), "--key", filepath.Join(c.pki, "operator-key.pem"))
	mustCLI(tb, c.ctxFile, "", "context", "use", "op")
	return c
}

// user issues a client certificate for name with `strata cert issue` and
// makes a context named name with it.
func (c *secureCluster) user(tb testing.TB, name string) {
	tb.Helper()
	out := filepath.Join(c.dir, "users", name)
	mustCLI(tb, c.ctxFile, "", "cert", "issue", name, "--out", out)
	mustCLI(tb, c.ctxFile, "", "context", "set", name, "--brokers", c.brokers, "--admin", "https://"+c.adminAddr,
		"--ca", filepath.Join(out, "ca.pem"), "--cert", filepath.Join(out, name+".pem"), "--key", filepath.Join(out, name+"-key.pem"))
}

// as runs the CLI in the context of user name and returns an error with
// stderr unless it exits 0.
func (c *secureCluster) as(tb testing.TB, name, stdin string, args ...string) error {
	tb.Helper()
	_, errs, code := cliWith(tb, c.ctxFile, stdin, append([]string{"--context", name}, args...)...)
	if code != 0 {
		return fmt.Errorf("exit %d: %s", code, strings.TrimSpace(errs))
	}
	return nil
}

func wantDenied(tb testing.TB, err error, what string) {
	tb.Helper()
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "denied") && !strings.Contains(err.Error(), "403") {
		tb.Fatalf("%s: %v, want a denial", what, err)
	}
}

// TestSecureClusterEndToEnd: users are added with `strata cert issue` and
// `strata acl add`, the broker enforces each change within 2 s, and keeps
// enforcing the last policy with admin stopped and after its own restart.
func TestSecureClusterEndToEnd(t *testing.T) {
	c := newSecureCluster(t)
	mustCLI(t, c.ctxFile, "", "topic", "create", "orders")
	c.user(t, "alice")
	c.user(t, "carol")

	t.Run("cert ca prints the cluster CA", func(t *testing.T) {
		want, err := os.ReadFile(filepath.Join(c.pki, "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if got := mustCLI(t, c.ctxFile, "", "cert", "ca"); got != string(want) {
			t.Fatalf("cert ca printed %q", got)
		}
	})
	t.Run("a new user may do nothing", func(t *testing.T) {
		wantDenied(t, c.as(t, "alice", "x\n", "produce", "orders"), "alice produce")
		wantDenied(t, c.as(t, "alice", "", "acl", "list"), "alice acl list")
		wantDenied(t, c.as(t, "alice", "", "cert", "issue", "dave", "--out", filepath.Join(c.dir, "dave")), "alice cert issue")
	})
	t.Run("acl add reaches the broker within 2s", func(t *testing.T) {
		// Clients read cluster metadata (brokers, partitions) before any
		// produce: a user needs describe on cluster besides topic rights.
		for _, u := range []string{"alice", "carol"} {
			mustCLI(t, c.ctxFile, "", "acl", "add", "p", u, "cluster", "describe")
		}
		within(t, 2*time.Second, "alice metadata after acl add", func() error { return c.as(t, "alice", "", "topic", "list") })
		wantDenied(t, c.as(t, "alice", "x\n", "produce", "orders"), "alice produce with describe only")
		out := mustCLI(t, c.ctxFile, "", "acl", "add", "p", "alice", "orders", "produce")
		if !strings.Contains(out, "added p, alice, orders, produce, allow (policy version 4)") {
			t.Fatalf("acl add: %q", out)
		}
		took := within(t, 2*time.Second, "alice produce after acl add", func() error { return c.as(t, "alice", "x\n", "produce", "orders") })
		t.Logf("alice allowed %s after acl add returned", took)
		if out := mustCLI(t, c.ctxFile, "", "acl", "list"); !strings.Contains(out, "alice") || !strings.Contains(out, "policy version 4") {
			t.Fatalf("acl list: %q", out)
		}
		wantDenied(t, c.as(t, "carol", "x\n", "produce", "orders"), "carol produce")
	})
	t.Run("acl apply and acl remove reach the broker within 2s", func(t *testing.T) {
		policy := mustCLI(t, c.ctxFile, "", "--json", "acl", "list")
		if !strings.Contains(policy, `"version": 4`) {
			t.Fatalf("acl list --json: %s", policy)
		}
		file := filepath.Join(c.dir, "policy.csv")
		text := defaultPolicyForTest + "p, alice, cluster, describe, allow\np, carol, cluster, describe, allow\n" +
			"p, alice, orders, produce, allow\np, alice, orders, consume, allow\n"
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := mustCLI(t, c.ctxFile, "", "acl", "apply", file); !strings.Contains(out, "policy version 5") {
			t.Fatalf("acl apply: %q", out)
		}
		within(t, 2*time.Second, "alice consume after acl apply", func() error {
			return c.as(t, "alice", "", "consume", "orders", "--from", "earliest", "-n", "1")
		})
		mustCLI(t, c.ctxFile, "", "acl", "remove", "p, alice, orders, consume, allow")
		within(t, 2*time.Second, "alice consume denied after acl remove", func() error {
			if err := c.as(t, "alice", "", "consume", "orders", "--from", "earliest", "-n", "1"); err == nil {
				return errors.New("still allowed")
			}
			return nil
		})
	})
	t.Run("kept with admin stopped and across a broker restart", func(t *testing.T) {
		c.admin.stop(t)
		if err := c.as(t, "alice", "x\n", "produce", "orders"); err != nil {
			t.Fatalf("alice produce with admin stopped: %v", err)
		}
		c.broker.stop(t)
		c.startBroker(t)
		if err := c.as(t, "alice", "x\n", "produce", "orders"); err != nil {
			t.Fatalf("alice produce after the broker restarted with admin down: %v", err)
		}
		wantDenied(t, c.as(t, "alice", "", "consume", "orders", "--from", "earliest", "-n", "1"), "alice consume after restart")
		wantDenied(t, c.as(t, "carol", "x\n", "produce", "orders"), "carol produce after restart")
		// The broker runs on while admin is away, and picks admin up again.
		c.startAdmin(t)
		mustCLI(t, c.ctxFile, "", "acl", "add", "p", "carol", "orders", "produce")
		within(t, 15*time.Second, "carol produce once admin is back", func() error { return c.as(t, "carol", "x\n", "produce", "orders") })
	})
}

// defaultPolicyForTest is acl.DefaultPolicy's rules that matter here: the
// operator stays admin and the nodes keep their roles.
const defaultPolicyForTest = `p, admin, *, *, allow
p, admin, cluster, *, allow
p, broker, *, replicate, allow
p, broker, *, describe, allow
p, broker, cluster, replicate, allow
p, broker, cluster, describe, allow
p, broker, cluster, describe_acl, allow
g, operator, admin
g, broker-*, broker
g, replicator-*, replicator
`
