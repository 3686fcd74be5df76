package httpapi

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/pki"
)

// Who may get which certificate.
//
// Both certificate routes need create on cluster ("create identities").
// A name (the certificate's subject CN, which is the identity every
// listener authorizes) is then refused unless the caller holds admin on
// cluster when it is privileged:
//
//   - reserved: admin, operator, broker, replicator, cluster, and every
//     broker-* and replicator-* (the services' identities);
//   - named by the policy in force: a rule's subject, a role, or the
//     identity (or identity pattern) of a binding. A certificate for such
//     a name would carry its powers; issuing one is impersonation or
//     escalation, so only an admin may (e.g. to reissue an expiring
//     certificate).
//
// Profiles other than client (server, peer: they can serve, and carry
// SANs) are for admins only too. Every name must be a safe CN: 1 to 64
// characters of a-z, 0-9, '.', '_' and '-', starting and ending with a
// letter or digit. Validity defaults to and is capped at the profile's
// maximum (pki.MaxLeafValidity); a longer one is refused, never clamped.

// safeName is a CN that is also a valid policy identity, file name and
// DNS-like label: no patterns, separators, spaces or upper case.
var safeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// maxHosts bounds the SANs of one certificate request.
const maxHosts = 32

// certsResource issues certificates from the cluster CA and lists those
// it issued.
type certsResource struct {
	ca     *pki.CA // nil when admin runs without the CA key
	caFile string
	store  *policyStore
	authz  Authorizer
	issued *issuedCerts
	m      *metrics
	lg     *zap.Logger
}

// Routes serves GET /, POST / and POST /csr.
func (c *certsResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/", c.list)
	r.Post("/", c.issue)
	r.Post("/csr", c.signCSR)
	return r
}

// rules: listing what admin issued (names, serials, expiry; never a key)
// needs describe on cluster, as reading the cluster's metadata does.
func (c *certsResource) rules(prefix string) map[string]Rule {
	return map[string]Rule{
		routeKey(http.MethodGet, prefix+"/"):     ruleCluster(acl.ActionDescribe),
		routeKey(http.MethodPost, prefix+"/"):    ruleCluster(acl.ActionCreate),
		routeKey(http.MethodPost, prefix+"/csr"): ruleCluster(acl.ActionCreate),
	}
}

func (c *certsResource) list(w http.ResponseWriter, r *http.Request) {
	certs, err := c.issued.list()
	if err != nil {
		writeErr(w, c.lg, err)
		return
	}
	if certs == nil {
		certs = []adminapi.IssuedCert{}
	}
	writeJSON(w, c.lg, http.StatusOK, adminapi.CertList{Certificates: certs})
}

// certParams is what both routes check before signing.
type certParams struct {
	profile  pki.Profile
	dns      []string
	ips      []net.IP
	validity time.Duration
}

// decodeCertRequest decodes and checks the shape of a POST /v1/certs body.
func decodeCertRequest(b []byte) (adminapi.CertRequest, certParams, error) {
	req, err := decodeCertBody(b)
	if err != nil {
		return req, certParams{}, err
	}
	p, err := checkCertRequest(req)
	return req, p, err
}

// decodeCertBody decodes a POST /v1/certs body without checking it.
func decodeCertBody(b []byte) (adminapi.CertRequest, error) {
	var req adminapi.CertRequest
	err := decodeStrict(b, &req, `{"name": "...", "profile": "client", "hosts": [...], "validity": "720h"}`)
	return req, err
}

// checkCertRequest checks the shape of a certificate request.
func checkCertRequest(req adminapi.CertRequest) (certParams, error) {
	if !safeName.MatchString(req.Name) {
		return certParams{}, errorf(http.StatusBadRequest,
			"name %q is not a safe identity: 1-64 of a-z 0-9 . _ -, starting and ending with a letter or digit", req.Name)
	}
	return parseCertParams(req.Profile, req.Hosts, req.Validity)
}

// decodeCSRRequest decodes and checks the shape of a POST /v1/certs/csr
// body, and returns the CSR's subject CN.
func decodeCSRRequest(b []byte) (adminapi.CSRRequest, string, certParams, error) {
	var req adminapi.CSRRequest
	if err := decodeStrict(b, &req, `{"csr": "-----BEGIN CERTIFICATE REQUEST-----...", "profile": "client", "hosts": [...], "validity": "720h"}`); err != nil {
		return req, "", certParams{}, err
	}
	block, _ := pem.Decode([]byte(req.CSR))
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return req, "", certParams{}, errorf(http.StatusBadRequest, "csr must hold a PEM CERTIFICATE REQUEST")
	}
	parsed, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return req, "", certParams{}, errorf(http.StatusBadRequest, "csr: %v", err)
	}
	if err := parsed.CheckSignature(); err != nil {
		return req, "", certParams{}, errorf(http.StatusBadRequest, "csr signature: %v", err)
	}
	name := parsed.Subject.CommonName
	if !safeName.MatchString(name) {
		return req, "", certParams{}, errorf(http.StatusBadRequest,
			"csr subject CN %q is not a safe identity: 1-64 of a-z 0-9 . _ -, starting and ending with a letter or digit", name)
	}
	p, err := parseCertParams(req.Profile, req.Hosts, req.Validity)
	return req, name, p, err
}

func parseCertParams(profile string, hosts []string, validity string) (certParams, error) {
	var p certParams
	if profile == "" {
		profile = string(pki.ProfileClient)
	}
	p.profile = pki.Profile(profile)
	switch p.profile {
	case pki.ProfileClient, pki.ProfileServer, pki.ProfilePeer:
	default:
		return p, errorf(http.StatusBadRequest, "profile %q: want client, server or peer", profile)
	}
	if len(hosts) > maxHosts {
		return p, errorf(http.StatusBadRequest, "%d hosts; at most %d", len(hosts), maxHosts)
	}
	if p.profile == pki.ProfileClient && len(hosts) > 0 {
		return p, errorf(http.StatusBadRequest, "client certificates carry no hosts")
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			p.ips = append(p.ips, ip)
			continue
		}
		if h == "" || len(h) > 253 || strings.ContainsAny(h, " ,/\\@*") {
			return p, errorf(http.StatusBadRequest, "host %q is not a DNS name or IP", h)
		}
		p.dns = append(p.dns, h)
	}
	if validity != "" {
		d, err := time.ParseDuration(validity)
		if err != nil || d <= 0 {
			return p, errorf(http.StatusBadRequest, "validity %q: want a positive duration such as 720h", validity)
		}
		if d > p.profile.MaxValidity() {
			return p, errorf(http.StatusBadRequest, "validity %s exceeds the %s maximum of %s", d, p.profile, p.profile.MaxValidity())
		}
		p.validity = d
	}
	return p, nil
}

// permit refuses (403) a privileged name or a non-client profile unless
// the caller holds admin on cluster.
func (c *certsResource) permit(id, name string, profile pki.Profile) error {
	why := ""
	if profile != pki.ProfileClient {
		why = fmt.Sprintf("profile %s", profile)
	} else if reason := c.privileged(name); reason != "" {
		why = reason
	}
	if why == "" {
		return nil
	}
	ok, err := c.authz.Allowed(id, acl.ObjectCluster, acl.ActionAdmin)
	if err != nil || !ok {
		return errorf(http.StatusForbidden, "%s: only an admin may issue it", why)
	}
	return nil
}

// privileged says why name is privileged, or "" when it is not.
func (c *certsResource) privileged(name string) string {
	switch name {
	case "admin", "operator", "broker", "replicator", acl.ObjectCluster:
		return fmt.Sprintf("name %q is reserved", name)
	}
	for _, p := range [...]string{"broker-", "replicator-"} {
		if strings.HasPrefix(name, p) {
			return fmt.Sprintf("name %q is a service identity (%s*)", name, p)
		}
	}
	text, _, _ := c.store.snapshot()
	policy, err := acl.ParsePolicy(text)
	if err != nil {
		// The policy in force always parses; refuse rather than guess.
		return "policy unreadable"
	}
	if policy.Names(name) {
		return fmt.Sprintf("name %q is named by the ACL policy", name)
	}
	return ""
}

func (c *certsResource) issue(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	b, err := readBody(w, r)
	if err != nil {
		c.refuse(w, id, "", err)
		return
	}
	req, err := decodeCertBody(b)
	if err != nil {
		c.refuse(w, id, req.Name, err)
		return
	}
	bundle, err := c.issueFor(id, req)
	if err != nil {
		writeErr(w, c.lg, err)
		return
	}
	writeJSON(w, c.lg, http.StatusCreated, bundle)
}

// issueFor checks req for caller id and issues it: the work of POST
// /v1/certs once the body is decoded, shared with the console. A refusal
// is counted and audit-logged here.
func (c *certsResource) issueFor(id string, req adminapi.CertRequest) (adminapi.CertBundle, error) {
	p, err := checkCertRequest(req)
	if err == nil {
		err = c.permit(id, req.Name, p.profile)
	}
	if err == nil {
		err = c.ready()
	}
	if err != nil {
		return adminapi.CertBundle{}, c.refused(id, req.Name, err)
	}
	kp, err := c.ca.Issue(pki.IssueRequest{CommonName: req.Name, Profile: p.profile, DNSNames: p.dns, IPs: p.ips, Validity: p.validity})
	if err != nil {
		return adminapi.CertBundle{}, c.refused(id, req.Name, pkiError(err))
	}
	return c.bundle(id, req.Name, p.profile, kp.Cert, kp.CertPEM, kp.KeyPEM)
}

func (c *certsResource) signCSR(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	b, err := readBody(w, r)
	if err != nil {
		c.refuse(w, id, "", err)
		return
	}
	req, name, p, err := decodeCSRRequest(b)
	if err == nil {
		err = c.permit(id, name, p.profile)
	}
	if err == nil {
		err = c.ready()
	}
	if err != nil {
		c.refuse(w, id, name, err)
		return
	}
	certPEM, err := c.ca.SignCSR(pki.CSRSignRequest{CSRPEM: []byte(req.CSR), Profile: p.profile, DNSNames: p.dns, IPs: p.ips, Validity: p.validity})
	if err != nil {
		c.refuse(w, id, name, pkiError(err))
		return
	}
	block, _ := pem.Decode(certPEM)
	if block == nil {
		c.refuse(w, id, name, errors.New("signed certificate is not PEM"))
		return
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		c.refuse(w, id, name, fmt.Errorf("parse signed certificate: %w", err))
		return
	}
	bundle, err := c.bundle(id, name, p.profile, cert, certPEM, nil)
	if err != nil {
		writeErr(w, c.lg, err)
		return
	}
	writeJSON(w, c.lg, http.StatusCreated, bundle)
}

// ready refuses (503) when admin has no CA key.
func (c *certsResource) ready() error {
	if c.ca == nil {
		return errorf(http.StatusServiceUnavailable, "certificate issuing is off: admin runs without --ca-key")
	}
	return nil
}

// bundle records a signed certificate and makes the answer. A
// certificate that cannot be recorded is not handed out.
func (c *certsResource) bundle(id, name string, profile pki.Profile, cert *x509.Certificate, certPEM, keyPEM []byte) (adminapi.CertBundle, error) {
	caPEM, err := os.ReadFile(c.caFile)
	if err != nil {
		return adminapi.CertBundle{}, c.refused(id, name, fmt.Errorf("read CA file: %w", err))
	}
	if err := c.issued.record(cert, certPEM); err != nil {
		return adminapi.CertBundle{}, c.refused(id, name, err)
	}
	serial := cert.SerialNumber.Text(16)
	c.m.certs.WithLabelValues(string(profile), "issued").Inc()
	c.lg.Info("audit: certificate issued", zap.String("identity", id), zap.String("name", name),
		zap.String("profile", string(profile)), zap.String("serial", serial), zap.Time("not_after", cert.NotAfter),
		zap.Bool("key_generated", keyPEM != nil))
	return adminapi.CertBundle{
		Name: name, Profile: string(profile), Serial: serial, NotAfter: cert.NotAfter.UTC(),
		Cert: string(certPEM), Key: string(keyPEM), CA: string(caPEM),
	}, nil
}

func (c *certsResource) refuse(w http.ResponseWriter, id, name string, err error) {
	writeErr(w, c.lg, c.refused(id, name, err))
}

// refused counts and audit-logs a refusal and returns err.
func (c *certsResource) refused(id, name string, err error) error {
	c.m.certs.WithLabelValues("", "refused").Inc()
	c.lg.Warn("audit: certificate refused", zap.String("identity", id), zap.String("name", name), zap.Error(err))
	return err
}

// pkiError maps a pki request error to 400; anything else stays a 500.
func pkiError(err error) error {
	for _, e := range []error{pki.ErrValidityTooLong, pki.ErrEmptyCommonName, pki.ErrNoHosts, pki.ErrBadPEM,
		pki.ErrHostsNotAllowed, pki.ErrUnknownProfile} {
		if errors.Is(err, e) {
			return errorf(http.StatusBadRequest, "%v", err)
		}
	}
	return fmt.Errorf("sign certificate: %w", err)
}
