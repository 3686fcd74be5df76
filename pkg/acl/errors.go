package acl

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrInvalidPolicy is wrapped by every policy parse error.
	ErrInvalidPolicy = errors.New("acl: invalid policy")
	// ErrBadRequest is returned by Allowed for an empty subject, object or
	// action, or one containing "*".
	ErrBadRequest = errors.New("acl: bad authorization request")
	// ErrStaleVersion is returned by ReplaceAt for a version not newer
	// than the one in force.
	ErrStaleVersion = errors.New("acl: policy version not newer than current")
	// ErrNoCache is returned by Cache.Load when no cache file exists.
	ErrNoCache = errors.New("acl: no cached policy")
	// ErrCorruptCache is returned by Cache.Load for a torn or altered file.
	ErrCorruptCache = errors.New("acl: corrupt policy cache")
	// ErrBadMethodTable is returned by NewInterceptor for a bad table.
	ErrBadMethodTable = errors.New("acl: bad method table")
	// ErrBadWatcherOptions is returned by NewWatcher for invalid options.
	ErrBadWatcherOptions = errors.New("acl: bad watcher options")
	// ErrWatcherRunning is returned by a second Watcher.Run.
	ErrWatcherRunning = errors.New("acl: watcher already running")
)

// ParseError tells which policy line is wrong and why. It wraps
// ErrInvalidPolicy.
type ParseError struct {
	// Line is the 1-based line number.
	Line int
	// Reason says what is wrong.
	Reason string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("acl: invalid policy: line %d: %s", e.Line, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidPolicy) hold.
func (e *ParseError) Unwrap() error { return ErrInvalidPolicy }
