package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/go-chi/chi/v5"

	"github.com/strata-log/strata/pkg/adminapi"
)

// What an extension served beside the API (the web console, in
// services/admin/internal/console) shares with it: the guard's
// authentication, the route rules, the policy store and the certificate
// issuer, so that a page can do nothing its API route would not.

var (
	// ErrForbidden is returned by Authorize when the policy denies.
	ErrForbidden = errors.New("httpapi: forbidden")
	// ErrNoRule is returned by Authorize for a route without a rule: a
	// wiring bug, refused as the guard refuses it.
	ErrNoRule = errors.New("httpapi: route has no rule")
)

// Identity returns the verified identity of the caller of a request the
// API's guard let through, and "" outside it.
func Identity(ctx context.Context) string { return identityFrom(ctx) }

// Mount serves h under prefix on the API's router, behind its metrics and
// its guard. The guard authenticates every request to h (a verified
// client certificate) and lets it through to h, which must authorize
// each request itself with Authorize or Allowed. Call Mount before
// serving; it is not safe alongside requests.
func (a *API) Mount(prefix string, h chi.Router) error {
	var added []string
	err := chi.Walk(h, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		key := routeKey(method, prefix+route)
		if _, ok := a.rules[key]; ok {
			return fmt.Errorf("httpapi: mount %s: route %s is taken", prefix, key)
		}
		a.rules[key] = Rule{AnyAuthenticated: true}
		added = append(added, key)
		return nil
	})
	if err != nil {
		for _, k := range added {
			delete(a.rules, k)
		}
		return err
	}
	a.mux.Mount(prefix, h)
	return nil
}

// Authorize checks identity id against the rule of the API route method
// pattern, as the guard checks a request to that route. object is the
// topic or group name for a rule that takes one (from the URL or the
// body) and is ignored otherwise. It returns nil, ErrForbidden, or
// ErrNoRule.
func (a *API) Authorize(id, method, pattern, object string) error {
	rule, ok := a.rules[routeKey(method, pattern)]
	if !ok {
		return fmt.Errorf("%w: %s %s", ErrNoRule, method, pattern)
	}
	if id == "" {
		return ErrForbidden
	}
	switch {
	case rule.AnyAuthenticated:
		return nil
	case rule.ObjectParam != "" || rule.ObjectInHandler:
		return a.allowed(id, rule.ObjectPrefix+object, rule.Action)
	default:
		return a.allowed(id, rule.Object, rule.Action)
	}
}

// Allowed checks identity id for action on object directly, for what
// has no API route (reading records needs consume on the topic, as at a
// broker). It returns nil or ErrForbidden.
func (a *API) Allowed(id, object, action string) error {
	return a.allowed(id, object, action)
}

func (a *API) allowed(id, object, action string) error {
	ok, err := a.authz.Allowed(id, object, action)
	if err != nil || !ok {
		return ErrForbidden
	}
	return nil
}

// Policy returns the policy in force and its version.
func (a *API) Policy() (text string, version uint64) {
	text, version, _ = a.store.snapshot()
	return text, version
}

// ReplacePolicy replaces the policy for identity id as PUT
// /v1/acl/policy does, with the same checks: a non-zero version must be
// the version in force, and a policy that does not parse, is empty, or
// would revoke id's own admin on cluster is refused (see ErrorStatus).
// The caller must have passed Authorize for PUT /v1/acl/policy.
func (a *API) ReplacePolicy(id, text string, version uint64) (uint64, error) {
	_, v, err := a.store.change(id, "replace policy (console)", func(_ string, inForce uint64) (string, error) {
		if version != 0 && version != inForce {
			return "", errorf(http.StatusConflict, "policy is at version %d, not %d; read it again", inForce, version)
		}
		return text, nil
	})
	return v, err
}

// CheckPolicy runs the checks ReplacePolicy runs on text for identity id
// without replacing anything: a dry run for a preview.
func (a *API) CheckPolicy(id, text string) error { return checkPolicy(id, text) }

// IssueCert issues a certificate for identity id as POST /v1/certs does,
// with the same checks (privileged names and profiles need admin on
// cluster) and the same audit log. The caller must have passed Authorize
// for POST /v1/certs.
func (a *API) IssueCert(id string, req adminapi.CertRequest) (adminapi.CertBundle, error) {
	return a.certs.issueFor(id, req)
}

// IssuedCerts lists what admin issued (GET /v1/certs), soonest to expire
// first.
func (a *API) IssuedCerts() ([]adminapi.IssuedCert, error) { return a.certs.issued.list() }

// ListGroups lists the consumer groups identity id may describe, as GET
// /v1/groups does. The caller must have passed Authorize for that route.
// Errors carry their status (see ErrorStatus).
func (a *API) ListGroups(ctx context.Context, id string) (adminapi.GroupList, error) {
	return a.groups.listFor(ctx, id)
}

// DescribeGroup describes a consumer group with the log end and lag of
// its partitions, as GET /v1/groups/{name} does. The caller must have
// passed Authorize for that route on the group. Errors carry their status
// (see ErrorStatus).
func (a *API) DescribeGroup(ctx context.Context, name string) (adminapi.Group, error) {
	return a.groups.describeGroup(ctx, name)
}

// CACert returns the cluster CA certificate (the file is read each time,
// so that a rotated CA shows).
func (a *API) CACert() (*x509.Certificate, error) {
	b, err := os.ReadFile(a.certs.caFile)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("CA file holds no PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// ErrorStatus returns the HTTP status and the caller-facing message of an
// error from ReplacePolicy, IssueCert, ListGroups or DescribeGroup: a
// refusal with its own status, or 500 "internal error" for anything else
// (whose detail is only logged).
func ErrorStatus(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.msg
	}
	return http.StatusInternalServerError, "internal error"
}
