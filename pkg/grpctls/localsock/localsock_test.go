package localsock

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func sockPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ls") // t.TempDir's path can pass MaxPathLen
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "broker.sock")
}

func TestListenModeAndRemoveOnClose(t *testing.T) {
	path := sockPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %s, want a socket with 0600", fi.Mode())
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Close: %v, want the socket removed", err)
	}
}

// TestListenReplacesStaleSocket: a socket left by a crashed broker (no
// one listening) is replaced at start.
func TestListenReplacesStaleSocket(t *testing.T) {
	path := sockPath(t)
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false) // as a crash leaves it
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket: %v", err)
	}
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
}

// TestListenRefusesALiveSocket: a socket some process still listens on
// (another broker configured with the same path) is not taken over.
func TestListenRefusesALiveSocket(t *testing.T) {
	path := sockPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept the probe
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("Listen on a live socket: %v, want a refusal", err)
	}
}

// TestListenRefusesAFile: a file that is not a socket is never removed.
func TestListenRefusesAFile(t *testing.T) {
	path := sockPath(t)
	if err := os.WriteFile(path, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen on a regular file: %v, want a refusal", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("the file after the refusal: %q, %v", b, err)
	}
}

func TestListenRefusesASharedDirectory(t *testing.T) {
	path := sockPath(t)
	if err := os.Chmod(filepath.Dir(path), 0o770); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "writable by its group or others") {
		t.Fatalf("Listen in a group-writable directory: %v, want a refusal", err)
	}
	if _, err := Listen(filepath.Join(filepath.Dir(path), "missing", "b.sock")); err == nil {
		t.Fatal("Listen in a missing directory: want an error")
	}
	if _, err := Listen("/" + strings.Repeat("x", MaxPathLen) + ".sock"); err == nil {
		t.Fatal("Listen on a path past MaxPathLen: want an error")
	}
}

func TestCheckPeerReadsTheKernelsCredentials(t *testing.T) {
	path := sockPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	defer s.Close()
	uid := uint32(os.Getuid())
	p, err := CheckPeer(s, uid)
	if err != nil || p.UID != uid || p.PID != int32(os.Getpid()) {
		t.Fatalf("CheckPeer(own uid) = %+v, %v; want uid %d pid %d", p, err, uid, os.Getpid())
	}
	if _, err := CheckPeer(s, uid+1); !errors.Is(err, ErrWrongPeer) {
		t.Fatalf("CheckPeer(another uid) = %v, want ErrWrongPeer", err)
	}
	if _, err := CheckPeer(c, uid); err != nil { // the client's view of the server
		t.Fatalf("client side CheckPeer: %v", err)
	}
}

// serve runs a gRPC health server on a new socket, admitting uid.
func serve(t *testing.T, uid uint32) (path string, refused func() []error) {
	t.Helper()
	path = sockPath(t)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []error
	srv := grpc.NewServer(grpc.Creds(Credentials(uid, func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	})))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln) //nolint:errcheck // stopped below
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return path, func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), errs...)
	}
}

func check(t *testing.T, path string, uid uint32) error {
	t.Helper()
	conn, err := grpc.NewClient(Target(path), grpc.WithTransportCredentials(Credentials(uid, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

// TestServesTheRightUIDAndRefusesAnother: a server admitting this
// process's uid answers it; one admitting another uid refuses this
// process at the handshake, before any call (what a process of another
// user meets, without needing one to test).
func TestServesTheRightUIDAndRefusesAnother(t *testing.T) {
	own := uint32(os.Getuid())
	path, refused := serve(t, own)
	if err := check(t, path, own); err != nil {
		t.Fatalf("own uid: %v", err)
	}
	if errs := refused(); len(errs) != 0 {
		t.Fatalf("own uid refused: %v", errs)
	}

	path, refused = serve(t, own+1)
	if err := check(t, path, own); err == nil {
		t.Fatal("a peer of another uid was served")
	}
	errs := refused()
	if len(errs) == 0 || !errors.Is(errs[0], ErrWrongPeer) {
		t.Fatalf("refusals %v, want ErrWrongPeer", errs)
	}
}

// TestClientRefusesAServerOfAnotherUID: the replicator's side checks the
// broker's uid as well (a socket some other user put in place).
func TestClientRefusesAServerOfAnotherUID(t *testing.T) {
	own := uint32(os.Getuid())
	path, _ := serve(t, own)
	if err := check(t, path, own+1); err == nil {
		t.Fatal("the client accepted a server of another uid")
	}
}

func TestParseUID(t *testing.T) {
	own := uint32(os.Getuid())
	for _, s := range []string{"", "-1"} {
		if v, err := ParseUID(s); err != nil || v != own {
			t.Errorf("ParseUID(%q) = %d, %v; want own uid %d", s, v, err, own)
		}
	}
	if v, err := ParseUID("65532"); err != nil || v != 65532 {
		t.Errorf("ParseUID(65532) = %d, %v", v, err)
	}
	for _, s := range []string{"x", "-2", "4294967296"} {
		if _, err := ParseUID(s); err == nil {
			t.Errorf("ParseUID(%q): want an error", s)
		}
	}
}
