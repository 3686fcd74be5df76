package fetcher

import (
	"context"
	"fmt"

	"google.golang.org/grpc"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// maxResyncRounds bounds one attempt's exchange with a misbehaving leader.
// Every unfinished round truncates away at least one local epoch, and the
// truncations persist, so a long history merely spans several attempts.
const maxResyncRounds = 64

// resync truncates the local log to the longest prefix it shares with the
// leader's (Kafka KIP-101 with KIP-279's refinement) and returns the local
// log end offset to fetch from, and whether it truncated.
//
// One round: L is the local latest epoch. The leader answers (E, end): E
// is the largest epoch <= L it knows and end where E ends on the leader.
// The local broker answers (F, localEnd) for E about its own log.
//
//   - F == E: both logs hold epoch E, and each record at an offset was
//     written by that epoch's one leader, so they agree up to
//     min(end, localEnd); everything after is this follower's alone.
//   - F < E: this follower never saw epoch E; its epochs after F are ones
//     the leader does not know (they lie in (E, L]). Truncate to localEnd
//     (where F ends here) and ask again about F: this is KIP-279's fix for
//     the double failover, where asking only once about L would keep a
//     tail written in an epoch the new leader never had.
//   - E == -1 (the leader knows no epoch <= L) or F == -1 (this follower
//     has no epoch <= E): every record here was written in an epoch the
//     leader never had. Had any been committed, the leader, elected from
//     the ISR, would hold it with its epoch; so none was, and the log is
//     emptied down to its own start. The fetch then starts there: inside
//     the leader's log it mirrors it, below the leader's start the
//     OutOfRange restarts the log at the leader's start (fixRange). The
//     leader's start is not known at this point, which is why the log is
//     not reset to it directly.
//
// Truncating below the local log start empties the log and restarts it
// at that offset (the broker's rule), which is what a leader that ends
// below this follower's start asks for.
func (f *fetcher) resync(ctx context.Context, leader Leader, st *stratav1.PartitionStatusResponse) (leo int64, truncated bool, err error) {
	for round := 0; ; round++ {
		leo = st.GetLogEndOffset()
		latest := st.GetLatestLocalEpoch()
		if latest < 0 {
			return leo, truncated, nil // an empty log agrees with every leader
		}
		if round == maxResyncRounds {
			return leo, truncated, stepErr("resync", fmt.Errorf("%w: no agreement after %d rounds", ErrBadAnswer, round))
		}
		target, done, err := f.divergence(ctx, leader, st)
		if err != nil {
			return leo, truncated, err
		}
		if target < leo {
			if leo, err = f.truncate(ctx, target, false); err != nil {
				return leo, truncated, err
			}
			truncated = true
		}
		if done {
			return leo, truncated, nil
		}
		if st, err = f.localStatus(ctx, false); err != nil {
			return leo, truncated, err
		}
		if st.GetLatestLocalEpoch() >= latest {
			return leo, truncated, stepErr("resync", fmt.Errorf("%w: latest local epoch still %d after truncating to %d",
				ErrBadAnswer, st.GetLatestLocalEpoch(), target))
		}
	}
}

// divergence runs one round: the offset to truncate to and whether the
// logs then agree up to it (false: ask again about the new latest epoch).
func (f *fetcher) divergence(ctx context.Context, leader Leader, st *stratav1.PartitionStatusResponse) (target int64, done bool, err error) {
	latest := st.GetLatestLocalEpoch()
	ans, err := f.epochEnd(ctx, leader, latest, f.a.LeaderEpoch)
	if err != nil {
		return 0, false, stepErr("resync", fmt.Errorf("leader: %w", err))
	}
	e := ans.GetLeaderEpoch()
	if e > latest || (e >= 0 && ans.GetEndOffset() < 0) {
		return 0, false, stepErr("resync", fmt.Errorf("%w: leader answered (%d, %d) for epoch %d", ErrBadAnswer, e, ans.GetEndOffset(), latest))
	}
	if e < 0 {
		return st.GetLogStartOffset(), true, nil
	}
	loc, err := f.epochEnd(ctx, f.local, e, -1)
	if err != nil {
		return 0, false, stepErr("resync", fmt.Errorf("local: %w", err))
	}
	switch le := loc.GetLeaderEpoch(); {
	case le < 0:
		return st.GetLogStartOffset(), true, nil
	case le == e:
		return min(ans.GetEndOffset(), loc.GetEndOffset()), true, nil
	case le < e && loc.GetEndOffset() >= 0:
		return loc.GetEndOffset(), false, nil
	default:
		return 0, false, stepErr("resync", fmt.Errorf("%w: local broker answered (%d, %d) for epoch %d", ErrBadAnswer, le, loc.GetEndOffset(), e))
	}
}

// epochEnder is the OffsetForLeaderEpoch call of both Local and Leader.
type epochEnder interface {
	OffsetForLeaderEpoch(ctx context.Context, in *stratav1.OffsetForLeaderEpochRequest, opts ...grpc.CallOption) (*stratav1.OffsetForLeaderEpochResponse, error)
}

// epochEnd asks b where epoch ends; current is the epoch the fetcher
// follows (fencing, asked of the leader) or -1 (asked of the local broker
// about its own log).
func (f *fetcher) epochEnd(ctx context.Context, b epochEnder, epoch, current int32) (*stratav1.OffsetForLeaderEpochResponse, error) {
	cctx, cancel := context.WithTimeout(ctx, f.opts.CallTimeout)
	defer cancel()
	return b.OffsetForLeaderEpoch(cctx, &stratav1.OffsetForLeaderEpochRequest{Topic: f.a.Topic, Partition: f.a.Partition,
		LeaderEpoch: epoch, CurrentLeaderEpoch: current})
}
