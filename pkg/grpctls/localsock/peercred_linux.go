package localsock

import (
	"fmt"
	"net"
	"syscall"
)

const supported = true

// peerOf reads the peer's credentials (SO_PEERCRED) of a Unix socket.
func peerOf(conn net.Conn) (Peer, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return Peer{}, fmt.Errorf("localsock: %T is not a socket", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("localsock: %w", err)
	}
	var (
		cred *syscall.Ucred
		gerr error
	)
	if err := rc.Control(func(fd uintptr) {
		cred, gerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("localsock: %w", err)
	}
	if gerr != nil {
		return Peer{}, fmt.Errorf("localsock: reading the peer's credentials (SO_PEERCRED): %w", gerr)
	}
	return Peer{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}
