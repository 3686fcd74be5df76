package quota

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeRates struct {
	mu    sync.Mutex
	rates map[string]int64 // identity/kind -> bytes per second
}

func (f *fakeRates) Quota(identity, kind string) (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.rates[identity+"/"+kind]
	return r, ok
}

func (f *fakeRates) set(identity, kind string, rate int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rates[identity+"/"+kind] = rate
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newLimiter(rates *fakeRates) (*Limiter, *clock) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	l := New(rates, nil)
	l.now = c.now
	return l, c
}

// TestPacing: an identity gets a second's burst free, then each request
// waits until its bytes are paid for at the quota's rate; another
// identity and another kind are paced apart; an identity without a quota
// never waits.
func TestPacing(t *testing.T) {
	rates := &fakeRates{rates: map[string]int64{"alice/produce": 1000}}
	l, c := newLimiter(rates)
	if d := l.Reserve("alice", Produce, 1000); d != 0 {
		t.Fatalf("first second's bytes waited %v", d)
	}
	if d := l.Reserve("alice", Produce, 500); d != 500*time.Millisecond {
		t.Fatalf("1.5 s of bytes at once waited %v, want 500ms", d)
	}
	if d := l.Reserve("alice", Produce, 1000); d != 1500*time.Millisecond {
		t.Fatalf("queued behind the previous request: waited %v, want 1.5s", d)
	}
	if d := l.Reserve("alice", Consume, 1_000_000); d != 0 {
		t.Fatalf("consume without a consume quota waited %v", d)
	}
	if d := l.Reserve("bob", Produce, 1_000_000); d != 0 {
		t.Fatalf("bob without a quota waited %v", d)
	}
	if d := l.Reserve("", Produce, 1_000_000); d != 0 {
		t.Fatalf("no identity (security off) waited %v", d)
	}
	// Time passes: the debt is paid and idle time is not banked.
	c.t = c.t.Add(time.Hour)
	if d := l.Reserve("alice", Produce, 1000); d != 0 {
		t.Fatalf("after an idle hour the first second's bytes waited %v", d)
	}
	if d := l.Reserve("alice", Produce, 1000); d != time.Second {
		t.Fatalf("idle time was banked: waited %v, want 1s", d)
	}
	if got := testutil.ToFloat64(l.delayed.WithLabelValues(Produce)); got != 3 {
		t.Errorf("throttled requests = %v, want 3", got)
	}
	if got := testutil.ToFloat64(l.throttled.WithLabelValues(Produce)); got != 3.0 {
		t.Errorf("throttle seconds = %v, want 3", got)
	}
}

// TestRateChangeApplies: a new policy's rate paces the next request.
func TestRateChangeApplies(t *testing.T) {
	rates := &fakeRates{rates: map[string]int64{"alice/consume": 1000}}
	l, _ := newLimiter(rates)
	l.Reserve("alice", Consume, 1000)
	rates.set("alice", Consume, 100)
	if d := l.Reserve("alice", Consume, 100); d != time.Second {
		t.Fatalf("after lowering the rate to 100 B/s, 100 bytes waited %v, want 1s", d)
	}
}

// TestSweepForgetsIdle: the limiter does not remember identities without
// bound.
func TestSweepForgetsIdle(t *testing.T) {
	rates := &fakeRates{rates: map[string]int64{}}
	l, c := newLimiter(rates)
	for i := range maxBuckets {
		id := "id-" + time.Duration(i).String()
		rates.set(id, Produce, 1<<30)
		l.Reserve(id, Produce, 1)
	}
	c.t = c.t.Add(2 * time.Minute)
	rates.set("late", Produce, 1<<30)
	l.Reserve("late", Produce, 1)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets after the sweep, want 1", n)
	}
}
