package partition

import (
	"runtime"
	"testing"
)

// producerStateBytes is the heap one partition's producer state takes per
// producer id when each id has a full window of ProducerWindow separate
// batches (other producers' records between them, the costliest shape).
func producerStateBytes(n int) float64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	t := newProducerTable()
	off := int64(0)
	for b := 0; b < ProducerWindow; b++ {
		for id := int64(1); id <= int64(n); id++ {
			t.apply(id, 0, int64(b)*10, 10, off, 1_700_000_000_000)
			off += 10
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(t)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// The bound: at most 200 bytes of producer state per active
// producer id per partition.
func TestProducerStateMemory(t *testing.T) {
	if got := producerStateBytes(100_000); got > 200 {
		t.Errorf("producer state takes %.0f bytes per producer id; want <= 200", got)
	} else {
		t.Logf("producer state: %.0f bytes per producer id (full window of %d batches)", got, ProducerWindow)
	}
}
