package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// groupReader is a GroupConsumer polled by its own goroutine, keeping
// every value it was given.
type groupReader struct {
	gc     *client.GroupConsumer
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	seen map[string]int
	errs []error
}

func startGroupReader(t *testing.T, cl *client.Client, group string) *groupReader {
	t.Helper()
	gc, err := cl.NewGroupConsumer(client.GroupConsumerOptions{Group: group, Topics: []string{topic},
		AutoCommitInterval: 100 * time.Millisecond, RetryBackoff: 20 * time.Millisecond, RetryBackoffMax: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &groupReader{gc: gc, cancel: cancel, done: make(chan struct{}), seen: map[string]int{}}
	go func() {
		defer close(r.done)
		for {
			recs, err := gc.Poll(ctx)
			if ctx.Err() != nil || errors.Is(err, client.ErrClosed) {
				return
			}
			r.mu.Lock()
			if err != nil {
				r.errs = append(r.errs, err) // transient while the cluster fails over
			}
			for _, rec := range recs {
				r.seen[string(rec.Value)]++
			}
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = gc.Close(cctx) // the test's checks are done; a refused last commit changes nothing
	})
	return r
}

// missing is how many of acks no reader has returned.
func missing(acks []acked, rs ...*groupReader) int {
	n := 0
	for _, a := range acks {
		found := false
		for _, r := range rs {
			r.mu.Lock()
			found = found || r.seen[a.value] > 0
			r.mu.Unlock()
		}
		if !found {
			n++
		}
	}
	return n
}

// TestGroupCoordinatorFailover: two members of a group read a replicated
// topic; the broker coordinating the group (the leader of its
// __consumer_offsets partition) is killed. A new leader of that partition
// becomes the coordinator, rebuilds the group's offsets, the members find
// it (following NotCoordinator, or FindCoordinator again) and join it, and
// every record acknowledged before and after the kill is returned.
func TestGroupCoordinatorFailover(t *testing.T) {
	const group = "failover"
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 4, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	waitFullISR(t, cl, 30*time.Second)
	before := produceAll(t, cl, "before", 400)

	a := startGroupReader(t, cl, group)
	b := startGroupReader(t, cl, group)
	eventually(t, 60*time.Second, func() error {
		if n := missing(before, a, b); n > 0 {
			return fmt.Errorf("%d of %d records not returned", n, len(before))
		}
		return nil
	})
	fc, err := cl.FindCoordinator(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	killed := c.nodes[fc.GetCoordinatorId()-1]
	c.stopBroker(killed, syscall.SIGKILL)
	t.Logf("killed broker %d, the coordinator of %q", killed.id, group)

	after := produceAll(t, cl, "after", 400)
	start := time.Now()
	eventually(t, 90*time.Second, func() error {
		if n := missing(after, a, b); n > 0 {
			return fmt.Errorf("%d of %d records produced after the kill not returned", n, len(after))
		}
		return nil
	})
	t.Logf("every record produced after the kill returned %v after the last was acknowledged", time.Since(start))
	eventually(t, 60*time.Second, func() error {
		d, err := cl.DescribeGroup(ctx, group)
		switch {
		case err != nil:
			return err
		case d.GetCoordinatorId() == int32(killed.id):
			return fmt.Errorf("still coordinated by the killed broker %d", killed.id)
		case len(d.GetMembers()) != 2 || d.GetState() != "stable":
			return fmt.Errorf("%d members, state %s", len(d.GetMembers()), d.GetState())
		}
		return nil
	})
	if n := missing(before, a, b); n > 0 {
		t.Errorf("%d records returned before the kill are gone", n)
	}
	for _, r := range []*groupReader{a, b} {
		r.mu.Lock()
		for _, err := range r.errs {
			if errors.Is(err, client.ErrFenced) {
				t.Errorf("a member was fenced: %v", err)
			}
		}
		r.mu.Unlock()
	}
}
