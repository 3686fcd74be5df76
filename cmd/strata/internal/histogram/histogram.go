// Package histogram is a small HDR-like latency histogram: log-linear
// buckets with 64 sub-buckets per power of two, so any recorded value is
// reported within 1/64 (about 1.6%) of its true value.
package histogram

import (
	"math/bits"
	"time"
)

const subBits = 7 // values below 1<<subBits are exact

// Histogram counts durations. The zero value is ready; not safe for
// concurrent use.
type Histogram struct {
	counts   [64 - subBits + 1][1 << subBits]uint64
	n        uint64
	min, max time.Duration
}

func bucket(v uint64) (int, int) {
	if v < 1<<subBits {
		return 0, int(v)
	}
	shift := bits.Len64(v) - subBits
	return shift, int(v >> shift)
}

// Record adds one value (negative values count as 0).
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	e, s := bucket(uint64(d))
	h.counts[e][s]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for e := range o.counts {
		for s, c := range o.counts[e] {
			h.counts[e][s] += c
		}
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest value recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Min is the smallest value recorded.
func (h *Histogram) Min() time.Duration { return h.min }

// Quantile returns the value at quantile q in [0, 1] (0 when empty).
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	if rank >= h.n {
		return h.max
	}
	var seen uint64
	for e := range h.counts {
		for s, c := range h.counts[e] {
			if c == 0 {
				continue
			}
			seen += c
			if seen >= rank {
				var v uint64
				if e == 0 {
					v = uint64(s)
				} else {
					// The middle of the bucket [s<<e, (s+1)<<e).
					v = uint64(s)<<e + (uint64(1)<<e)/2
				}
				d := time.Duration(v)
				if d > h.max {
					d = h.max
				}
				if d < h.min {
					d = h.min
				}
				return d
			}
		}
	}
	return h.max
}
