package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"sync"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
)

// policyStore is the admin's policy: the Authorizer holds it in force and
// saves it (as its cache file) under the data directory, which makes it
// durable. Every change goes through change, one at a time, so each is a
// whole read-check-replace-persist step: two concurrent rule edits never
// lose one another, and each reports its own version. Watchers wait on
// changed, which is closed and replaced after every change.
type policyStore struct {
	authz *acl.Authorizer
	cache *acl.Cache // the Authorizer's CachePath, to confirm durability
	lg    *zap.Logger
	m     *metrics

	mu      sync.Mutex
	changed chan struct{} // guarded by mu
}

func newPolicyStore(authz *acl.Authorizer, policyPath string, m *metrics, lg *zap.Logger) *policyStore {
	return &policyStore{authz: authz, cache: acl.NewCache(policyPath), lg: lg, m: m, changed: make(chan struct{})}
}

// snapshot returns the policy in force, its version, and a channel closed
// at the next change.
func (s *policyStore) snapshot() (text string, version uint64, changed <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	text, version = s.authz.Policy()
	return text, version, s.changed
}

// change computes a new policy from the one in force with edit and puts
// it in force for identity id. It refuses (and leaves the old policy in
// force) an edit error, a policy that does not parse or is empty (400),
// and one under which id could no longer administer the cluster (409):
// one bad change must not lock every operator out for good. what names
// the change in the audit log.
func (s *policyStore) change(id, what string, edit func(old string, oldVersion uint64) (string, error)) (text string, version uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, oldVersion := s.authz.Policy()
	defer func() {
		if err != nil {
			s.m.policyChanges.WithLabelValues("refused").Inc()
			s.lg.Warn("audit: acl policy change refused", zap.String("identity", id), zap.String("change", what),
				zap.Uint64("version", oldVersion), zap.Error(err))
		}
	}()
	text, err = edit(old, oldVersion)
	if err != nil {
		return "", 0, err
	}
	if err := checkPolicy(id, text); err != nil {
		return "", 0, err
	}
	if err := s.authz.Replace(text); err != nil {
		if errors.Is(err, acl.ErrInvalidPolicy) {
			return "", 0, errorf(http.StatusBadRequest, "%v", err)
		}
		return "", 0, fmt.Errorf("replace policy: %w", err)
	}
	text, version = s.authz.Policy()
	close(s.changed)
	s.changed = make(chan struct{})
	// The Authorizer keeps a policy in force even when its cache write
	// fails; the admin service owns the policy, so it reports success
	// only once the policy is on disk.
	if _, saved, err := s.cache.Load(); err != nil || saved != version {
		s.lg.Error("audit: acl policy in force but not persisted", zap.String("identity", id),
			zap.String("change", what), zap.Uint64("old_version", oldVersion), zap.Uint64("version", version), zap.Error(err))
		return "", 0, errorf(http.StatusInternalServerError, "policy in force but not persisted; retry")
	}
	s.m.policyChanges.WithLabelValues("applied").Inc()
	s.lg.Info("audit: acl policy changed", zap.String("identity", id), zap.String("change", what),
		zap.Uint64("old_version", oldVersion), zap.Uint64("version", version), zap.Int("bytes", len(text)))
	return text, version, nil
}

// checkPolicy refuses an empty or invalid policy (400) and one that would
// revoke id's admin on cluster (409).
func checkPolicy(id, text string) error {
	probe, err := acl.NewAuthorizer(acl.Options{Policy: text}, zap.NewNop())
	if err != nil || text == "" {
		if err == nil {
			err = fmt.Errorf("%w: empty policy", acl.ErrInvalidPolicy)
		}
		return errorf(http.StatusBadRequest, "%v", err)
	}
	if ok, err := probe.Allowed(id, acl.ObjectCluster, acl.ActionAdmin); err != nil || !ok {
		return errorf(http.StatusConflict, "policy would revoke your own admin on cluster; refusing to lock you out")
	}
	return nil
}
