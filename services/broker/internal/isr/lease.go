package isr

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// MetadataSource answers the cluster metadata as this node's replicator
// knows it; stratav1.MetadataClient satisfies it. The replicator answers
// only while it is in contact with the Raft leader.
type MetadataSource interface {
	Metadata(ctx context.Context, in *stratav1.MetadataRequest, opts ...grpc.CallOption) (*stratav1.MetadataResponse, error)
}

// LeaseOptions configure a LeaseKeeper.
type LeaseOptions struct {
	NodeID int32
	// Lease is the partitions' leader lease (partition.Options.LeaderLease).
	Lease time.Duration
	// Interval between renewals; default Lease/4, so that a renewal or two
	// may fail without the lease running out.
	Interval time.Duration
	// Partitions lists the broker's partitions.
	Partitions func() []*partition.Partition
	// OnEvent, when set, counts lease events: "expired" when a partition
	// this broker leads starts refusing produce, "renewed" when it accepts
	// produce again.
	OnEvent func(kind string)
	// Now is the clock the confirmations are stamped with; nil means
	// time.Now. It must be the partitions' clock.
	Now func() time.Time
}

// LeaseKeeper renews the leader lease of the partitions this broker leads
// (partition/lease.go): every Interval it asks this node's replicator for
// the metadata of their topics. Each partition the answer names this broker
// the leader of, in the epoch the broker has, is confirmed as of the moment
// the question was sent; one it names another leader or a newer epoch of
// loses its lease at once; one it leaves out (a deleted topic) or names in
// an older epoch (an answer from before the state the broker has) is not
// confirmed, and its lease runs out unless a new state comes. It reports each
// partition whose lease runs out, and each that gets it back, with a log
// line and OnEvent.
type LeaseKeeper struct {
	o   LeaseOptions
	src MetadataSource
	lg  *zap.Logger
	// expired holds the led partitions whose lease is out, as last
	// reported; lastErr is the last failed renewal and denied why the last
	// answer denied each partition. Only Run's goroutine uses them.
	expired map[*partition.Partition]bool
	lastErr error
	denied  map[*partition.Partition]string
}

// NewLeaseKeeper returns a LeaseKeeper; o.Lease must be > 0.
func NewLeaseKeeper(o LeaseOptions, src MetadataSource, lg *zap.Logger) *LeaseKeeper {
	if o.Interval <= 0 {
		o.Interval = o.Lease / 4
	}
	if o.OnEvent == nil {
		o.OnEvent = func(string) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if lg == nil {
		lg = zap.NewNop()
	}
	return &LeaseKeeper{o: o, src: src, lg: lg.Named("lease"), expired: map[*partition.Partition]bool{}, denied: map[*partition.Partition]string{}}
}

// Run renews every Interval until ctx ends.
func (k *LeaseKeeper) Run(ctx context.Context) {
	t := time.NewTicker(k.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		k.Renew(ctx)
	}
}

// led is a partition this broker leads, in the epoch it had when asked.
type led struct {
	p     *partition.Partition
	epoch int32
}

// Renew asks the replicator once and confirms or denies what it can, then
// reports the partitions whose lease state changed. A call slower than
// Interval is abandoned: its answer would be stale by the time it arrived.
func (k *LeaseKeeper) Renew(ctx context.Context) {
	byTopic := map[string]map[int32]led{}
	for _, p := range k.o.Partitions() {
		st := p.State()
		if st.Role != partition.RoleLeader {
			continue
		}
		if byTopic[p.Topic()] == nil {
			byTopic[p.Topic()] = map[int32]led{}
		}
		byTopic[p.Topic()][p.ID()] = led{p, st.LeaderEpoch}
	}
	clear(k.denied)
	if len(byTopic) > 0 {
		k.confirm(ctx, byTopic)
	}
	k.report(byTopic)
}

// confirm asks for the led partitions' topics and applies the answer to
// each of them.
func (k *LeaseKeeper) confirm(ctx context.Context, byTopic map[string]map[int32]led) {
	topics := make([]string, 0, len(byTopic))
	for name := range byTopic {
		topics = append(topics, name)
	}
	slices.Sort(topics)
	sent := k.o.Now()
	cctx, cancel := context.WithTimeout(ctx, k.o.Interval)
	defer cancel()
	resp, err := k.src.Metadata(cctx, &stratav1.MetadataRequest{Topics: topics})
	if err != nil {
		if ctx.Err() == nil {
			if k.lastErr == nil {
				k.lg.Warn("leader lease renewal failed; retrying", zap.Error(err))
			}
			k.lastErr = err
		}
		return
	}
	if k.lastErr != nil {
		k.lg.Info("leader lease renewal works again")
		k.lastErr = nil
	}
	answered := map[string]map[int32]*stratav1.PartitionMetadata{}
	for _, t := range resp.GetTopics() {
		answered[t.GetName()] = map[int32]*stratav1.PartitionMetadata{}
		for _, pm := range t.GetPartitions() {
			answered[t.GetName()][pm.GetPartition()] = pm
		}
	}
	for name, ps := range byTopic {
		for id, l := range ps {
			pm := answered[name][id]
			switch {
			case pm == nil:
				// Deleted: ROLE_NONE follows, or else the lease runs out.
			case pm.GetLeaderEpoch() < l.epoch:
				// The replicator answered from before the state it applied here.
			case pm.GetLeaderEpoch() == l.epoch && pm.GetLeaderId() == k.o.NodeID && !pm.GetOffline():
				l.p.ConfirmLeadership(l.epoch, sent)
			default:
				if l.p.DenyLeadership(l.epoch) {
					k.denied[l.p] = fmt.Sprintf("the replicator names leader %d in epoch %d", pm.GetLeaderId(), pm.GetLeaderEpoch())
				}
			}
		}
	}
}

// report logs and counts the led partitions whose lease ran out or came
// back since the last report, and forgets those no longer led.
func (k *LeaseKeeper) report(byTopic map[string]map[int32]led) {
	now := map[*partition.Partition]bool{}
	for _, ps := range byTopic {
		for _, l := range ps {
			p := l.p
			now[p] = true
			err := p.LeaseErr()
			switch {
			case err != nil && !k.expired[p]:
				k.expired[p] = true
				k.o.OnEvent("expired")
				why := zap.Skip()
				if d := k.denied[p]; d != "" {
					why = zap.String("denied", d)
				}
				k.lg.Warn("leader lease expired: refusing produce until this node's replicator confirms the leadership",
					zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Int32("leader_epoch", p.State().LeaderEpoch),
					zap.Duration("lease", k.o.Lease), why, zap.NamedError("last_renewal_error", k.lastErr), zap.Error(err))
			case err == nil && k.expired[p]:
				delete(k.expired, p)
				k.o.OnEvent("renewed")
				k.lg.Info("leader lease renewed: accepting produce again",
					zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Int32("leader_epoch", p.State().LeaderEpoch))
			}
		}
	}
	for p := range k.expired {
		if !now[p] {
			delete(k.expired, p)
		}
	}
}
