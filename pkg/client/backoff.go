package client

import (
	"math/rand/v2"
	"time"
)

// retryDelay returns the delay before retry number attempt (0-based):
// base doubled per attempt up to max, with ±20% jitter.
func retryDelay(attempt int, base, max time.Duration) time.Duration {
	d := base
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	j := time.Duration(rand.Int64N(int64(d)/5 + 1))
	return d - d/10 + j
}
