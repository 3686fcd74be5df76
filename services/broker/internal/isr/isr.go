// Package isr is the partition leader's side of ISR changes: it watches
// the leader's view of its followers and asks the controller, through this
// node's replicator, to shrink the ISR when a follower stopped keeping up
// and to expand it when one caught up. The leader keeps using the
// committed ISR until the new one comes back through ApplyPartitionState,
// so a leader cut off from the controller cannot shrink its way into
// acknowledging acks=ALL alone.
//
// On the same checks it watches the leader's log: a leader whose log is
// damaged (a corrupt record below its log end, or a failed write) asks the
// controller to move leadership to another in-sync replica (DESIGN.md
// §8), and repairs once it is told it follows.
//
// LeaseKeeper (lease.go) renews the leader lease of the partitions this
// broker leads from its replicator's metadata, so that a leader whose
// replicator is gone stops accepting produce (partition/lease.go).
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

// Proposer sends ISR changes and resignations to the controller;
// stratav1.ControllerClient satisfies it.
type Proposer interface {
	AlterPartition(ctx context.Context, in *stratav1.AlterPartitionRequest, opts ...grpc.CallOption) (*stratav1.AlterPartitionResponse, error)
	ResignLeadership(ctx context.Context, in *stratav1.ResignLeadershipRequest, opts ...grpc.CallOption) (*stratav1.ResignLeadershipResponse, error)
}

// Options configure a Manager.
type Options struct {
	NodeID int32
	// LagMax is how long a follower may go without catching up to the
	// leader's log end before it leaves the ISR.
	LagMax time.Duration
	// Interval between checks; default LagMax/4, at least 100ms.
	Interval time.Duration
	// CallTimeout bounds one proposal; default 5s.
	CallTimeout time.Duration
	// Partitions lists the broker's partitions.
	Partitions func() []*partition.Partition
	// OnChange, when set, counts proposals by outcome ("shrink", "expand",
	// "resign", "failed").
	OnChange func(kind string)
}

// Manager proposes ISR changes for the partitions this broker leads.
type Manager struct {
	o  Options
	p  Proposer
	lg *zap.Logger
	// resigned is the leader epoch each partition last resigned in: the
	// new state takes a moment to arrive, and asking again in that epoch
	// would only be refused. Only Run's goroutine uses it.
	resigned map[*partition.Partition]int32
}

// New returns a Manager.
func New(o Options, p Proposer, lg *zap.Logger) *Manager {
	if o.Interval <= 0 {
		o.Interval = max(o.LagMax/4, 100*time.Millisecond)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	if o.OnChange == nil {
		o.OnChange = func(string) {}
	}
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Manager{o: o, p: p, lg: lg.Named("isr"), resigned: map[*partition.Partition]int32{}}
}

// Run checks every Interval until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ps := m.o.Partitions()
		for _, p := range ps {
			if ctx.Err() != nil {
				return
			}
			if !m.resign(ctx, p) {
				m.check(ctx, p)
			}
		}
		m.forget(ps)
	}
}

// resign asks the controller to move leadership away from this broker
// when it leads p with a damaged log and another in-sync replica can take
// over (partition.ProposedResignation), and reports whether leadership is
// moving (then no ISR change is worth proposing in this epoch). A refusal
// (the epoch moved on, no other alive in-sync replica) or a failed call is
// tried again on the next check; meanwhile the leader serves what is
// intact and keeps its ISR current.
func (m *Manager) resign(ctx context.Context, p *partition.Partition) bool {
	epoch, why, ok := p.ProposedResignation()
	if !ok {
		return false
	}
	if e, done := m.resigned[p]; done && e == epoch {
		return true
	}
	lg := m.lg.With(zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Int32("leader_epoch", epoch),
		zap.Int32s("isr", p.State().ISR), zap.NamedError("damage", why))
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	resp, err := m.p.ResignLeadership(cctx, &stratav1.ResignLeadershipRequest{
		Topic: p.Topic(), Partition: p.ID(), LeaderId: m.o.NodeID, LeaderEpoch: epoch, Reason: why.Error(),
	})
	if err != nil {
		m.o.OnChange("failed")
		lg.Warn("leader with a damaged log could not resign; serving what is intact", zap.Error(err))
		return false
	}
	m.resigned[p] = epoch
	m.o.OnChange("resign")
	lg.Warn("leader with a damaged log resigned", zap.Int32("new_leader", resp.GetLeaderId()),
		zap.Int32("new_epoch", resp.GetLeaderEpoch()), zap.Int32s("new_isr", resp.GetIsr()))
	return true
}

// forget drops the resignations of partitions no longer listed (deleted).
func (m *Manager) forget(ps []*partition.Partition) {
	if len(m.resigned) == 0 {
		return
	}
	listed := make(map[*partition.Partition]bool, len(ps))
	for _, p := range ps {
		listed[p] = true
	}
	for p := range m.resigned {
		if !listed[p] {
			delete(m.resigned, p)
		}
	}
}

// check proposes one partition's ISR change, if it needs one. A proposal
// the controller refuses (a stale epoch: leadership moved) is dropped; the
// next check starts from whatever state arrived meanwhile.
func (m *Manager) check(ctx context.Context, p *partition.Partition) {
	epoch, isr, ok := p.ProposedISR(m.o.LagMax)
	if !ok {
		return
	}
	cur := p.State().ISR
	kind := "shrink"
	if len(isr) > len(cur) {
		kind = "expand"
	}
	cctx, cancel := context.WithTimeout(ctx, m.o.CallTimeout)
	defer cancel()
	resp, err := m.p.AlterPartition(cctx, &stratav1.AlterPartitionRequest{
		Topic: p.Topic(), Partition: p.ID(), LeaderId: m.o.NodeID, LeaderEpoch: epoch, Isr: isr,
	})
	lg := m.lg.With(zap.String("topic", p.Topic()), zap.Int32("partition", p.ID()), zap.Int32("leader_epoch", epoch),
		zap.Int32s("isr", cur), zap.Int32s("proposed", isr))
	if err != nil {
		m.o.OnChange("failed")
		lg.Warn("ISR change not committed", zap.String("kind", kind), zap.Error(err))
		return
	}
	m.o.OnChange(kind)
	lg.Info("ISR change committed", zap.String("kind", kind), zap.Int32s("committed", resp.GetIsr()),
		zap.String("matches", fmt.Sprint(slices.Equal(resp.GetIsr(), isr))))
}
