package histogram

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestQuantilesWithinBucketError(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	vals := make([]time.Duration, 100000)
	for i := range vals {
		vals[i] = time.Duration(r.ExpFloat64() * float64(time.Millisecond))
		h.Record(vals[i])
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i] < vals[j] })
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := vals[int(q*float64(len(vals)))-1]
		got := h.Quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.03 || diff < -0.03 {
			t.Errorf("q%.3f = %v, want %v ±3%%", q, got, want)
		}
	}
	if h.Max() != vals[len(vals)-1] || h.Min() != vals[0] || h.Count() != uint64(len(vals)) {
		t.Errorf("min/max/count = %v/%v/%d", h.Min(), h.Max(), h.Count())
	}
}

func TestSmallValuesExactAndMerge(t *testing.T) {
	var a, b Histogram
	for i := 1; i <= 100; i++ {
		a.Record(time.Duration(i))
	}
	b.Record(time.Hour)
	a.Merge(&b)
	if got := a.Quantile(0.5); got != 50 && got != 51 {
		t.Errorf("median %v, want 50 or 51", got)
	}
	if a.Quantile(1) != time.Hour || a.Count() != 101 {
		t.Errorf("max quantile %v count %d", a.Quantile(1), a.Count())
	}
	var empty Histogram
	if empty.Quantile(0.99) != 0 {
		t.Error("empty histogram: non-zero quantile")
	}
}
