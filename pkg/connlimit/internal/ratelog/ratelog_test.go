package ratelog

import (
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(10 * time.Second)
	l.now = func() time.Time { return now }
	type want struct {
		ok         bool
		suppressed int64
	}
	step := func(name string, advance time.Duration, w want) {
		t.Helper()
		now = now.Add(advance)
		ok, n := l.Allow()
		if ok != w.ok || n != w.suppressed {
			t.Fatalf("%s: Allow() = %v, %d; want %v, %d", name, ok, n, w.ok, w.suppressed)
		}
	}
	step("first event", 0, want{true, 0})
	step("at once after", 0, want{false, 0})
	step("within the interval", 9*time.Second, want{false, 0})
	step("at the interval", time.Second, want{true, 2})
	step("long after, nothing suppressed", time.Hour, want{true, 0})
}

func TestNewDefault(t *testing.T) {
	if got := New(0).every; got != DefaultInterval {
		t.Fatalf("New(0) interval = %v, want %v", got, DefaultInterval)
	}
}
