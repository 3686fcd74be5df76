// Package localsock is the local channel between a broker and its own
// replicator when the two run side by side on one host (one compose node,
// one Kubernetes pod): gRPC over a Unix domain socket, in plain text, with
// no TLS. Skipping TLS, its handshake, its encryption and its record
// framing on the hottest local path (every replicated byte a follower
// writes) is the point of the channel; everywhere else, and on TCP always,
// Strata speaks mutual TLS.
//
// Without a certificate, the identity on this channel is the peer's Unix
// user id, as the kernel reports it for the connected socket (SO_PEERCRED,
// read when the connection is made and not forgeable by the peer): both
// ends refuse a peer whose uid is not the one configured, by default
// their own, the broker and its replicator running as one user, which no
// other service on the host runs as. Three layers keep everyone else out:
//
//   - the socket lives in a directory only the pair shares (Listen
//     refuses a directory that its group or others may write, so nobody
//     else can remove the socket or put their own in its place);
//   - the socket file is mode 0600: only its owner's processes (and root)
//     may connect;
//   - each accepted or dialled connection's peer uid is checked.
//
// Root passes the first two by definition, and could read a TLS key on
// the same host as well; against root on the host, neither channel
// protects more than the other.
//
// This works on Linux only (SO_PEERCRED): elsewhere Listen and the
// handshakes fail with ErrUnsupported.
package localsock

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ErrUnsupported: no peer credentials on this platform.
var ErrUnsupported = errors.New("localsock: peer credentials (SO_PEERCRED) are supported on Linux only")

// ErrWrongPeer is a peer whose uid is not the one allowed.
var ErrWrongPeer = errors.New("localsock: peer refused")

// MaxPathLen is the longest socket path Linux accepts (sun_path holds 108
// bytes with the terminating NUL).
const MaxPathLen = 107

// AuthType is Peer's AuthType.
const AuthType = "peercred"

// Peer is the AuthInfo of a connection made over the socket: the peer
// process's credentials as the kernel recorded them when it connected
// (or, for a client, when the server called listen).
type Peer struct {
	credentials.CommonAuthInfo
	UID, GID uint32
	PID      int32
}

// AuthType is "peercred".
func (Peer) AuthType() string { return AuthType }

// PeerFromContext returns the Peer of a call that arrived over the
// socket; false for any other transport.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}, false
	}
	pc, ok := p.AuthInfo.(Peer)
	return pc, ok
}

// CheckPeer reads the peer credentials of conn (a Unix domain socket) and
// refuses (ErrWrongPeer) a peer whose uid is not uid.
func CheckPeer(conn net.Conn, uid uint32) (Peer, error) {
	p, err := peerOf(conn)
	if err != nil {
		return Peer{}, err
	}
	p.SecurityLevel = credentials.NoSecurity // plain text: the kernel vouches for the peer, nothing more
	if p.UID != uid {
		return p, fmt.Errorf("%w: uid %d (pid %d), only uid %d may connect", ErrWrongPeer, p.UID, p.PID, uid)
	}
	return p, nil
}

// Credentials are the transport credentials of either end of the socket:
// the handshake checks the peer's uid (CheckPeer) and adds no security
// layer; the connection stays plain. refused, when set, is told every
// peer refused on the server side (gRPC only logs a failed handshake at
// its own verbosity).
func Credentials(uid uint32, refused func(error)) credentials.TransportCredentials {
	return &creds{uid: uid, refused: refused}
}

type creds struct {
	uid     uint32
	refused func(error)
}

func (c *creds) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	p, err := CheckPeer(conn, c.uid)
	if err != nil {
		return nil, nil, err
	}
	return conn, p, nil
}

func (c *creds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	p, err := CheckPeer(conn, c.uid)
	if err != nil {
		if c.refused != nil {
			c.refused(err)
		}
		return nil, nil, err
	}
	return conn, p, nil
}

func (c *creds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: AuthType}
}

func (c *creds) Clone() credentials.TransportCredentials { cc := *c; return &cc }

func (c *creds) OverrideServerName(string) error { return nil }

// Listen binds a Unix domain socket at path, mode 0600, for a server.
// The directory must exist (in containers: a volume the pair shares) and
// be writable by its owner only. A socket already at path is a previous
// run's, left by a crash (a clean stop removes it): it is replaced, unless
// a process still accepts connections on it. Anything else at path is
// refused, never removed. Closing the listener removes the socket.
func Listen(path string) (*net.UnixListener, error) {
	if err := checkPath(path); err != nil {
		return nil, err
	}
	switch fi, err := os.Lstat(path); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("localsock: %w", err)
	case fi.Mode().Type() != fs.ModeSocket:
		return nil, fmt.Errorf("localsock: %s exists and is not a socket (%s); not replacing it", path, fi.Mode().Type())
	default:
		if inUse(path) {
			return nil, fmt.Errorf("localsock: %s: another process is listening on it", path)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("localsock: removing the stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("localsock: %w", err)
	}
	// Between bind and chmod the socket has the umask's mode; a peer that
	// connects meanwhile still meets the uid check.
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("localsock: %w", err), ln.Close())
	}
	return ln, nil
}

// checkPath checks the socket path and its directory.
func checkPath(path string) error {
	if !supported {
		return ErrUnsupported
	}
	if path == "" || len(path) > MaxPathLen {
		return fmt.Errorf("localsock: socket path %q: must be 1 to %d bytes long", path, MaxPathLen)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("localsock: socket directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("localsock: socket directory %s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("localsock: socket directory %s is writable by its group or others (mode %#o): "+
			"use a directory only the broker and its replicator share (e.g. mode 0700)", dir, perm)
	}
	return nil
}

// inUse reports whether a process accepts connections on the socket.
func inUse(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return false // ECONNREFUSED: nobody listens; a stale socket
	}
	_ = c.Close()
	return true
}

// Target is the gRPC target of the socket at path.
func Target(path string) string { return "unix://" + path }

// ParseUID parses a uid flag value: "" or "-1" is the process's own uid.
func ParseUID(s string) (uint32, error) {
	if s == "" || s == "-1" {
		return uint32(os.Getuid()), nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("not a uid: %q", s)
	}
	return uint32(v), nil
}
