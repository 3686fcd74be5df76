package pki

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/cloudflare/cfssl/csr"
	"github.com/cloudflare/cfssl/helpers"
	"github.com/cloudflare/cfssl/initca"
	cflog "github.com/cloudflare/cfssl/log"
	"github.com/cloudflare/cfssl/signer"
	"github.com/cloudflare/cfssl/signer/local"
	"go.uber.org/zap"
)

// CA is a certificate authority that issues leaf certificates under the
// server, client and peer profiles. It is safe for concurrent use.
type CA struct {
	lg      *zap.Logger
	certPEM []byte
	keyPEM  []byte
	cert    *x509.Certificate
	key     crypto.Signer
	signer  *local.Signer
}

// CAOptions configures CreateCA.
type CAOptions struct {
	// CommonName is the CA certificate's subject CN. Required.
	CommonName string
	// Validity is the CA certificate's lifetime; zero means DefaultCAValidity.
	Validity time.Duration
}

// quietCFSSL lowers cfssl's package-level log level so that the library never
// writes to stderr. It writes only when the level differs, so that repeated
// constructor calls do not keep writing cfssl's global.
func quietCFSSL() {
	if cflog.Level != cflog.LevelFatal {
		cflog.Level = cflog.LevelFatal
	}
}

// CreateCA makes a new CA: an ECDSA P-256 key and a self-signed certificate.
func CreateCA(opts CAOptions, lg *zap.Logger) (*CA, error) {
	quietCFSSL()
	if opts.CommonName == "" {
		return nil, fmt.Errorf("create CA: %w", ErrEmptyCommonName)
	}
	validity := opts.Validity
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	req := &csr.CertificateRequest{
		CN:         opts.CommonName,
		KeyRequest: &csr.KeyRequest{A: "ecdsa", S: 256},
		CA:         &csr.CAConfig{Expiry: validity.String()},
	}
	certPEM, _, keyPEM, err := initca.New(req)
	if err != nil {
		return nil, fmt.Errorf("create CA %q: %w", opts.CommonName, err)
	}
	return LoadCA(certPEM, keyPEM, lg)
}

// LoadCA builds a CA from its PEM certificate and PEM private key.
func LoadCA(certPEM, keyPEM []byte, lg *zap.Logger) (*CA, error) {
	quietCFSSL()
	if lg == nil {
		lg = zap.NewNop()
	}
	cert, err := helpers.ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA certificate: %w: %w", ErrBadPEM, err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, ErrNotCA)
	}
	key, err := helpers.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load CA key: %w: %w", ErrBadPEM, err)
	}
	if !publicKeysEqual(cert.PublicKey, key.Public()) {
		return nil, fmt.Errorf("load CA %q: %w", cert.Subject.CommonName, ErrKeyMismatch)
	}
	s, err := local.NewSigner(key, cert, signer.DefaultSigAlgo(key), signingPolicy())
	if err != nil {
		return nil, fmt.Errorf("load CA %q: new signer: %w", cert.Subject.CommonName, err)
	}
	return &CA{
		lg:      lg,
		certPEM: append([]byte(nil), certPEM...),
		keyPEM:  append([]byte(nil), keyPEM...),
		cert:    cert,
		key:     key,
		signer:  s,
	}, nil
}

// LoadCAFiles reads a CA from a PEM certificate file and a PEM key file.
func LoadCAFiles(certFile, keyFile string, lg *zap.Logger) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	return LoadCA(certPEM, keyPEM, lg)
}

// Certificate returns the CA certificate. Callers must not modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns a copy of the CA certificate in PEM.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.certPEM...) }

// KeyPEM returns a copy of the CA private key in PEM. Handle with care.
func (ca *CA) KeyPEM() []byte { return append([]byte(nil), ca.keyPEM...) }

// Signer returns the CA private key, for tests that build unusual
// certificates (expired, foreign EKUs) with crypto/x509.
func (ca *CA) Signer() crypto.Signer { return ca.key }

// CertPool returns a pool holding only the CA certificate.
func (ca *CA) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if ea, ok := a.(equaler); ok {
		return ea.Equal(b)
	}
	return false
}

// encodeCertPEM encodes DER as a PEM CERTIFICATE block.
func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
