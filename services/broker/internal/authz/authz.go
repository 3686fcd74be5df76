package authz

import (
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
)

// CachePath is where the last good policy of a broker with data directory
// dataDir is kept, so that a restart enforces it again.
func CachePath(dataDir string) string {
	return filepath.Join(dataDir, "acl", "policy.cache")
}

// New builds the Authorizer and its interceptor over MethodTable.
//
// policyFile names the initial policy (acl CSV lines); empty means
// acl.DefaultPolicy. A policy file that cannot be read or does not parse
// is an error even when a cached policy exists, so a typo is found at
// start rather than at the first cache loss. A valid cached policy under
// dataDir still wins over the file (acl.Options.CachePath); that is
// logged when the two differ.
func New(policyFile, dataDir string, lg *zap.Logger) (*acl.Authorizer, *acl.Interceptor, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	policy := acl.DefaultPolicy
	source := "built-in default"
	if policyFile != "" {
		b, err := os.ReadFile(policyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("authz: acl-policy: %w", err)
		}
		policy, source = string(b), policyFile
	}
	if _, err := acl.ParsePolicy(policy); err != nil {
		return nil, nil, fmt.Errorf("authz: acl-policy %s: %w", source, err)
	}
	cache := CachePath(dataDir)
	if err := os.MkdirAll(filepath.Dir(cache), 0o700); err != nil {
		return nil, nil, fmt.Errorf("authz: policy cache: %w", err)
	}
	a, err := acl.NewAuthorizer(acl.Options{Policy: policy, CachePath: cache}, lg)
	if err != nil {
		return nil, nil, fmt.Errorf("authz: %w", err)
	}
	inForce, version := a.Policy()
	if inForce != policy {
		lg.Warn("cached acl policy overrides the configured one",
			zap.String("configured", source), zap.String("cache", cache), zap.Uint64("version", version))
	}
	lg.Info("authorization on", zap.String("policy", source), zap.Uint64("version", version))
	ic, err := acl.NewInterceptor(a, MethodTable(), lg)
	if err != nil {
		return nil, nil, fmt.Errorf("authz: %w", err)
	}
	return a, ic, nil
}
