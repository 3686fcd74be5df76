package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
)

// ServerConfig returns a TLS config for a listener: TLS 1.3 minimum, the
// current certificate, and client certificates required and verified against
// the current CA pool (tls.RequireAndVerifyClientCert, which also demands
// the clientAuth extended key usage, so a server-only certificate cannot be
// used as a client). Each handshake gets a config built from the material in
// force (GetConfigForClient), so reloads apply to new connections only.
//
// ALPN offers h2 and http/1.1 (whichever the client asks for first in that
// order); this suits both gRPC and net/http servers. Session tickets are
// disabled, so every connection verifies the client certificate afresh
// against the CA in force.
func (r *Reloader) ServerConfig() *tls.Config {
	build := func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := r.current()
		return &tls.Config{
			MinVersion:             tls.VersionTLS13,
			Certificates:           []tls.Certificate{*m.cert},
			ClientAuth:             tls.RequireAndVerifyClientCert,
			ClientCAs:              m.pool,
			NextProtos:             []string{"h2", "http/1.1"},
			SessionTicketsDisabled: true,
		}, nil
	}
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		ClientAuth:             tls.RequireAndVerifyClientCert,
		GetConfigForClient:     build,
		SessionTicketsDisabled: true,
	}
}

// ClientConfig returns a TLS config for dialling serverName: TLS 1.3
// minimum, the current certificate presented on request, and the server's
// certificate verified against the current CA pool, for serverName (a DNS
// SAN or IP SAN), with the serverAuth extended key usage (so a client-only
// certificate cannot serve).
//
// Because the CA pool reloads, verification is done in VerifyConnection
// rather than by crypto/tls's fixed RootCAs; InsecureSkipVerify is set only
// to hand verification to that callback, which checks the full chain, the
// name, the validity period and the key usage. serverName is required
// (gRPC's authority is not consulted).
func (r *Reloader) ClientConfig(serverName string) (*tls.Config, error) {
	if serverName == "" {
		return nil, ErrNoServerName
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: serverName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return r.current().cert, nil
		},
		InsecureSkipVerify: true, // verified by VerifyConnection against the reloadable pool
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(cs, serverName, r.current().pool)
		},
	}, nil
}

// verifyServer does what crypto/tls does for a client with RootCAs set.
func verifyServer(cs tls.ConnectionState, serverName string, roots *x509.CertPool) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("verify server %s: %w", serverName, ErrNoVerifiedCert)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		DNSName:       serverName,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return fmt.Errorf("verify server %s: %w", serverName, err)
	}
	return nil
}
