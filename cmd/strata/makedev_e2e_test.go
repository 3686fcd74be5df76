package main

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMakeDevStopsOnSIGTERM: `make dev` stopped by SIGTERM to make's own
// PID stops the broker and admin it started. Make passes SIGTERM on to the
// recipe's shell, which ran the broker in the foreground and so did not
// run its trap: make waited on, and the broker and admin kept 9092 and
// 9443.
func TestMakeDevStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make dev")
	}
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("no make")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	broker, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(mk, "-C", root, "--no-print-directory", "dev",
		// The binaries TestMain built; GO=true makes the recipe's go
		// build lines no-ops.
		"BIN="+filepath.Dir(strataBin), "GO=true",
		"DEV_DIR="+dir, "DEV_BROKER="+broker, "DEV_ADMIN="+admin, "DEV_METRICS=")
	for _, kv := range os.Environ() {
		// Not a sub-make of whatever make runs these tests.
		if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "STRATA_CONTEXT_FILE="+filepath.Join(dir, "contexts.json"))
	// make, its shell, the broker and admin in a group of their own, so
	// that the test can tell when every one of them is gone.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err == nil {
			t.Log("killed what make dev left running")
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("make did not exit after SIGKILL")
		}
	})

	for _, addr := range []string{broker, admin} {
		within(t, 60*time.Second, "make dev listening on "+addr, func() error {
			select {
			case err := <-done:
				done <- err
				t.Fatalf("make dev exited: %v\n%s", err, &out)
			default:
			}
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err != nil {
				return err
			}
			return c.Close()
		})
	}

	if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("make exited with %v, want the SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("make did not exit within 20s of SIGTERM\n%s", &out)
	}
	within(t, 10*time.Second, "every process make dev started gone", func() error {
		if err := syscall.Kill(-pgid, 0); !errors.Is(err, syscall.ESRCH) {
			return errors.New("a process of make dev's group is still running")
		}
		return nil
	})
	for _, addr := range []string{broker, admin} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections", addr)
		}
	}
}
