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
// PartitionStatus (a restarted broker may have forgotten the state), and
// a fetcher that failed retries as soon as its partition's state is
// applied again (a broker back from a restart: reapplied), not after its
// backoff.
type Applied struct {
	mu      sync.Mutex
	epochs  map[key]int32
	changed chan struct{}         // closed and replaced on every change
	next    map[key]chan struct{} // closed at the next Observe of the key (reapplied)
}

// NewApplied returns an empty tracker.
func NewApplied() *Applied {
	return &Applied{epochs: map[key]int32{}, changed: make(chan struct{}), next: map[key]chan struct{}{}}
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
	if ch, ok := a.next[k]; ok {
		close(ch)
		delete(a.next, k)
	}
}

// reapplied returns a channel closed the next time the applier tells the
// local broker k's state, whatever it is.
func (a *Applied) reapplied(k key) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.next[k]
	if !ok {
		ch = make(chan struct{})
		a.next[k] = ch
	}
	return ch
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
