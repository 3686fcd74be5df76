package fetcher

import (
	"context"
	"errors"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestAppliedWait(t *testing.T) {
	a := NewApplied()
	k := key{"t", 0}
	observe := func(role stratav1.Role, epoch int32) {
		a.Observe(&stratav1.ApplyPartitionStateRequest{Topic: "t", Role: role, LeaderEpoch: epoch})
	}
	waitFor := func(epoch int32) chan error {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			done <- a.wait(ctx, k, epoch)
		}()
		return done
	}

	observe(stratav1.Role_ROLE_FOLLOWER, 5)
	if err := <-waitFor(3); err != nil {
		t.Fatalf("epoch 5 applied, waiting for 3: %v", err)
	}
	done := waitFor(6)
	observe(stratav1.Role_ROLE_LEADER, 6) // any role in the epoch will do
	if err := <-done; err != nil {
		t.Fatalf("waiting for 6: %v", err)
	}
	// The topic is deleted and created again: epochs start over.
	observe(stratav1.Role_ROLE_NONE, 0)
	done = waitFor(0)
	observe(stratav1.Role_ROLE_FOLLOWER, 0)
	if err := <-done; err != nil {
		t.Fatalf("recreated topic: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := a.wait(ctx, k, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}
