package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// A failed connection reaches the user as whatever the transport saw
// last ("error reading server preface: EOF", "write: broken pipe",
// "http2: client conn could not be established"), which names neither the
// cause nor the fix. When a connection fails, the CLI probes the server
// with a TLS handshake of its own and, when the server's answer explains
// the failure, says so (connProblem).

// probeTimeout bounds one probe: the dial, the handshake and the wait for
// a TLS alert after it.
const probeTimeout = 2 * time.Second

// connProblem is a connection failure a probe explained.
type connProblem struct {
	server string // "broker 127.0.0.1:9092", "admin https://127.0.0.1:9443"
	what   string // what the server did
	fix    string // what to do about it
	err    error  // the failure the probe explained
}

func (p *connProblem) Error() string {
	return fmt.Sprintf("%s %s\n  %s\n  (the connection failed with: %v)", p.server, p.what, p.fix, p.err)
}

func (p *connProblem) Unwrap() error { return p.err }

// explainBrokers probes the brokers (the first three) as a client with tc
// (nil: plaintext) and returns the first explanation of cause, or nil.
func explainBrokers(ctx context.Context, brokers []string, tc *tls.Config, cause error) error {
	for i, addr := range brokers {
		if i == 3 {
			break
		}
		if p := probe(ctx, addr, tc); p != nil {
			p.server, p.err = "broker "+addr, cause
			return p
		}
	}
	return nil
}

// explainAdmin probes the admin API at addr (host:port) with tc.
func explainAdmin(ctx context.Context, base, addr string, tc *tls.Config, cause error) error {
	if p := probe(ctx, addr, tc); p != nil {
		p.server, p.err = "admin "+base, cause
		return p
	}
	return nil
}

// probe runs a TLS handshake against addr as a client with tc would, or,
// for a plaintext client (tc nil), one that verifies nothing, only to
// learn whether the server speaks TLS. After the handshake it waits
// briefly for data: in TLS 1.3 a server refuses a client certificate with
// an alert sent after the client's side of the handshake is complete. It
// returns nil when nothing it saw explains a failure (the server is down,
// or the handshake and the connection are fine).
func probe(ctx context.Context, addr string, tc *tls.Config) *connProblem {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil // not reachable: the transport's error says so
	}
	defer raw.Close() // a probe's connection: nothing to flush or report
	if dl, ok := ctx.Deadline(); ok {
		if err := raw.SetDeadline(dl); err != nil {
			return nil
		}
	}
	plaintext := tc == nil
	if plaintext {
		// A probe that sends nothing but a ClientHello: it only asks
		// whether the server answers in TLS.
		tc = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // no data is sent over it
	} else {
		tc = tc.Clone()
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if len(tc.Certificates) > 0 {
			// crypto/tls sends no certificate when the server asks for
			// one of CAs that did not issue it, and the server then
			// answers "certificate required". The probe sends it
			// anyway, so that the server says what is wrong with it.
			cert := tc.Certificates[0]
			tc.Certificates = nil
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
		}
	}
	// As gRPC and the admin API's HTTP/2 do: a server that accepts the
	// connection then speaks first (its SETTINGS), ending the wait.
	tc.NextProtos = []string{"h2"}
	conn := tls.Client(raw, tc)
	herr := conn.HandshakeContext(ctx)
	if herr == nil {
		var one [1]byte
		_, herr = conn.Read(one[:])
	}
	if plaintext {
		if herr == nil || isRemoteAlert(herr) || isTimeout(herr) && conn.ConnectionState().HandshakeComplete {
			return &connProblem{
				what: "requires TLS, and this client connects in plaintext (--insecure, or an insecure context)",
				fix:  "drop --insecure and pass --ca, --cert and --key, or use a context with them (strata context list)",
			}
		}
		return nil
	}
	return explainTLS(herr, tc)
}

// explainTLS explains what a TLS client with tc saw, when it explains a
// failure.
func explainTLS(err error, tc *tls.Config) *connProblem {
	if err == nil || isTimeout(err) {
		return nil // the handshake went through and nothing was refused
	}
	if a, ok := remoteAlert(err); ok {
		return explainAlert(a, tc)
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		return &connProblem{
			what: "does not speak TLS (a broker started with --insecure-no-auth?)",
			fix:  "pass --insecure to connect in plaintext, or point --brokers at a TLS listener",
		}
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return &connProblem{
			what: "presented a certificate not signed by the CA this client trusts (" + err.Error() + ")",
			fix:  "pass the cluster's CA with --ca (strata cert ca prints it), or use the context made for this cluster (strata context list)",
		}
	}
	var he x509.HostnameError
	if errors.As(err, &he) {
		return &connProblem{
			what: "presented a certificate for other names (" + err.Error() + ")",
			fix:  "connect by a name or address its certificate holds, or issue the server a certificate for this one (strata cert issue NAME --profile server --host ...)",
		}
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) && ci.Reason == x509.Expired {
		return &connProblem{
			what: "presented an expired certificate (" + err.Error() + ")",
			fix:  "the server needs a new certificate (strata-admin pki init into its directory, or strata cert issue NAME --profile server --force)",
		}
	}
	return nil
}

// explainAlert explains an alert the server sent a client with tc.
func explainAlert(a tls.AlertError, tc *tls.Config) *connProblem {
	const issue = "an admin issues one with `strata cert issue NAME --out DIR` (in a context that works, such as the operator's); then use it with --cert and --key or `strata context set`"
	var leaf *x509.Certificate
	if tc.GetClientCertificate != nil {
		if cert, err := tc.GetClientCertificate(nil); err == nil {
			leaf = cert.Leaf
		}
	}
	switch a {
	case alertCertificateRequired:
		return &connProblem{
			what: "requires a client certificate, and this client sent none (" + a.Error() + ")",
			fix:  "pass --cert and --key, or use a context with them (strata context list); " + issue,
		}
	case alertUnknownCA:
		return &connProblem{
			what: "refused this client's certificate (" + a.Error() + "): it was not issued by the cluster's CA",
			fix:  "use a certificate of this cluster: " + issue + "; or use the context made for this cluster (strata context list)",
		}
	case alertCertificateExpired:
		what := "refused this client's certificate (" + a.Error() + ")"
		if leaf != nil {
			what += fmt.Sprintf(": it was valid until %s", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return &connProblem{what: what, fix: replaceHint(leaf)}
	case alertBadCertificate, alertUnsupportedCertificate, alertCertificateRevoked, alertCertificateUnknown:
		return &connProblem{
			what: "refused this client's certificate (" + a.Error() + ")",
			fix:  "check that --cert and --key are a pair issued for this cluster, as a client certificate: " + issue,
		}
	}
	return &connProblem{
		what: "ended the TLS handshake (" + a.Error() + ")",
		fix:  "check the CA, certificate and key given (--ca, --cert, --key, or the context's: strata context show)",
	}
}

// replaceHint says how to replace the certificate leaf.
func replaceHint(leaf *x509.Certificate) string {
	name := "NAME"
	if leaf != nil && leaf.Subject.CommonName != "" {
		name = leaf.Subject.CommonName
	}
	return "an admin issues a new certificate with `strata cert issue " + name + " --force --out DIR`, to use with --cert and --key or `strata context set`"
}

// The alerts a server sends about a client's certificate (RFC 8446 §6).
const (
	alertBadCertificate         tls.AlertError = 42
	alertUnsupportedCertificate tls.AlertError = 43
	alertCertificateRevoked     tls.AlertError = 44
	alertCertificateExpired     tls.AlertError = 45
	alertCertificateUnknown     tls.AlertError = 46
	alertUnknownCA              tls.AlertError = 48
	alertCertificateRequired    tls.AlertError = 116
)

// remoteAlert returns the alert a TLS peer sent, which crypto/tls reports
// as a *net.OpError "remote error" around a value of its unexported alert
// type. That value prints as tls.AlertError of the same code does, which
// identifies the code.
func remoteAlert(err error) (tls.AlertError, bool) {
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "remote error" || op.Err == nil {
		return 0, false
	}
	got := op.Err.Error()
	for a := range 256 {
		if tls.AlertError(a).Error() == got {
			return tls.AlertError(a), true
		}
	}
	return 0, false
}

func isRemoteAlert(err error) bool {
	_, ok := remoteAlert(err)
	return ok
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// permissionHint says, for a broker's ACL denial, which grant would allow
// the call and how an admin gives it.
func permissionHint(pe *client.PermissionError) string {
	if pe.Identity == "" || pe.Action == "" || pe.Object == "" {
		return "  this is a permission problem: an admin can grant it with `strata acl add p IDENTITY OBJECT ACTION`"
	}
	h := fmt.Sprintf("  this is a permission problem, not a connection one: an admin can grant it with `strata acl add p %s %s %s`",
		pe.Identity, pe.Object, pe.Action)
	if pe.Object == "cluster" && pe.Action == "describe" {
		h += " (every client reads the cluster's metadata first)"
	}
	return h
}
