package fetcher

import (
	"fmt"
	"slices"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/testbroker"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func cat(parts ...[]testbroker.Record) []testbroker.Record { return slices.Concat(parts...) }

type trunc struct {
	offset int64
	reset  bool
}

// TestResyncThenReplicate: whatever the follower's history, after the
// fetcher ran its log is the leader's from its own start on, and it got
// there by exactly the expected truncations, each fenced with the current
// epoch. Then it keeps following new records.
func TestResyncThenReplicate(t *testing.T) {
	tests := []struct {
		name string
		// epoch is the metadata's (and the leader's) epoch; broker 1 leads.
		epoch int32
		// leaderStart/leader and localEpoch/localStart/local are the logs
		// before the fetcher starts.
		leaderStart int64
		leader      []testbroker.Record
		localEpoch  int32
		localStart  int64
		local       []testbroker.Record
		want        []trunc
	}{
		{name: "empty follower", leader: run("a", 0, 0, 50)},
		{name: "behind in the same epoch", leader: run("a", 0, 0, 50), local: run("a", 0, 0, 20)},
		{
			// The follower led epoch 1 and wrote 4 records nobody got; the
			// new leader wrote its own from offset 5 in epoch 2.
			name: "uncommitted tail of an old epoch (KIP-101)", epoch: 2, localEpoch: 1,
			leader: cat(run("a", 0, 0, 5), run("b", 2, 5, 7)),
			local:  cat(run("a", 0, 0, 5), run("x", 1, 5, 4)),
			want:   []trunc{{5, false}},
		},
		{
			// KIP-279's double failover: the follower led epochs 1 and 3,
			// the leader led 2 and 4, each writing what the other never
			// saw. Asking once about epoch 3 gets "epoch 2 ends at 9" and
			// would keep offsets 5-8 written in epochs 1 and 3; the second
			// round asks about epoch 1 and truncates to 5, where the
			// leader holds a different epoch-0 record.
			name: "double failover (KIP-279)", epoch: 4, localEpoch: 3,
			leader: cat(run("a", 0, 0, 6), run("b", 2, 6, 3), run("b", 4, 9, 3)),
			local:  cat(run("a", 0, 0, 5), run("x", 1, 5, 3), run("x", 3, 8, 2)),
			want:   []trunc{{8, false}, {5, false}},
		},
		{
			// An unclean election: the leader's history shares no epoch
			// with the follower's, so nothing here is kept.
			name: "leader knows no epoch at or below ours", epoch: 2, localEpoch: 1,
			leader: run("b", 2, 0, 8),
			local:  run("x", 1, 0, 6),
			want:   []trunc{{0, false}},
		},
		{
			name: "no local epoch at or below the leader's answer", epoch: 4, localEpoch: 3,
			leader: cat(run("a", 1, 0, 2), run("b", 4, 2, 5)),
			local:  run("x", 3, 0, 4),
			want:   []trunc{{0, false}},
		},
		{
			// The leader's retention removed everything the follower has
			// and more: the follower restarts empty at the leader's start.
			name: "leader log starts past the follower's end", leaderStart: 100,
			leader: run("a", 0, 100, 20),
			local:  run("a", 0, 0, 10),
			want:   []trunc{{100, true}},
		},
		{
			// The follower got records of epoch 0 the new leader (epoch 1,
			// nothing written yet) never had.
			name: "ahead of the leader in the same epoch", epoch: 1,
			leader: run("a", 0, 0, 10),
			local:  run("a", 0, 0, 15),
			want:   []trunc{{10, false}},
		},
		{
			// No epochs here to ask about, yet the log ends past the
			// leader's: the fetch's OutOfRange cuts it back, and as that
			// is below the local start the log restarts there.
			name: "empty follower past the leader's end", localStart: 50,
			leader: run("a", 0, 0, 20),
			want:   []trunc{{20, false}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.electUntil(1, tc.epoch)
			leader := e.brokers[1]
			leader.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, tc.epoch, tc.leaderStart, tc.leader...)
			e.local.SetPartition(topic, 0, stratav1.Role_ROLE_FOLLOWER, tc.localEpoch, tc.localStart, tc.local...)
			e.start(Options{}, true)
			e.waitSame(leader, false)

			// The test broker records a truncation once its handler
			// returned, a moment after the log shows it: poll briefly.
			testutil.Eventually(t, 2*time.Second, func() error {
				var got []trunc
				for _, tr := range e.local.Stats().Truncates {
					got = append(got, trunc{tr.GetOffset(), tr.GetReset_()})
					if tr.GetLeaderEpoch() != tc.epoch {
						t.Errorf("truncate %v fenced with epoch %d, want %d", tr, tr.GetLeaderEpoch(), tc.epoch)
					}
				}
				if !slices.Equal(got, tc.want) {
					return fmt.Errorf("truncations %v, want %v", got, tc.want)
				}
				return nil
			})
			leader.Produce(topic, 0, "more-1", "more-2", "more-3")
			e.waitSame(leader, true)
			if s := e.local.Stats(); s.Refused != 0 {
				t.Fatalf("%d writes refused for their epoch", s.Refused)
			}
		})
	}
}

// TestOldLeaderTruncatesItsTail plays a failover through the metadata: this
// node leads, writes records nobody fetches, loses leadership to broker 3,
// and as a follower drops that tail for broker 3's history.
func TestOldLeaderTruncatesItsTail(t *testing.T) {
	e := newEnv(t)
	b1, b3 := e.brokers[1], e.brokers[3]
	b1.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 0, 0)
	e.start(Options{}, true)
	b1.Produce(topic, 0, "a0", "a1", "a2")
	e.waitSame(b1, true)

	// Epoch 1: this node leads and writes two records no one fetches.
	e.elect(localID)
	testutil.Eventually(t, 5*time.Second, func() error {
		if s := b1.Stats(); s.OpenStreams() != 0 {
			return fmt.Errorf("%d fetch streams still open on the old leader", s.OpenStreams())
		}
		return nil
	})
	testutil.Eventually(t, 5*time.Second, func() error {
		st, err := e.local.Status(topic, 0)
		if err != nil {
			return err
		}
		if st.GetRole() != stratav1.Role_ROLE_LEADER {
			return fmt.Errorf("local broker is %s", st.GetRole())
		}
		return nil
	})
	e.local.Produce(topic, 0, "x3", "x4")

	// Epoch 2: broker 3 leads with the first three records and its own.
	_, common, err := b1.Log(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	b3.SetPartition(topic, 0, stratav1.Role_ROLE_LEADER, 2, 0, cat(common, run("b", 2, 3, 4))...)
	e.elect(3)
	e.waitSame(b3, true)
	if got := e.local.Stats().Truncates; len(got) != 1 || got[0].GetOffset() != 3 {
		t.Fatalf("truncations %v, want one to 3", got)
	}
	b3.Produce(topic, 0, "b7")
	e.waitSame(b3, true)
}
