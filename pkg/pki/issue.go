package pki

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"time"

	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/signer"
	"go.uber.org/zap"
)

// IssueRequest asks the CA for a new key pair and certificate.
type IssueRequest struct {
	// CommonName is the identity. Required.
	CommonName string
	// Profile is server, client or peer.
	Profile Profile
	// DNSNames are DNS SANs. Server and peer only.
	DNSNames []string
	// IPs are IP SANs. Server and peer only.
	IPs []net.IP
	// Validity is the lifetime from NotBefore. Zero means the profile's
	// maximum; more than the maximum is refused with ErrValidityTooLong.
	Validity time.Duration
	// NotBefore overrides the start of validity. Zero means now minus five
	// minutes (clock-skew allowance). Tests use it to make certificates that
	// are expired or not yet valid.
	NotBefore time.Time
}

// KeyPair is an issued certificate with its private key.
type KeyPair struct {
	// CertPEM is the leaf certificate in PEM.
	CertPEM []byte
	// KeyPEM is the ECDSA P-256 private key in PEM.
	KeyPEM []byte
	// Cert is the parsed leaf certificate.
	Cert *x509.Certificate
}

// CSRSignRequest asks the CA to sign a certificate signing request.
type CSRSignRequest struct {
	// CSRPEM is the PEM "CERTIFICATE REQUEST". Its subject CN is the
	// identity and must not be empty.
	CSRPEM []byte
	// Profile is server, client or peer.
	Profile Profile
	// DNSNames and IPs, when either is set, replace the CSR's SANs (server
	// and peer only; the client profile never carries SANs).
	DNSNames []string
	IPs      []net.IP
	// Validity and NotBefore work as in IssueRequest, with the same cap.
	Validity  time.Duration
	NotBefore time.Time
}

// Issue generates an ECDSA P-256 key and signs a certificate for it under
// req.Profile.
func (ca *CA) Issue(req IssueRequest) (*KeyPair, error) {
	if req.CommonName == "" {
		return nil, fmt.Errorf("issue: %w", ErrEmptyCommonName)
	}
	hosts, err := requestHosts(req.Profile, req.DNSNames, req.IPs)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	if req.Profile.hasSANs() && len(hosts) == 0 {
		return nil, fmt.Errorf("issue %q: %w", req.CommonName, ErrNoHosts)
	}
	csrPEM, keyPEM, err := csr.ParseRequest(&csr.CertificateRequest{
		CN:         req.CommonName,
		Hosts:      hosts,
		KeyRequest: &csr.KeyRequest{A: "ecdsa", S: 256},
	})
	if err != nil {
		return nil, fmt.Errorf("issue %q: generate key: %w", req.CommonName, err)
	}
	certPEM, err := ca.sign(req.CommonName, req.Profile, csrPEM, hosts, req.Validity, req.NotBefore)
	if err != nil {
		return nil, fmt.Errorf("issue %q: %w", req.CommonName, err)
	}
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("issue %q: parse issued certificate: %w", req.CommonName, err)
	}
	return &KeyPair{CertPEM: certPEM, KeyPEM: keyPEM, Cert: cert}, nil
}

// SignCSR signs a posted CSR under req.Profile and returns the certificate
// in PEM. The CSR's signature is checked; only its subject, public key and
// (for server and peer) SANs are used: no extension of the CSR reaches the
// certificate.
func (ca *CA) SignCSR(req CSRSignRequest) ([]byte, error) {
	block, _ := pem.Decode(req.CSRPEM)
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("sign CSR: %w: no CERTIFICATE REQUEST block", ErrBadPEM)
	}
	parsed, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sign CSR: %w: %w", ErrBadPEM, err)
	}
	if err := parsed.CheckSignature(); err != nil {
		return nil, fmt.Errorf("sign CSR: bad signature: %w", err)
	}
	cn := parsed.Subject.CommonName
	if cn == "" {
		return nil, fmt.Errorf("sign CSR: %w", ErrEmptyCommonName)
	}
	hosts, err := requestHosts(req.Profile, req.DNSNames, req.IPs)
	if err != nil {
		return nil, fmt.Errorf("sign CSR %q: %w", cn, err)
	}
	if req.Profile.hasSANs() && len(hosts) == 0 && len(parsed.DNSNames)+len(parsed.IPAddresses) == 0 {
		return nil, fmt.Errorf("sign CSR %q: %w", cn, ErrNoHosts)
	}
	certPEM, err := ca.sign(cn, req.Profile, req.CSRPEM, hosts, req.Validity, req.NotBefore)
	if err != nil {
		return nil, fmt.Errorf("sign CSR %q: %w", cn, err)
	}
	return certPEM, nil
}

// NewCSR generates an ECDSA P-256 key and a CSR for it, for callers that keep
// their key to themselves and post only the CSR.
func NewCSR(commonName string, dnsNames []string, ips []net.IP) (csrPEM, keyPEM []byte, err error) {
	if commonName == "" {
		return nil, nil, fmt.Errorf("new CSR: %w", ErrEmptyCommonName)
	}
	quietCFSSL()
	csrPEM, keyPEM, err = csr.ParseRequest(&csr.CertificateRequest{
		CN:         commonName,
		Hosts:      joinHosts(dnsNames, ips),
		KeyRequest: &csr.KeyRequest{A: "ecdsa", S: 256},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("new CSR %q: %w", commonName, err)
	}
	return csrPEM, keyPEM, nil
}

// sign runs the cfssl local signer with the validity window checked against
// the profile's cap.
func (ca *CA) sign(cn string, p Profile, csrPEM []byte, hosts []string, validity time.Duration, notBefore time.Time) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if validity < 0 {
		return nil, fmt.Errorf("%w: negative validity %s", ErrValidityTooLong, validity)
	}
	if validity == 0 {
		validity = p.MaxValidity()
	}
	if validity > p.MaxValidity() {
		return nil, fmt.Errorf("%w: %s > %s for profile %s", ErrValidityTooLong, validity, p.MaxValidity(), p)
	}
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-backdate)
	}
	notBefore = notBefore.UTC().Truncate(time.Second)
	certPEM, err := ca.signer.Sign(signer.SignRequest{
		Hosts:     hosts,
		Request:   string(csrPEM),
		Profile:   string(p),
		NotBefore: notBefore,
		NotAfter:  notBefore.Add(validity),
	})
	if err != nil {
		return nil, fmt.Errorf("cfssl sign: %w", err)
	}
	ca.lg.Info("certificate issued",
		zap.String("cn", cn),
		zap.String("profile", string(p)),
		zap.Strings("hosts", hosts),
		zap.Time("not_before", notBefore),
		zap.Time("not_after", notBefore.Add(validity)))
	return certPEM, nil
}

// requestHosts validates the profile and joins SANs into cfssl's host list.
// A nil result means "keep the CSR's SANs" to cfssl.
func requestHosts(p Profile, dnsNames []string, ips []net.IP) ([]string, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	hosts := joinHosts(dnsNames, ips)
	if !p.hasSANs() && len(hosts) > 0 {
		return nil, ErrHostsNotAllowed
	}
	return hosts, nil
}

func joinHosts(dnsNames []string, ips []net.IP) []string {
	var hosts []string
	for _, n := range dnsNames {
		if n != "" {
			hosts = append(hosts, n)
		}
	}
	for _, ip := range ips {
		if ip != nil {
			hosts = append(hosts, ip.String())
		}
	}
	return hosts
}
