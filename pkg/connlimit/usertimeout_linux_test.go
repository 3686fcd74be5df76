package connlimit

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTCPUserTimeout: an admitted connection carries the TCP_USER_TIMEOUT
// gRPC would have set on an unwrapped one.
func TestTCPUserTimeout(t *testing.T) {
	a := startAcceptor(t, Options{TCPUserTimeout: 20 * time.Second})
	dialFrom(t, a.ln.Addr().String(), "127.0.0.1")
	c := a.next(t).(*conn)
	raw, err := c.Conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := raw.Control(func(fd uintptr) {
		got, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	if got != 20000 {
		t.Fatalf("TCP_USER_TIMEOUT = %d ms, want 20000", got)
	}
}
