package acl

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/casbin/casbin/v2"
	"go.uber.org/zap"
)

// Options configures NewAuthorizer. Zero values mean defaults.
type Options struct {
	// Policy is the initial policy text. Empty means DefaultPolicy.
	Policy string
	// CachePath, when set, names the last-good-policy file: at start a
	// valid cached policy wins over Policy (so a restarted broker enforces
	// what it enforced before, even while admin is down), and every policy
	// accepted later is saved there atomically.
	CachePath string
}

// Authorizer answers authorization checks against the policy in force.
// The policy is an immutable Casbin enforcer swapped atomically by Replace:
// a check sees either the old policy or the new one, never a mix, and
// never waits for a reload. It is safe for concurrent use.
type Authorizer struct {
	lg    *zap.Logger
	cache *Cache // nil without CachePath

	cur atomic.Pointer[snapshot]
	mu  sync.Mutex // serialises Replace
}

// snapshot is one policy in force.
type snapshot struct {
	enf     *casbin.SyncedEnforcer
	policy  *Policy
	text    string
	version uint64

	// decisions caches Enforce's answers for this policy (a policy is
	// never modified, so an answer never goes stale; a replaced policy
	// starts an empty cache). Casbin's matcher was about 40% of a group
	// commit's CPU. At most maxCachedDecisions are kept.
	decisions sync.Map // subject "\x00" object "\x00" action -> bool
	cached    atomic.Int64
}

// maxCachedDecisions bounds a policy's decision cache: identities, topics
// and actions are few in practice, and past the bound checks still work,
// uncached.
const maxCachedDecisions = 100_000

// NewAuthorizer builds an Authorizer. The initial policy is the cached one
// when Options.CachePath holds a valid one, otherwise Options.Policy (or
// DefaultPolicy), at version 1 unless the cache says otherwise.
func NewAuthorizer(opts Options, lg *zap.Logger) (*Authorizer, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	a := &Authorizer{lg: lg}
	text, version := opts.Policy, uint64(1)
	if text == "" {
		text = DefaultPolicy
	}
	if opts.CachePath != "" {
		a.cache = NewCache(opts.CachePath)
		cached, v, err := a.cache.Load()
		switch {
		case err == nil:
			text, version = cached, v
			lg.Info("acl policy loaded from cache", zap.String("path", opts.CachePath), zap.Uint64("version", v))
		case errors.Is(err, ErrNoCache):
		default:
			lg.Warn("acl policy cache unusable; starting from the configured policy", zap.Error(err))
		}
	}
	snap, err := build(text, version)
	if err != nil {
		return nil, fmt.Errorf("acl: new authorizer: %w", err)
	}
	a.cur.Store(snap)
	return a, nil
}

func build(text string, version uint64) (*snapshot, error) {
	p, err := ParsePolicy(text)
	if err != nil {
		return nil, err
	}
	enf, err := newEnforcer(p)
	if err != nil {
		return nil, err
	}
	return &snapshot{enf: enf, policy: p, text: text, version: version}, nil
}

// Allowed reports whether subject may do action on object under the
// policy in force. An empty field, or one containing "*", is refused with
// ErrBadRequest (and false). action must be one of Actions().
func (a *Authorizer) Allowed(subject, object, action string) (bool, error) {
	for _, f := range [...]struct{ what, v string }{{"subject", subject}, {"object", object}, {"action", action}} {
		if f.v == "" || strings.Contains(f.v, "*") {
			return false, fmt.Errorf("%w: %s %q", ErrBadRequest, f.what, f.v)
		}
	}
	if !isAction(action) {
		return false, fmt.Errorf("%w: unknown action %q", ErrBadRequest, action)
	}
	snap := a.cur.Load()
	key := subject + "\x00" + object + "\x00" + action
	if v, ok := snap.decisions.Load(key); ok {
		return v.(bool), nil
	}
	ok, err := snap.enf.Enforce(subject, object, action)
	if err != nil {
		return false, fmt.Errorf("acl: enforce: %w", err)
	}
	if snap.cached.Add(1) <= maxCachedDecisions {
		snap.decisions.Store(key, ok)
	}
	return ok, nil
}

// Quota is the rate in bytes per second that paces identity's kind
// (QuotaProduce or QuotaConsume) under the policy in force, and false
// when nothing limits it (see Policy.QuotaFor).
func (a *Authorizer) Quota(identity, kind string) (int64, bool) {
	return a.cur.Load().policy.QuotaFor(identity, kind)
}

// Replace puts policyText in force with the next version. A policy that
// does not parse is refused (the error is a *ParseError) and the old one
// stays in force.
func (a *Authorizer) Replace(policyText string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.replaceLocked(policyText, a.cur.Load().version+1)
}

// ReplaceAt puts policyText in force at the given version, for callers
// that mirror the admin service's versions (a policy watcher). A version
// not newer than the one in force is refused with ErrStaleVersion.
func (a *Authorizer) ReplaceAt(policyText string, version uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur := a.cur.Load().version; version <= cur {
		return fmt.Errorf("%w: %d <= %d", ErrStaleVersion, version, cur)
	}
	return a.replaceLocked(policyText, version)
}

func (a *Authorizer) replaceLocked(text string, version uint64) error {
	snap, err := build(text, version)
	if err != nil {
		a.lg.Warn("acl policy refused; keeping the one in force", zap.Error(err),
			zap.Uint64("version", a.cur.Load().version))
		return fmt.Errorf("acl: replace: %w", err)
	}
	a.cur.Store(snap)
	a.lg.Info("acl policy replaced", zap.Uint64("version", version))
	if a.cache != nil {
		// The policy is in force either way; a cache failure only means a
		// restart would fall back to an older policy.
		if err := a.cache.Save(text, version); err != nil {
			a.lg.Error("acl policy cache write failed", zap.Error(err))
		}
	}
	return nil
}

// Policy returns the policy text in force and its version.
func (a *Authorizer) Policy() (text string, version uint64) {
	s := a.cur.Load()
	return s.text, s.version
}
