package producerid

import (
	"context"
	"sync"
	"testing"
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
