package pki

import "errors"

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrUnknownProfile is returned for a profile name other than server,
	// client or peer.
	ErrUnknownProfile = errors.New("pki: unknown profile")
	// ErrValidityTooLong is returned when a requested validity exceeds the
	// profile's maximum.
	ErrValidityTooLong = errors.New("pki: requested validity exceeds profile maximum")
	// ErrEmptyCommonName is returned when a request or CSR has no subject CN.
	ErrEmptyCommonName = errors.New("pki: empty common name")
	// ErrNoHosts is returned when a server or peer certificate has no SANs.
	ErrNoHosts = errors.New("pki: server and peer certificates need at least one DNS name or IP")
	// ErrBadPEM is returned for PEM input that does not hold what it should.
	ErrBadPEM = errors.New("pki: malformed PEM")
	// ErrNotCA is returned when a loaded CA certificate is not a CA.
	ErrNotCA = errors.New("pki: certificate is not a CA")
	// ErrKeyMismatch is returned when a key does not match its certificate.
	ErrKeyMismatch = errors.New("pki: private key does not match certificate")
	// ErrNoServerName is returned by ClientConfig without a server name.
	ErrNoServerName = errors.New("pki: client TLS config needs a server name")
	// ErrNoVerifiedCert is returned when a connection carries no verified
	// peer certificate.
	ErrNoVerifiedCert = errors.New("pki: no verified peer certificate")
	// ErrWrongKeyUsage is returned when a certificate lacks the extended key
	// usage its role needs.
	ErrWrongKeyUsage = errors.New("pki: certificate lacks required extended key usage")
	// ErrInvalidOptions is returned for invalid InitCluster options.
	ErrInvalidOptions = errors.New("pki: invalid options")
)

// ErrHostsNotAllowed is returned when SANs are requested for the client
// profile, which carries none.
var ErrHostsNotAllowed = errors.New("pki: client certificates carry no DNS names or IPs")
