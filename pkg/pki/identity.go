package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Identity returns the subject CN of the verified peer certificate of a
// connection, as seen by the side that verified it (a server with
// RequireAndVerifyClientCert). It uses only VerifiedChains, never the
// unverified PeerCertificates.
func Identity(cs tls.ConnectionState) (string, error) {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", ErrNoVerifiedCert
	}
	cn := cs.VerifiedChains[0][0].Subject.CommonName
	if cn == "" {
		return "", fmt.Errorf("%w: empty common name", ErrNoVerifiedCert)
	}
	return cn, nil
}

// IdentityFromPeer returns the verified identity of a gRPC call's peer:
// peer.FromContext → credentials.TLSInfo → Identity. Request metadata is
// never consulted.
func IdentityFromPeer(ctx context.Context) (string, error) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return "", fmt.Errorf("%w: no peer info", ErrNoVerifiedCert)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return "", fmt.Errorf("%w: peer auth is %s, not tls", ErrNoVerifiedCert, p.AuthInfo.AuthType())
	}
	return Identity(info.State)
}

// CheckExtKeyUsage returns ErrWrongKeyUsage unless cert carries usage (or
// the any usage). Go's verifier already enforces this when configured as
// ServerConfig and ClientConfig do; this is for callers that inspect
// certificates themselves (e.g. admin before accepting an uploaded one).
func CheckExtKeyUsage(cert *x509.Certificate, usage x509.ExtKeyUsage) error {
	if slices.Contains(cert.ExtKeyUsage, usage) || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrWrongKeyUsage, cert.Subject.CommonName)
}
