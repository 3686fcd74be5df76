package liveness

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errProbe = errors.New("connection refused")

// scripted answers the probes in order from a script of outcomes (true:
// serving) and records, per probe, whether it was asked to wait; past the
// script it closes done and blocks until the prober stops.
type scripted struct {
	mu     sync.Mutex
	script []bool
	waits  []bool
	done   chan struct{}
}

func (s *scripted) Check(ctx context.Context, wait bool) error {
	s.mu.Lock()
	i := len(s.waits)
	if i == len(s.script) {
		s.mu.Unlock()
		close(s.done)
		<-ctx.Done() // the prober's: Run has been cancelled or the probe timed out
		return ctx.Err()
	}
	s.waits = append(s.waits, wait)
	ok := s.script[i]
	s.mu.Unlock()
	if ok {
		return nil
	}
	return errProbe
}

// TestReportsDownAfterFailuresInARowAndUpAtOnce: isolated failures, even
// two in a row, change nothing; the third in a row reports the broker
// down, the first success after that reports it up; while down the probes
// wait for a connection.
func TestReportsDownAfterFailuresInARowAndUpAtOnce(t *testing.T) {
	const ok, fail = true, false
	script := []bool{
		ok, fail, ok, // one failure: no change
		fail, fail, ok, // two in a row: no change
		fail, fail, fail, // three: down (probe 8)
		fail, fail, // still down
		ok,       // up (probe 11)
		fail, ok, // one failure: no change
	}
	c := &scripted{script: script, done: make(chan struct{})}
	type change struct {
		probe int
		up    bool
	}
	var changes []change
	probes := 0
	p := New(c, Options{Interval: time.Millisecond, Timeout: time.Hour,
		OnProbe:  func(bool) { probes++ },
		OnChange: func(up bool) { changes = append(changes, change{probes - 1, up}) },
	}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.Run(ctx)
	}()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the prober did not get through the script")
	}
	cancel()
	<-stopped

	if want := []change{{8, false}, {11, true}}; !slices.Equal(changes, want) {
		t.Fatalf("changes (probe index, up) %v, want %v", changes, want)
	}
	wantWaits := make([]bool, len(script))
	for i := 9; i <= 11; i++ { // the probes made while reported down
		wantWaits[i] = true
	}
	if !slices.Equal(c.waits, wantWaits) {
		t.Fatalf("waits %v, want %v", c.waits, wantWaits)
	}
}

// slow answers after a delay, or when ctx ends first.
type slow struct{ delay time.Duration }

func (s slow) Check(ctx context.Context, _ bool) error {
	select {
	case <-time.After(s.delay):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestTimeoutIsAFailure: a broker that does not answer within Timeout
// fails the probe; Failures of them report it down.
func TestTimeoutIsAFailure(t *testing.T) {
	changed := make(chan bool, 1)
	p := New(slow{delay: time.Hour}, Options{Interval: time.Millisecond, Timeout: 10 * time.Millisecond, Failures: 2,
		OnChange: func(up bool) { changed <- up }}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.Run(ctx)
	}()
	defer func() { cancel(); <-stopped }()
	select {
	case up := <-changed:
		if up {
			t.Fatal("reported up")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a broker that never answers was not reported down")
	}
}
