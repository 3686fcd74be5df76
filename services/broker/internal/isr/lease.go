package isr

import (
	"context"
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
// the metadata of their topics, and each partition the answer names this
// broker the leader of, in the epoch the broker has, is confirmed as of the
// moment the question was sent. It reports each partition whose lease runs
// out, and each that gets it back, with a log line and OnEvent.
type LeaseKeeper struct {
	o   LeaseOptions
	src MetadataSource
	lg  *zap.Logger
	// expired holds the led partitions whose lease is out, as last
	// reported; lastErr is the last failed renewal. Only Run's goroutine
	// uses them.
	expired map[*partition.Partition]bool
	lastErr error
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
	return &LeaseKeeper{o: o, src: src, lg: lg.Named("lease"), expired: map[*partition.Partition]bool{}}
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

// Renew asks the replicator once and confirms what it can, then reports
// the partitions whose lease state changed. A call slower than Interval is
// abandoned: its answer would be stale by the time it arrived.
func (k *LeaseKeeper) Renew(ctx context.Context) {
	led := map[string]map[int32]*partition.Partition{}
	for _, p := range k.o.Partitions() {
		if p.State().Role != partition.RoleLeader {
			continue
		}
		if led[p.Topic()] == nil {
			led[p.Topic()] = map[int32]*partition.Partition{}
		}
		led[p.Topic()][p.ID()] = p
	}
	if len(led) > 0 {
		k.confirm(ctx, led)
	}
	k.report(led)
}

// confirm asks for the led partitions' topics and confirms every
// partition the answer says this broker leads, while the answer lists
// this broker alive (the controller moves the leadership of a dead one).
func (k *LeaseKeeper) confirm(ctx context.Context, led map[string]map[int32]*partition.Partition) {
	topics := make([]string, 0, len(led))
	for name := range led {
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
	alive := slices.ContainsFunc(resp.GetBrokers(), func(b *stratav1.BrokerInfo) bool {
		return b.GetId() == k.o.NodeID && b.GetAlive()
	})
	if !alive {
		return
	}
	for _, t := range resp.GetTopics() {
		for _, pm := range t.GetPartitions() {
			p := led[t.GetName()][pm.GetPartition()]
			if p == nil || pm.GetLeaderId() != k.o.NodeID || pm.GetOffline() {
				continue
			}
			p.ConfirmLeadership(pm.GetLeaderEpoch(), sent)
		}
	}
}

// report logs and counts the led partitions whose lease ran out or came
// back since the last report, and forgets those no longer led.
func (k *LeaseKeeper) report(led map[string]map[int32]*partition.Partition) {
	now := map[*partition.Partition]bool{}
	for _, ps := range led {
		for _, p := range ps {
			now[p] = true
			err := p.LeaseErr()
			switch {
			case err != nil && !k.expired[p]:
				k.expired[p] = true
				k.o.OnEvent("expired")
				k.lg.Warn("leader lease expired: refusing produce until this node's replicator confirms the leadership",
					zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Int32("leader_epoch", p.State().LeaderEpoch),
					zap.Duration("lease", k.o.Lease), zap.NamedError("last_renewal_error", k.lastErr), zap.Error(err))
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
