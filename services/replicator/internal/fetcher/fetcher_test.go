package fetcher

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

// TestStreamsPipelined: one stream carries everything, with several
// responses in flight at once; each response is acknowledged once, in
// order, with the local log end after appending it; the leader's high
// watermark reaches the local broker; the metrics see every byte. Small
// responses (MaxBytes) make many of them.
func TestStreamsPipelined(t *testing.T) {
	e := newEnv(t)
	leader := e.brokers[1]
	leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0, run("a", 0, 0, 300)...)
	e.start(Options{MaxBytes: 256}, true)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // more records while the follower streams
		defer wg.Done()
		for i := range 30 {
			vals := make([]string, 10)
			for j := range vals {
				vals[j] = fmt.Sprintf("live-%d-%d", i, j)
			}
			leader.Produce(topic, 0, vals...)
		}
	}()
	wg.Wait()
	e.waitSame(leader, true)

	s := leader.Stats()
	if len(s.Streams) != 1 {
		t.Fatalf("%d fetch streams, want 1", len(s.Streams))
	}
	st, got := s.Streams[0], e.fetches.responses()
	if st.MaxOutstanding < 2 {
		t.Fatalf("at most %d response in flight: not pipelined", st.MaxOutstanding)
	}
	if len(got) > st.Responses || len(st.Acks) > len(got) {
		t.Fatalf("%d acknowledgements for %d responses received, %d sent", len(st.Acks), len(got), st.Responses)
	}
	records, wantBytes := 0, 0
	for i, ack := range st.Acks {
		if want := got[i].base + int64(got[i].records); ack != want {
			t.Fatalf("ack %d is %d, want %d (response at %d with %d records)", i, ack, want, got[i].base, got[i].records)
		}
		records += got[i].records
	}
	if records != 600 {
		t.Fatalf("acknowledged %d records, want 600", records)
	}
	if len(got) < 600/20 {
		t.Fatalf("600 records in %d responses: MaxBytes not applied", len(got))
	}
	for _, r := range got {
		wantBytes += r.bytes
	}
	if ls := e.local.Stats(); ls.Refused != 0 || len(ls.Truncates) != 0 {
		t.Fatalf("local broker: %d refused writes, truncations %v", ls.Refused, ls.Truncates)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		bytes, lag, _, _, _ := e.obs.snapshot()
		if bytes != wantBytes || lag != 0 {
			return fmt.Errorf("observed %d bytes (want %d), lag %d", bytes, wantBytes, lag)
		}
		return nil
	})
}

// TestWaitsForLocalEpoch: until the applier has told the local broker the
// new epoch, the fetcher neither opens a stream nor writes; afterwards it
// catches up without one write refused for its epoch. Without the Applied
// tracker, PartitionStatus alone keeps it from writing too early.
func TestWaitsForLocalEpoch(t *testing.T) {
	for _, gated := range []bool{true, false} {
		t.Run(fmt.Sprintf("gated=%v", gated), func(t *testing.T) {
			e := newEnv(t)
			epoch := e.elect(1)
			leader := e.brokers[1]
			leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, epoch, 0, cat(run("a", 0, 0, 3), run("a", 1, 3, 5))...)
			e.local.SetPartition(topic, 0, stratav1.Role_ROLE_FOLLOWER, 0, 0, cat(run("a", 0, 0, 3), run("x", 0, 3, 2))...)
			e.local.SetApplyError(status.Error(codes.Unavailable, "restarting"))
			e.start(Options{}, gated)
			testutil.Eventually(t, 5*time.Second, func() error {
				if n := e.local.Stats().ApplyFailures; n < 3 {
					return fmt.Errorf("%d applies refused so far", n)
				}
				return nil
			})
			if s := e.local.Stats(); s.Appends+s.HWUpdates+len(s.Truncates)+s.Refused != 0 {
				t.Fatalf("local broker written before it was in epoch %d: %+v", epoch, s)
			}
			if n := len(leader.Stats().Streams); n != 0 {
				t.Fatalf("%d fetch streams opened before the local broker was ready", n)
			}
			e.local.SetApplyError(nil)
			e.waitSame(leader, true)
			if s := e.local.Stats(); s.Refused != 0 || len(s.Truncates) != 1 {
				t.Fatalf("after the apply: %d refused writes, truncations %v", s.Refused, s.Truncates)
			}
		})
	}
}

// TestWaitsForLeaderEpoch: a leader that has not reached the metadata's
// epoch yet refuses (FailedPrecondition); the fetcher backs off and gets
// through once it has. A new fetcher's first retries start at FirstBackoff,
// not MinBackoff: with MinBackoff at 10s, five refusals would take minutes.
func TestWaitsForLeaderEpoch(t *testing.T) {
	e := newEnv(t)
	epoch := e.elect(1)
	leader := e.brokers[1]
	leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, epoch-1, 0, run("a", 0, 0, 10)...)
	e.local.SetPartition(topic, 0, stratav1.Role_ROLE_FOLLOWER, 0, 0, run("a", 0, 0, 4)...)
	e.start(Options{MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second, FirstBackoff: time.Millisecond}, true)
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, _, _, _, errs := e.obs.snapshot(); errs["resync/"+codes.FailedPrecondition.String()] < 5 {
			return fmt.Errorf("errors so far %v", errs)
		}
		return nil
	})
	leader.SetRole(topic, 0, stratav1.Role_ROLE_LEADER, epoch)
	e.waitSame(leader, true)
}

// TestResumesWhenTheLocalBrokerIsBack: a local broker that restarted has
// forgotten its role, and the fetcher fails and backs off (here for 5-10s);
// once the applier has told the broker the partition's state again (the
// restart signal), the fetcher resumes at once, not after its backoff.
func TestResumesWhenTheLocalBrokerIsBack(t *testing.T) {
	e := newEnv(t)
	leader := e.brokers[1]
	leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0, run("a", 0, 0, 10)...)
	e.start(Options{MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second}, true)
	e.waitSame(leader, true)

	// The local broker restarts: it no longer follows (or is not back
	// yet); the next append fails.
	e.local.Restart()
	leader.Produce(topic, 0, "while-away")
	testutil.Eventually(t, 5*time.Second, func() error {
		_, _, _, _, errs := e.obs.snapshot()
		if errs["append/"+codes.FailedPrecondition.String()]+errs["append/"+codes.Unavailable.String()] == 0 {
			return fmt.Errorf("errors so far %v", errs)
		}
		return nil
	})
	back := time.Now()
	e.ready <- struct{}{}
	leader.Produce(topic, 0, "after")
	e.waitSame(leader, true)
	if took := time.Since(back); took > 3*time.Second {
		t.Fatalf("caught up %s after the state was applied again: the fetcher sat out its backoff", took)
	}
}

// TestIdleLeaderIsDropped: a leader that keeps the stream open but sends
// nothing for longer than the idle timeout (here 100ms; the broker's
// heartbeat is every 500ms) is given up and dialled again.
func TestIdleLeaderIsDropped(t *testing.T) {
	e := newEnv(t)
	leader := e.brokers[1]
	leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0)
	e.start(Options{IdleTimeout: 100 * time.Millisecond}, true)
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, _, _, _, errs := e.obs.snapshot(); errs["fetch/idle"] < 2 {
			return fmt.Errorf("errors so far %v", errs)
		}
		if n := len(leader.Stats().Streams); n < 3 {
			return fmt.Errorf("%d streams opened", n)
		}
		return nil
	})
	leader.Produce(topic, 0, "a", "b")
	e.waitSame(leader, false)
}

// TestFollowsLeadership: the fetcher stops when this node becomes the
// leader, a new one follows the next leader from its internal address,
// a dead leader is retried with backoff until the metadata moves on, and
// deleting the topic stops everything.
func TestFollowsLeadership(t *testing.T) {
	e := newEnv(t)
	b1, b3 := e.brokers[1], e.brokers[3]
	b1.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0, run("a", 0, 0, 10)...)
	e.start(Options{}, true)
	e.waitSame(b1, true)

	e.elect(localID)
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := b1.Stats().OpenStreams(); n != 0 {
			return fmt.Errorf("%d streams still open on the old leader", n)
		}
		if _, _, _, stopped, _ := e.obs.snapshot(); stopped[true] != 1 {
			return fmt.Errorf("fetcher stops %v", stopped)
		}
		return nil
	})
	b1.Produce(topic, 0, "never-fetched") // broker 1 lost its leadership: nobody reads this

	// Broker 3 leads epoch 2; broker 1 dies, which must not matter.
	b3.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 2, 0, cat(run("a", 0, 0, 10), run("c", 2, 10, 5))...)
	b1.Stop()
	e.elect(3)
	e.waitSame(b3, true)

	// Broker 3 dies: the fetcher retries (Unavailable) until the metadata
	// names a new leader.
	b3.Stop()
	testutil.Eventually(t, 5*time.Second, func() error {
		if _, _, _, _, errs := e.obs.snapshot(); errs["resync/"+codes.Unavailable.String()]+errs["fetch/"+codes.Unavailable.String()] < 2 {
			return fmt.Errorf("errors so far %v", errs)
		}
		return nil
	})

	e.apply(deleteTopic())
	testutil.Eventually(t, 5*time.Second, func() error {
		_, _, started, stopped, _ := e.obs.snapshot()
		if started != 2 || stopped[true] != 2 || stopped[false] != 0 {
			return fmt.Errorf("fetchers started %d, stopped %v", started, stopped)
		}
		return nil
	})
}

func TestDesired(t *testing.T) {
	e := newEnv(t)
	p := e.partition()
	got := Desired(localID, e.fsm.State())
	want := Assignment{Topic: topic, LeaderID: 1, LeaderAddr: e.brokers[1].Addr()}
	if len(got) != 1 || got[key{topic, 0}] != want {
		t.Fatalf("follower: %v, want %v", got, want)
	}
	if got := Desired(4, e.fsm.State()); len(got) != 0 {
		t.Fatalf("not a replica: %v", got)
	}
	if got := Desired(p.Leader, e.fsm.State()); len(got) != 0 {
		t.Fatalf("the leader: %v", got)
	}
	st := e.fsm.State()
	st.Brokers[1].BrokerInternalAddress = ""
	if got := Desired(localID, st); got[key{topic, 0}].LeaderAddr != st.Brokers[1].BrokerAddress {
		t.Fatalf("without an internal address: %v", got)
	}
	st.Brokers[1].Alive = false
	if got := Desired(localID, st); len(got) != 0 {
		t.Fatalf("dead leader: %v", got)
	}
	e.apply(electOffline(p))
	if got := Desired(localID, e.fsm.State()); len(got) != 0 {
		t.Fatalf("offline: %v", got)
	}
}
