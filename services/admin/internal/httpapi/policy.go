package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
)

// maxBodyBytes bounds every request body.
const maxBodyBytes = 1 << 20

// policyDoc is the JSON form of the policy on GET and PUT.
type policyDoc struct {
	Policy  string `json:"policy"`
	Version uint64 `json:"version,omitempty"`
}

// policyResource serves the ACL policy. The Authorizer holds it in force and
// saves it to cache (the durable copy under the data directory).
type policyResource struct {
	authz *acl.Authorizer
	cache *acl.Cache // the Authorizer's CachePath, to confirm durability
	lg    *zap.Logger

	mu sync.Mutex // serialises replacements so each reports its own version
}

// Routes serves GET and PUT /policy.
func (p *policyResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/policy", p.get)
	r.Put("/policy", p.put)
	return r
}

func (p *policyResource) rules(prefix string) map[string]Rule {
	return map[string]Rule{
		routeKey(http.MethodGet, prefix+"/policy"): ruleCluster(acl.ActionDescribe),
		routeKey(http.MethodPut, prefix+"/policy"): ruleCluster(acl.ActionAdmin),
	}
}

func (p *policyResource) get(w http.ResponseWriter, r *http.Request) {
	text, version := p.authz.Policy()
	writeJSON(w, p.lg, http.StatusOK, policyDoc{Policy: text, Version: version})
}

func (p *policyResource) put(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	var doc policyDoc
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, p.lg, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", maxBodyBytes))
			return
		}
		writeError(w, p.lg, http.StatusBadRequest, "body must be JSON {\"policy\": \"...\"}: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, p.lg, http.StatusBadRequest, "body must hold one JSON object")
		return
	}

	// Refuse a policy under which its own author could no longer administer
	// the cluster: one bad PUT must not lock every operator out for good.
	probe, err := acl.NewAuthorizer(acl.Options{Policy: doc.Policy}, zap.NewNop())
	if err != nil || doc.Policy == "" {
		if err == nil {
			err = fmt.Errorf("%w: empty policy", acl.ErrInvalidPolicy)
		}
		p.lg.Warn("audit: acl policy replacement refused", zap.String("identity", id), zap.Error(err))
		writeError(w, p.lg, http.StatusBadRequest, err.Error())
		return
	}
	if ok, err := probe.Allowed(id, acl.ObjectCluster, acl.ActionAdmin); err != nil || !ok {
		p.lg.Warn("audit: acl policy replacement refused: would revoke the caller's admin",
			zap.String("identity", id))
		writeError(w, p.lg, http.StatusConflict,
			"policy would revoke your own admin on cluster; refusing to lock you out")
		return
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	_, oldVersion := p.authz.Policy()
	if err := p.authz.Replace(doc.Policy); err != nil {
		p.lg.Warn("audit: acl policy replacement refused", zap.String("identity", id),
			zap.Uint64("version", oldVersion), zap.Error(err))
		if errors.Is(err, acl.ErrInvalidPolicy) {
			writeError(w, p.lg, http.StatusBadRequest, err.Error())
			return
		}
		writeError(w, p.lg, http.StatusInternalServerError, "policy not replaced")
		return
	}
	text, version := p.authz.Policy()
	// The Authorizer keeps a policy in force even when its cache write
	// fails; the admin service owns the policy, so it reports success only
	// once the policy is on disk.
	if _, saved, err := p.cache.Load(); err != nil || saved != version {
		p.lg.Error("audit: acl policy in force but not persisted", zap.String("identity", id),
			zap.Uint64("old_version", oldVersion), zap.Uint64("version", version), zap.Error(err))
		writeError(w, p.lg, http.StatusInternalServerError, "policy in force but not persisted; retry")
		return
	}
	p.lg.Info("audit: acl policy replaced", zap.String("identity", id),
		zap.Uint64("old_version", oldVersion), zap.Uint64("version", version), zap.Int("bytes", len(text)))
	writeJSON(w, p.lg, http.StatusOK, policyDoc{Policy: text, Version: version})
}
