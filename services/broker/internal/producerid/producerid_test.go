package producerid

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestLocalIDsUniqueAcrossRestarts: ids from one allocator, and from a new
// one over the same directory (a restart), never repeat.
func TestLocalIDsUniqueAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	seen := make(map[int64]bool)
	var mu sync.Mutex
	for restart := range 3 {
		a := New(NewLocal(dir))
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range BlockSize / 2 {
					id, err := a.Next(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[id] || id <= 0 {
						t.Errorf("restart %d: id %d handed out twice or not positive", restart, id)
					}
					seen[id] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	if len(seen) != 3*4*BlockSize/2 {
		t.Fatalf("%d ids, want %d", len(seen), 3*4*BlockSize/2)
	}
}

// countingSource is a Source whose unallocated id the test sets, counting
// the calls.
type countingSource struct {
	mu          sync.Mutex
	unallocated int64
	asked       int
}

func (s *countingSource) Block(context.Context) (int64, int32, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.unallocated
	s.unallocated += BlockSize
	return first, BlockSize, nil
}

func (s *countingSource) Unallocated(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	return s.unallocated, nil
}

// TestIssued: ids below the first unallocated one are issued; one above it
// is refused after asking the source again, and a flood of such ids asks
// the source at most once per refresh period.
func TestIssued(t *testing.T) {
	ctx := context.Background()
	src := &countingSource{unallocated: 1}
	a := New(src)
	id, err := a.Next(ctx) // this broker's block [1, 1001)
	if err != nil || id != 1 {
		t.Fatalf("Next: %d, %v", id, err)
	}
	if err := a.Issued(ctx, 1); err != nil {
		t.Errorf("an id this broker issued: %v", err)
	}
	if err := a.Issued(ctx, 999); err != nil {
		t.Errorf("an id of this broker's block: %v", err)
	}
	if src.asked != 0 {
		t.Errorf("asked the source %d times for ids of its own block", src.asked)
	}
	src.mu.Lock()
	src.unallocated = 5001 // other brokers took blocks up to 5000
	src.mu.Unlock()
	if err := a.Issued(ctx, 4200); err != nil {
		t.Errorf("an id another broker issued: %v", err)
	}
	for _, bad := range []int64{0, -3, 5001, 1 << 40} {
		if err := a.Issued(ctx, bad); !errors.Is(err, ErrNeverIssued) {
			t.Errorf("Issued(%d) = %v, want ErrNeverIssued", bad, err)
		}
	}
	asked := src.asked
	for range 1000 {
		_ = a.Issued(ctx, 1<<40)
	}
	if src.asked > asked+1 {
		t.Errorf("1000 made-up ids within one refresh period asked the source %d times", src.asked-asked)
	}
}

// TestLocalUnallocated: a single node's source answers the file's id.
func TestLocalUnallocated(t *testing.T) {
	ctx := context.Background()
	l := NewLocal(t.TempDir())
	if n, err := l.Unallocated(ctx); err != nil || n != 1 {
		t.Fatalf("before any block: %d, %v", n, err)
	}
	if _, _, err := l.Block(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Unallocated(ctx); err != nil || n != 1+BlockSize {
		t.Fatalf("after one block: %d, %v", n, err)
	}
}

// laggingSource answers an unallocated id that catches up with the
// cluster's only after a while, as a replicator applying the controller's
// Raft log does.
type laggingSource struct {
	countingSource
	lag time.Duration
}

func (s *laggingSource) MaxLag() time.Duration { return s.lag }

// TestIssuedWaitsForALaggingSource: an id another broker just issued, which
// this node's source does not know of yet, is accepted once the source
// catches up; a made-up one is refused after the source's lag.
func TestIssuedWaitsForALaggingSource(t *testing.T) {
	ctx := context.Background()
	src := &laggingSource{countingSource: countingSource{unallocated: 1}, lag: time.Second}
	a := New(src)
	go func() {
		time.Sleep(300 * time.Millisecond)
		src.mu.Lock()
		src.unallocated = 2001
		src.mu.Unlock()
	}()
	if err := a.Issued(ctx, 1500); err != nil {
		t.Fatalf("an id the source learned of 300ms later: %v", err)
	}
	start := time.Now()
	if err := a.Issued(ctx, 9999); !errors.Is(err, ErrNeverIssued) {
		t.Fatalf("made-up id: %v, want ErrNeverIssued", err)
	}
	if waited := time.Since(start); waited < 800*time.Millisecond {
		t.Errorf("refused after %v, before the source's lag of %v", waited, src.lag)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := a.Issued(cctx, 9999); !errors.Is(err, context.Canceled) && !errors.Is(err, ErrNeverIssued) {
		t.Fatalf("cancelled wait: %v", err)
	}
}
