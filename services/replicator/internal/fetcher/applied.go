package fetcher

import (
	"context"
	"sync"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Applied tracks the leader epoch the applier last told the local broker
// for each partition, so that a fetcher for a new epoch waits for that
// notification instead of polling the broker: the applier and the
// fetchers react to the same metadata change independently, and a
// fetcher must not Append or Truncate before its broker is in the epoch.
// The broker itself stays the authority: a fetcher still checks
// PartitionStatus (a restarted broker may have forgotten the state).
type Applied struct {
	mu      sync.Mutex
	epochs  map[key]int32
	changed chan struct{} // closed and replaced on every change
}

// NewApplied returns an empty tracker.
func NewApplied() *Applied {
	return &Applied{epochs: map[key]int32{}, changed: make(chan struct{})}
}

// Observe records one successful ApplyPartitionState (applier.Options.OnApply).
func (a *Applied) Observe(req *stratav1.ApplyPartitionStateRequest) {
	k := key{req.GetTopic(), req.GetPartition()}
	a.mu.Lock()
	defer a.mu.Unlock()
	if req.GetRole() == stratav1.Role_ROLE_NONE {
		delete(a.epochs, k)
	} else {
		// The exact value, not the maximum: a topic deleted and created
		// again under the same name starts over at epoch 0.
		a.epochs[k] = req.GetLeaderEpoch()
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

// wait blocks until the local broker was told epoch (or a later one) for
// k, or ctx is done.
func (a *Applied) wait(ctx context.Context, k key, epoch int32) error {
	for {
		a.mu.Lock()
		e, ok := a.epochs[k]
		changed := a.changed
		a.mu.Unlock()
		if ok && e >= epoch {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}
