package httpapi

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/atomicfile"
	"github.com/strata-log/strata/pkg/pki"
)

// IssuedCertsDirName is the directory, inside the data directory, where
// admin records every certificate it issues.
const IssuedCertsDirName = "issued-certs"

// issuedCerts records issued certificates as one PEM file each, named by
// serial (hex), in dir. An empty dir records nothing and lists nothing.
type issuedCerts struct {
	dir string
}

// record writes cert's PEM durably (temporary file synced, renamed, the
// directory synced) before the certificate is handed out: a certificate
// admin could not record is not issued.
func (s *issuedCerts) record(cert *x509.Certificate, certPEM []byte) error {
	if s.dir == "" {
		return nil
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("record issued certificate: %w", err)
	}
	name := filepath.Join(s.dir, cert.SerialNumber.Text(16)+".pem")
	if err := atomicfile.Write(name, certPEM, 0o600); err != nil {
		return fmt.Errorf("record issued certificate: %w", err)
	}
	return nil
}

// list returns the recorded certificates, soonest to expire first. A file
// that does not parse is an error: the directory is admin's own.
func (s *issuedCerts) list() ([]adminapi.IssuedCert, error) {
	if s.dir == "" {
		return nil, nil
	}
	entries, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list issued certificates: %w", err)
	}
	out := make([]adminapi.IssuedCert, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".pem") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("list issued certificates: %w", err)
		}
		block, _ := pem.Decode(b)
		if block == nil {
			return nil, fmt.Errorf("list issued certificates: %s holds no PEM block", e.Name())
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("list issued certificates: %s: %w", e.Name(), err)
		}
		out = append(out, describeCert(cert))
	}
	slices.SortFunc(out, func(a, b adminapi.IssuedCert) int {
		if c := a.NotAfter.Compare(b.NotAfter); c != 0 {
			return c
		}
		return strings.Compare(a.Serial, b.Serial)
	})
	return out, nil
}

// describeCert is the listed form of a certificate; the profile is read
// back from its extended key usages.
func describeCert(cert *x509.Certificate) adminapi.IssuedCert {
	server := slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	client := slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	profile := pki.ProfileClient
	switch {
	case server && client:
		profile = pki.ProfilePeer
	case server:
		profile = pki.ProfileServer
	}
	hosts := slices.Clone(cert.DNSNames)
	for _, ip := range cert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return adminapi.IssuedCert{Name: cert.Subject.CommonName, Profile: string(profile), Serial: cert.SerialNumber.Text(16),
		NotBefore: cert.NotBefore.UTC(), NotAfter: cert.NotAfter.UTC(), Hosts: hosts}
}
