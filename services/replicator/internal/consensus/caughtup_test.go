package consensus

import (
	"testing"
	"time"
)

func TestCaughtUpRule(t *testing.T) {
	for _, tc := range []struct {
		name        string
		leader      bool
		since       time.Duration
		commit      uint64
		applied     uint64
		start       uint64
		appliedTerm uint64
		term        uint64
		want        bool
	}{
		{name: "current follower", leader: true, since: 100 * time.Millisecond, commit: 50, applied: 50, start: 10, appliedTerm: 3, term: 3, want: true},
		{name: "no leader known", leader: false, commit: 50, applied: 50, appliedTerm: 3, term: 3},
		{name: "leader silent for 3s", leader: true, since: 3 * time.Second, commit: 50, applied: 50, appliedTerm: 3, term: 3},
		{name: "committed entries not applied yet", leader: true, commit: 50, applied: 49, appliedTerm: 3, term: 3},
		{name: "not past the log it started with", leader: true, commit: 50, applied: 50, start: 60, appliedTerm: 3, term: 3},
		// Back from a partition: the new leader's heartbeat capped the
		// commit index at this node's own last entry, which is applied,
		// but that entry is from an older term: the entries the cluster
		// committed meanwhile have not arrived.
		{name: "heartbeat after a partition", leader: true, since: 10 * time.Millisecond, commit: 50, applied: 50, appliedTerm: 3, term: 7},
		{name: "the new term's no-op applied", leader: true, since: 10 * time.Millisecond, commit: 90, applied: 90, appliedTerm: 7, term: 7, want: true},
		{name: "unknown applied term", leader: true, commit: 50, applied: 50, appliedTerm: 0, term: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := caughtUp(tc.leader, tc.since, tc.commit, tc.applied, tc.start, tc.appliedTerm, tc.term); got != tc.want {
				t.Errorf("caughtUp = %v, want %v", got, tc.want)
			}
		})
	}
}
