package main

import (
	"bytes"
	"flag"
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

// These tests run the real strata binary against a real broker, both built
// with `go build` from the workspace in TestMain. Without the workspace or
// the broker they are skipped.

var (
	strataBin  string
	brokerBin  string
	adminBin   string
	brokerAddr string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "strata-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, _ := filepath.Abs("../..")
	build := func(out, pkg string) error {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
		return nil
	}
	strataBin = filepath.Join(dir, "strata")
	brokerBin = filepath.Join(dir, "strata-broker")
	adminBin = filepath.Join(dir, "strata-admin")
	if err := build(strataBin, "./cmd/strata"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// A service that does not build fails every test here, not skips it.
	for _, b := range []struct{ out, pkg string }{{brokerBin, "./services/broker"}, {adminBin, "./services/admin"}} {
		if err := build(b.out, b.pkg); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if !testing.Short() {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		brokerAddr = l.Addr().String()
		l.Close()
		cmd := exec.Command(brokerBin, "--data-dir", filepath.Join(dir, "data"), "--listen", brokerAddr, "--log-level", "error",
			// No metrics listener: the default port is fixed, and other test
			// binaries running at the same time start brokers too.
			"--metrics-listen", "",
			// These tests exercise the data path in plaintext; mTLS and ACLs are
			// tested in services/broker and pkg/pki.
			"--insecure-no-auth")
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}()
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", brokerAddr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				fmt.Fprintln(os.Stderr, "broker did not start:", err)
				return 1
			}
			time.Sleep(20 * time.Millisecond) // polling a port: no other signal exists
		}
	}
	return m.Run()
}

// strata runs the binary with stdin and returns stdout, stderr, exit code.
func strata(tb testing.TB, stdin string, args ...string) (string, string, int) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs the real broker")
	}
	cmd := exec.Command(strataBin, append([]string{"--brokers", brokerAddr, "--insecure", "--timeout", "30s"}, args...)...)
	cmd.Env = append(os.Environ(), "STRATA_CONTEXT_FILE="+filepath.Join(tb.TempDir(), "ctx.json"), "STRATA_CONTEXT=")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		tb.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func mustStrata(tb testing.TB, stdin string, args ...string) string {
	tb.Helper()
	out, errs, code := strata(tb, stdin, args...)
	if code != 0 {
		tb.Fatalf("strata %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestProduceAndConsume(t *testing.T) {
	mustStrata(t, "", "topic", "create", "cli1", "--partitions", "1", "--config", "fsync=never")
	out := mustStrata(t, "a:one\nb:two\nc:three\nd:four\n", "produce", "cli1", "--key-delim", ":", "-H", "h=1", "-v")
	if want := "cli1/0@0\ncli1/0@1\ncli1/0@2\ncli1/0@3\n"; out != want {
		t.Fatalf("produce -v: got %q, want %q", out, want)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"default format", []string{"--from", "earliest"}, "one\ntwo\nthree\nfour\n"},
		{"offset", []string{"--from", "2"}, "three\nfour\n"},
		{"relative", []string{"--from", "-1"}, "four\n"},
		{"latest without follow", []string{"--from", "latest"}, ""},
		{"time", []string{"--from", time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}, "one\ntwo\nthree\nfour\n"},
		{"count", []string{"-n", "2"}, "one\ntwo\n"},
		{"format", []string{"--format", `%p:%o %k=%s [%h]\n`}, "0:0 a=one [h=1]\n0:1 b=two [h=1]\n0:2 c=three [h=1]\n0:3 d=four [h=1]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustStrata(t, "", append([]string{"consume", "cli1"}, tc.args...)...)
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		got := mustStrata(t, "", "consume", "cli1", "--json", "-n", "1")
		if !strings.Contains(got, `"key":"a"`) || !strings.Contains(got, `"value":"one"`) || !strings.Contains(got, `"offset":0`) {
			t.Fatalf("json: %q", got)
		}
	})
}

func TestFollowSeesNewRecords(t *testing.T) {
	mustStrata(t, "", "topic", "create", "cli2")
	cmd := exec.Command(strataBin, "--brokers", brokerAddr, "--insecure", "--timeout", "30s", "consume", "cli2", "--from", "latest", "--follow", "-n", "2")
	// Never the user's contexts: the test must not depend on what `make up`
	// or `make dev` left there.
	cmd.Env = append(os.Environ(), "STRATA_CONTEXT_FILE="+filepath.Join(t.TempDir(), "ctx.json"), "STRATA_CONTEXT=")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Produce until the follower (which starts at "latest") has seen two
	// records; it exits by itself after -n 2.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for i := 0; ; i++ {
		mustStrata(t, fmt.Sprintf("r%d\n", i), "produce", "cli2")
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if len(lines) != 2 || !strings.HasPrefix(lines[0], "r") {
				t.Fatalf("follow output %q", out.String())
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i > 100 {
			t.Fatal("follower did not finish")
		}
	}
}

func TestTopicAndClusterCommands(t *testing.T) {
	mustStrata(t, "", "topic", "create", "cli3", "--partitions", "3", "--config", "retention.ms=1h", "--config", "retention.bytes=-1")
	if out := mustStrata(t, "", "topic", "list"); !strings.Contains(out, "cli3") || !strings.Contains(out, "NAME") {
		t.Fatalf("topic list: %q", out)
	}
	out := mustStrata(t, "", "topic", "describe", "cli3")
	for _, want := range []string{"PARTITION", "LEADER", "ISR", "LOG-START", "HW", "retention.ms", "3600000",
		"retention.bytes          unlimited"} {
		if !strings.Contains(out, want) {
			t.Fatalf("describe lacks %q:\n%s", want, out)
		}
	}
	if out := mustStrata(t, "", "cluster", "info"); !strings.Contains(out, brokerAddr) || !strings.Contains(out, "RAFT-ROLE") {
		t.Fatalf("cluster info: %q", out)
	}
	if out := mustStrata(t, "", "--json", "cluster", "info"); !strings.Contains(out, `"brokers"`) {
		t.Fatalf("cluster info --json: %q", out)
	}
	_, errs, code := strata(t, "", "consume", "no-such-topic")
	if code != 1 || errs != "strata: topic \"no-such-topic\" not found\n" {
		t.Fatalf("missing topic: exit %d, stderr %q", code, errs)
	}
	for _, flag := range []string{"--partitions", "--replication-factor"} {
		_, errs, code = strata(t, "", "topic", "create", "cli-zero", flag, "0")
		if code != 2 || !strings.Contains(errs, "must be at least 1") {
			t.Fatalf("%s 0: exit %d, stderr %q", flag, code, errs)
		}
	}
	_, errs, code = strata(t, "", "topic", "describe")
	if code != 2 || !strings.HasPrefix(errs, "strata: ") {
		t.Fatalf("usage error: exit %d, stderr %q", code, errs)
	}
	mustStrata(t, "", "topic", "delete", "cli3")
}

func TestBenchProduceAndConsume(t *testing.T) {
	out := mustStrata(t, "", "bench", "produce", "--topic", "clibench", "--create", "--fsync", "never", "--records", "2000", "--size", "100", "--json")
	if !strings.Contains(out, `"records": 2000`) || !strings.Contains(out, `"p99"`) {
		t.Fatalf("bench produce: %s", out)
	}
	out = mustStrata(t, "", "bench", "consume", "--topic", "clibench")
	if !strings.Contains(out, "2000 records") {
		t.Fatalf("bench consume: %s", out)
	}
}

// TestBenchWarmup: warmup records are produced (the topic holds them) but
// not counted in the summary.
func TestBenchWarmup(t *testing.T) {
	out := mustStrata(t, "", "bench", "produce", "--topic", "cliwarm", "--create", "--fsync", "never", "--records", "1000",
		"--warmup-records", "500", "--size", "100", "--json")
	if !strings.Contains(out, `"records": 1000,`) || !strings.Contains(out, `"warmup_records": 500`) {
		t.Fatalf("bench produce: %s", out)
	}
	out = mustStrata(t, "", "bench", "consume", "--topic", "cliwarm")
	if !strings.Contains(out, "1500 records") {
		t.Fatalf("bench consume: %s", out)
	}
}
