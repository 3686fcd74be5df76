package adminapi

import "time"

// CertRequest is the body of POST PathCerts: a certificate and a key
// made by admin.
type CertRequest struct {
	// Name is the identity (subject CN).
	Name string `json:"name"`
	// Profile is client (default), server or peer.
	Profile string `json:"profile,omitempty"`
	// Hosts are DNS names or IPs (server and peer only).
	Hosts []string `json:"hosts,omitempty"`
	// Validity is a Go duration ("720h"); empty means the maximum.
	Validity string `json:"validity,omitempty"`
}

// CSRRequest is the body of POST PathCertsCSR.
type CSRRequest struct {
	// CSR is a PEM CERTIFICATE REQUEST; its subject CN is the identity.
	CSR      string   `json:"csr"`
	Profile  string   `json:"profile,omitempty"`
	Hosts    []string `json:"hosts,omitempty"`
	Validity string   `json:"validity,omitempty"`
}

// CertBundle is the answer of both issuing routes, every part PEM. Key is
// set only when admin generated the key (POST PathCerts).
type CertBundle struct {
	Name     string    `json:"name"`
	Profile  string    `json:"profile"`
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"not_after"`
	Cert     string    `json:"cert"`
	Key      string    `json:"key,omitempty"`
	CA       string    `json:"ca"`
}

// CertList is the answer of GET PathCerts.
type CertList struct {
	Certificates []IssuedCert `json:"certificates"`
}

// IssuedCert is one certificate admin issued. Only public data: admin
// never keeps a private key it generated.
type IssuedCert struct {
	Name      string    `json:"name"`
	Profile   string    `json:"profile"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Hosts     []string  `json:"hosts,omitempty"`
}
