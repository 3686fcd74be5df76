package pki

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudflare/cfssl/helpers"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// File names inside an InitCluster directory.
const (
	CAFileName    = "ca.pem"
	CAKeyFileName = "ca-key.pem"
)

// CertFileName returns the certificate file name of identity name.
func CertFileName(name string) string { return name + ".pem" }

// KeyFileName returns the private key file name of identity name.
func KeyFileName(name string) string { return name + "-key.pem" }

// ClusterOptions describes the certificates InitCluster writes. Zero values
// mean the documented defaults.
type ClusterOptions struct {
	// CAName is the CA certificate's CN. Required.
	CAName string
	// Nodes are node ids ("1", "2", "3"). For each node N and each service
	// prefix P a peer certificate with CN "P-N" is written. May be empty
	// (then only the CA, admin and operators are written).
	Nodes []string
	// ServicePrefixes are the per-node services. Default: broker, replicator.
	ServicePrefixes []string
	// NodeHosts holds extra SANs (DNS names or IPs) per node id, added to
	// every service certificate of that node.
	NodeHosts map[string][]string
	// CommonHosts are SANs added to every server certificate (node services
	// and admin). Default: localhost, 127.0.0.1. Set to an empty non-nil
	// slice for none.
	CommonHosts []string
	// AdminName is the admin service's CN (peer profile). Default "admin".
	AdminName string
	// AdminHosts are extra SANs of the admin certificate, besides its name
	// and CommonHosts.
	AdminHosts []string
	// Operators are client-profile certificates for people and tools.
	// Default: operator. Set to an empty non-nil slice for none.
	Operators []string
	// Validity of every leaf; zero means MaxLeafValidity.
	Validity time.Duration
	// CAValidity of the CA certificate; zero means DefaultCAValidity.
	CAValidity time.Duration
}

// ClusterResult tells what InitCluster did.
type ClusterResult struct {
	// CACreated is true when the CA was made by this call, false when an
	// existing one was kept.
	CACreated bool
	// Written lists the identities whose key pairs were written.
	Written []string
	// Kept lists the identities whose existing key pairs were kept.
	Kept []string
}

func (o ClusterOptions) withDefaults() ClusterOptions {
	if len(o.ServicePrefixes) == 0 {
		o.ServicePrefixes = []string{"broker", "replicator"}
	}
	if o.CommonHosts == nil {
		o.CommonHosts = []string{"localhost", "127.0.0.1"}
	}
	if o.AdminName == "" {
		o.AdminName = "admin"
	}
	if o.Operators == nil {
		o.Operators = []string{"operator"}
	}
	return o
}

// issuePlan is one key pair InitCluster makes.
type issuePlan struct {
	name    string
	profile Profile
	hosts   []string
}

func (o ClusterOptions) plan() ([]issuePlan, error) {
	if o.CAName == "" {
		return nil, fmt.Errorf("%w: CA name is empty", ErrInvalidOptions)
	}
	seen := map[string]bool{}
	var plans []issuePlan
	add := func(p issuePlan) error {
		if err := validName(p.name); err != nil {
			return err
		}
		if seen[p.name] {
			return fmt.Errorf("%w: identity %q appears twice", ErrInvalidOptions, p.name)
		}
		seen[p.name] = true
		plans = append(plans, p)
		return nil
	}
	for _, n := range o.Nodes {
		if n == "" {
			return nil, fmt.Errorf("%w: empty node id", ErrInvalidOptions)
		}
		for _, prefix := range o.ServicePrefixes {
			name := prefix + "-" + n
			hosts := append([]string{name}, o.NodeHosts[n]...)
			if err := add(issuePlan{name, ProfilePeer, append(hosts, o.CommonHosts...)}); err != nil {
				return nil, err
			}
		}
	}
	for n := range o.NodeHosts {
		if !contains(o.Nodes, n) {
			return nil, fmt.Errorf("%w: hosts given for unknown node %q", ErrInvalidOptions, n)
		}
	}
	adminHosts := append(append([]string{o.AdminName}, o.AdminHosts...), o.CommonHosts...)
	if err := add(issuePlan{o.AdminName, ProfilePeer, adminHosts}); err != nil {
		return nil, err
	}
	for _, op := range o.Operators {
		if err := add(issuePlan{op, ProfileClient, nil}); err != nil {
			return nil, err
		}
	}
	return plans, nil
}

// validName refuses identities that would escape the directory or clash
// with the CA files.
func validName(name string) error {
	if name == "" || name == "." || name == ".." || filepath.Base(name) != name || name == "ca" {
		return fmt.Errorf("%w: bad identity name %q", ErrInvalidOptions, name)
	}
	return nil
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// InitCluster writes a cluster's CA and every service's key pair into dir:
//
//	dir/ca.pem, dir/ca-key.pem             the CA (key 0600)
//	dir/<name>.pem, dir/<name>-key.pem     each identity (key 0600)
//
// Identities: "<prefix>-<node>" for each service prefix (default broker,
// replicator) and node id, peer profile, SANs: its own name, NodeHosts[node],
// CommonHosts; the admin service (default CN "admin"), peer profile, SANs:
// its name, AdminHosts, CommonHosts; each operator (default "operator"),
// client profile.
//
// It is idempotent: an existing CA is kept (both of its files must exist, or
// neither); an identity whose certificate and key both exist is kept after
// checking that the certificate was signed by the CA; missing ones are
// written. Every file is written atomically. dir is created (0700) if
// missing. Two InitCluster calls must not run on one dir at the same time.
//
// This is the library behind `strata-admin pki init --out DIR --ca-name NAME
// --node 1 --node 2 ...`.
func InitCluster(dir string, opts ClusterOptions, lg *zap.Logger) (*ClusterResult, error) {
	quietCFSSL()
	if lg == nil {
		lg = zap.NewNop()
	}
	opts = opts.withDefaults()
	plans, err := opts.plan()
	if err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	ca, created, err := loadOrCreateCA(dir, opts, lg)
	if err != nil {
		return nil, fmt.Errorf("init cluster: %w", err)
	}
	res := &ClusterResult{CACreated: created}
	for _, p := range plans {
		certPath := filepath.Join(dir, CertFileName(p.name))
		keyPath := filepath.Join(dir, KeyFileName(p.name))
		present, err := keyPairPresent(certPath, keyPath, ca.cert)
		if err != nil {
			return nil, fmt.Errorf("init cluster: %s: %w", p.name, err)
		}
		if present {
			res.Kept = append(res.Kept, p.name)
			continue
		}
		dns, ips := splitHosts(p.hosts)
		kp, err := ca.Issue(IssueRequest{CommonName: p.name, Profile: p.profile, DNSNames: dns, IPs: ips, Validity: opts.Validity})
		if err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
		// Key first: a crash between the two leaves a key without a
		// certificate, which the next run rewrites.
		if err := atomicfile.Write(keyPath, kp.KeyPEM, keyFileMode); err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
		if err := atomicfile.Write(certPath, kp.CertPEM, certFileMode); err != nil {
			return nil, fmt.Errorf("init cluster: %w", err)
		}
		res.Written = append(res.Written, p.name)
	}
	lg.Info("pki initialised", zap.String("dir", dir), zap.Bool("ca_created", created),
		zap.Strings("written", res.Written), zap.Strings("kept", res.Kept))
	return res, nil
}

func loadOrCreateCA(dir string, opts ClusterOptions, lg *zap.Logger) (*CA, bool, error) {
	certPath := filepath.Join(dir, CAFileName)
	keyPath := filepath.Join(dir, CAKeyFileName)
	certOK, err := exists(certPath)
	if err != nil {
		return nil, false, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return nil, false, err
	}
	switch {
	case certOK && keyOK:
		ca, err := LoadCAFiles(certPath, keyPath, lg)
		return ca, false, err
	case certOK || keyOK:
		return nil, false, fmt.Errorf("%w: only one of %s and %s exists; refusing to replace a CA", ErrInvalidOptions, CAFileName, CAKeyFileName)
	}
	ca, err := CreateCA(CAOptions{CommonName: opts.CAName, Validity: opts.CAValidity}, lg)
	if err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(keyPath, ca.keyPEM, keyFileMode); err != nil {
		return nil, false, err
	}
	if err := atomicfile.Write(certPath, ca.certPEM, certFileMode); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// keyPairPresent reports whether both files exist and the certificate was
// signed by ca. A half-written pair counts as missing.
func keyPairPresent(certPath, keyPath string, ca *x509.Certificate) (bool, error) {
	certOK, err := exists(certPath)
	if err != nil {
		return false, err
	}
	keyOK, err := exists(keyPath)
	if err != nil {
		return false, err
	}
	if !certOK || !keyOK {
		return false, nil
	}
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		return false, err
	}
	cert, err := helpers.ParseCertificatePEM(pemBytes)
	if err != nil {
		return false, fmt.Errorf("%w: %s: %w", ErrBadPEM, certPath, err)
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return false, fmt.Errorf("%s was not signed by the CA in this directory: %w", certPath, err)
	}
	return true, nil
}

func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else if h != "" {
			dns = append(dns, h)
		}
	}
	return dns, ips
}
