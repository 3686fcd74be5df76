package consensus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Errors of the TLS stream layer.
var (
	ErrUnknownPeer   = errors.New("consensus: no node id known for raft address")
	ErrPeerIdentity  = errors.New("consensus: peer certificate identity mismatch")
	ErrNoCertificate = errors.New("consensus: peer presented no certificate")
)

// PeerResolver maps a Raft address to the node id expected to serve it.
type PeerResolver func(addr raft.ServerAddress) (nodeID int32, ok bool)

// PeerCN is the certificate common name of replicator id.
func PeerCN(id int32) string { return "replicator-" + strconv.Itoa(int(id)) }

// PeerKnown reports whether node id is a member of the cluster (in Serf or
// in the Raft configuration).
type PeerKnown func(id int32) bool

// StreamLayer is a raft.StreamLayer over mutual TLS. Accepted peers must
// present a certificate for replicator-<id> of a known member; a dialled
// peer must present exactly replicator-<id> for the id the resolver gives
// for the dialled address.
type StreamLayer struct {
	ln        net.Listener
	advertise net.Addr
	server    *tls.Config
	client    *tls.Config
	resolve   PeerResolver
	// handshakeTimeout bounds an accepted connection's TLS handshake.
	handshakeTimeout time.Duration
}

// HandshakeTimeout bounds the TLS handshake of an accepted peer
// connection: Raft reads its connections without deadlines, so without it
// a connection that never sends a byte would be held for good. A
// handshake between nodes takes a few round trips.
const HandshakeTimeout = 10 * time.Second

var _ raft.StreamLayer = (*StreamLayer)(nil)

// NewStreamLayer wraps ln (a plain TCP listener). server must hold this
// node's certificate and the CAs for client certs; client must hold this
// node's certificate and the root CAs. advertise may be nil (ln's address).
// known may be nil: then any replicator certificate is accepted.
func NewStreamLayer(ln net.Listener, advertise net.Addr, server, client *tls.Config, resolve PeerResolver, known PeerKnown) *StreamLayer {
	if advertise == nil {
		advertise = ln.Addr()
	}
	srv := server.Clone()
	srv.ClientAuth = tls.RequireAndVerifyClientCert
	srv.VerifyConnection = chainVerify(server.VerifyConnection, func(cs tls.ConnectionState) error {
		cn, err := peerCN(cs)
		if err != nil {
			return err
		}
		idStr, ok := strings.CutPrefix(cn, "replicator-")
		id, err := strconv.ParseInt(idStr, 10, 32)
		if !ok || err != nil || id <= 0 {
			return fmt.Errorf("%w: %q is not a replicator", ErrPeerIdentity, cn)
		}
		if known != nil && !known(int32(id)) {
			return fmt.Errorf("%w: %q is not a member of this cluster", ErrPeerIdentity, cn)
		}
		return nil
	})
	return &StreamLayer{ln: ln, advertise: advertise, server: srv, client: client, resolve: resolve, handshakeTimeout: HandshakeTimeout}
}

func chainVerify(first, second func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	if first == nil {
		return second
	}
	return func(cs tls.ConnectionState) error {
		if err := first(cs); err != nil {
			return err
		}
		return second(cs)
	}
}

func peerCN(cs tls.ConnectionState) (string, error) {
	var leaf *x509.Certificate
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		leaf = cs.VerifiedChains[0][0]
	} else if len(cs.PeerCertificates) > 0 {
		leaf = cs.PeerCertificates[0]
	}
	if leaf == nil {
		return "", ErrNoCertificate
	}
	return leaf.Subject.CommonName, nil
}

// Accept waits for a peer connection. The TLS handshake (and the identity
// check) runs on the connection's first read or write, and must finish
// within HandshakeTimeout of the accept.
func (s *StreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(s.handshakeTimeout)); err != nil {
		return nil, errors.Join(fmt.Errorf("consensus: handshake deadline: %w", err), c.Close())
	}
	return &handshakeConn{Conn: tls.Server(c, s.server)}, nil
}

// handshakeConn is an accepted connection under its handshake deadline:
// the first read or write finishes the handshake, then clears the
// deadline, unless the caller set deadlines of its own meanwhile.
type handshakeConn struct {
	*tls.Conn
	mu        sync.Mutex
	done      bool // the handshake finished and the deadline was handled
	callerSet bool // the caller set a deadline before that
}

func (c *handshakeConn) handshake() error {
	if err := c.Conn.Handshake(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return nil
	}
	c.done = true
	if c.callerSet {
		return nil
	}
	return c.Conn.SetDeadline(time.Time{})
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *handshakeConn) SetDeadline(t time.Time) error {
	c.callerSets()
	return c.Conn.SetDeadline(t)
}

func (c *handshakeConn) SetReadDeadline(t time.Time) error {
	c.callerSets()
	return c.Conn.SetReadDeadline(t)
}

func (c *handshakeConn) SetWriteDeadline(t time.Time) error {
	c.callerSets()
	return c.Conn.SetWriteDeadline(t)
}

func (c *handshakeConn) callerSets() {
	c.mu.Lock()
	c.callerSet = true
	c.mu.Unlock()
}

// Close closes the listener.
func (s *StreamLayer) Close() error { return s.ln.Close() }

// Addr is the advertised address.
func (s *StreamLayer) Addr() net.Addr { return s.advertise }

// Dial connects to the Raft peer at address and completes the handshake,
// checking that the peer is the replicator the resolver names.
func (s *StreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	id, ok := s.resolve(address)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownPeer, address)
	}
	host, _, err := net.SplitHostPort(string(address))
	if err != nil {
		return nil, fmt.Errorf("consensus: raft address %q: %w", address, err)
	}
	cfg := s.client.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	want := PeerCN(id)
	cfg.VerifyConnection = chainVerify(s.client.VerifyConnection, func(cs tls.ConnectionState) error {
		cn, err := peerCN(cs)
		if err != nil {
			return err
		}
		if cn != want {
			return fmt.Errorf("%w: dialled %s expecting %q, peer is %q", ErrPeerIdentity, address, want, cn)
		}
		return nil
	})
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: cfg}
	return d.DialContext(ctx, "tcp", string(address))
}
