package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

func TestIdentityFromPeer(t *testing.T) {
	ca := newTestCA(t, "ca")
	kp := issue(t, ca, IssueRequest{CommonName: "alice", Profile: ProfileClient})
	verified := tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{kp.Cert, ca.Certificate()}}}
	unverified := tls.ConnectionState{PeerCertificates: []*x509.Certificate{kp.Cert}}

	ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: verified}})
	if id, err := IdentityFromPeer(ctx); err != nil || id != "alice" {
		t.Fatalf("IdentityFromPeer = %q, %v", id, err)
	}
	for name, ctx := range map[string]context.Context{
		"no peer":              context.Background(),
		"peer without auth":    peer.NewContext(context.Background(), &peer.Peer{}),
		"unverified peer cert": peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: unverified}}),
	} {
		if _, err := IdentityFromPeer(ctx); !errors.Is(err, ErrNoVerifiedCert) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
