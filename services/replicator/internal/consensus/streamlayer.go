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
}

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
	return &StreamLayer{ln: ln, advertise: advertise, server: srv, client: client, resolve: resolve}
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
// check) runs on the connection's first read or write.
func (s *StreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, s.server), nil
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
