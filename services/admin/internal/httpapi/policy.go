package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
)

// writeDeadlineSlack is added to a long poll's wait for its write
// deadline, which replaces the server's WriteTimeout for that request.
const writeDeadlineSlack = 10 * time.Second

// aclResource serves the ACL policy: whole (/policy, and its watch) and
// a line at a time (/rules, in rules.go).
type aclResource struct {
	store    *policyStore
	stopping <-chan struct{} // closed when the server shuts down
	lg       *zap.Logger
}

// Routes serves /policy and /rules.
func (p *aclResource) Routes() chi.Router {
	r := chi.NewRouter()
	r.Get("/policy", p.get)
	r.Put("/policy", p.put)
	r.Get("/rules", p.listRules)
	r.Post("/rules", p.addRules)
	r.Delete("/rules", p.removeRules)
	return r
}

// rules: reading the policy, its watch, and its rules needs describe on
// cluster (brokers and replicators hold it by default; a watch reveals
// nothing a plain GET does not); changing it needs admin.
func (p *aclResource) rules(prefix string) map[string]Rule {
	return map[string]Rule{
		routeKey(http.MethodGet, prefix+"/policy"):   ruleCluster(acl.ActionDescribeACL),
		routeKey(http.MethodPut, prefix+"/policy"):   ruleCluster(acl.ActionAdmin),
		routeKey(http.MethodGet, prefix+"/rules"):    ruleCluster(acl.ActionDescribeACL),
		routeKey(http.MethodPost, prefix+"/rules"):   ruleCluster(acl.ActionAdmin),
		routeKey(http.MethodDelete, prefix+"/rules"): ruleCluster(acl.ActionAdmin),
	}
}

// get answers the policy in force. With ?after=V it is the watch: it
// answers 200 as soon as the version is greater than V, or 304 Not
// Modified (no body) when wait (default 30s, at most 60s) passes first.
// Every answer carries the version in adminapi.PolicyVersionHeader.
func (p *aclResource) get(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	afterStr, waitStr := q.Get("after"), q.Get("wait")
	if !q.Has("after") {
		if q.Has("wait") {
			writeError(w, p.lg, http.StatusBadRequest, "wait needs after")
			return
		}
		text, version, _ := p.store.snapshot()
		p.writePolicy(w, text, version)
		return
	}
	after, err := strconv.ParseUint(afterStr, 10, 64)
	if err != nil {
		writeError(w, p.lg, http.StatusBadRequest, "after must be a policy version (unsigned integer)")
		return
	}
	wait := adminapi.DefaultWatchWait
	if q.Has("wait") {
		if wait, err = time.ParseDuration(waitStr); err != nil || wait <= 0 || wait > adminapi.MaxWatchWait {
			writeError(w, p.lg, http.StatusBadRequest, "wait must be a duration in (0, "+adminapi.MaxWatchWait.String()+"]")
			return
		}
	}
	// A held poll outlives the server's WriteTimeout; give this response
	// its own deadline. Recorders in tests do not support it.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + writeDeadlineSlack)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		p.lg.Warn("set write deadline failed", zap.Error(err))
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		text, version, changed := p.store.snapshot()
		if version > after {
			p.writePolicy(w, text, version)
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			w.Header().Set(adminapi.PolicyVersionHeader, strconv.FormatUint(version, 10))
			w.WriteHeader(http.StatusNotModified)
			return
		case <-p.stopping:
			w.Header().Set(adminapi.PolicyVersionHeader, strconv.FormatUint(version, 10))
			writeError(w, p.lg, http.StatusServiceUnavailable, "admin is shutting down")
			return
		case <-r.Context().Done():
			return // the caller left; nobody reads an answer
		}
	}
}

func (p *aclResource) writePolicy(w http.ResponseWriter, text string, version uint64) {
	w.Header().Set(adminapi.PolicyVersionHeader, strconv.FormatUint(version, 10))
	writeJSON(w, p.lg, http.StatusOK, adminapi.Policy{Policy: text, Version: version})
}

func (p *aclResource) put(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	var doc adminapi.Policy
	if err := decodePolicyDoc(w, r, &doc); err != nil {
		p.lg.Warn("audit: acl policy replacement refused", zap.String("identity", id), zap.Error(err))
		writeErr(w, p.lg, err)
		return
	}
	text, version, err := p.store.change(id, "replace policy", func(_ string, inForce uint64) (string, error) {
		// A version in the body makes the PUT a compare-and-swap: it
		// replaces only the policy its author read.
		if doc.Version != 0 && doc.Version != inForce {
			return "", errorf(http.StatusConflict, "policy is at version %d, not %d; read it again", inForce, doc.Version)
		}
		return doc.Policy, nil
	})
	if err != nil {
		writeErr(w, p.lg, err)
		return
	}
	p.writePolicy(w, text, version)
}

func decodePolicyDoc(w http.ResponseWriter, r *http.Request, doc *adminapi.Policy) error {
	b, err := readBody(w, r)
	if err != nil {
		return err
	}
	return decodePolicyBody(b, doc)
}

// decodePolicyBody decodes a PUT /v1/acl/policy body.
func decodePolicyBody(b []byte, doc *adminapi.Policy) error {
	return decodeStrict(b, doc, `{"policy": "..."}`)
}
