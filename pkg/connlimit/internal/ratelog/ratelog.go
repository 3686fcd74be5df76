// Package ratelog bounds how often a repeated event is logged: at most one
// line per interval, which carries how many events went unlogged since
// the previous line.
package ratelog

import (
	"sync"
	"time"
)

// DefaultInterval is the interval of New(0).
const DefaultInterval = 10 * time.Second

// Limiter decides which occurrences of one event are logged. It is safe
// for concurrent use.
type Limiter struct {
	every time.Duration
	now   func() time.Time

	mu         sync.Mutex
	next       time.Time // the first time the next line may be written
	suppressed int64     // events since the last line that were not logged
}

// New returns a Limiter allowing one line per every; zero or less means
// DefaultInterval.
func New(every time.Duration) *Limiter {
	if every <= 0 {
		every = DefaultInterval
	}
	return &Limiter{every: every, now: time.Now}
}

// Allow records one event. It reports whether to log it and, when so, how
// many earlier events went unlogged since the previous line.
func (l *Limiter) Allow() (ok bool, suppressed int64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Before(l.next) {
		l.suppressed++
		return false, 0
	}
	l.next = now.Add(l.every)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}
