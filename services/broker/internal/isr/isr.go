// Package isr is the partition leader's side of ISR changes: it watches
// the leader's view of its followers and asks the controller, through this
// node's replicator, to shrink the ISR when a follower stopped keeping up
// and to expand it when one caught up. The leader keeps using the
// committed ISR until the new one comes back through ApplyPartitionState,
// so a leader cut off from the controller cannot shrink its way into
// acknowledging acks=ALL alone.
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

// Proposer sends ISR changes to the controller; stratav1.ControllerClient
// satisfies it.
type Proposer interface {
	AlterPartition(ctx context.Context, in *stratav1.AlterPartitionRequest, opts ...grpc.CallOption) (*stratav1.AlterPartitionResponse, error)
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
	// "failed").
	OnChange func(kind string)
}

// Manager proposes ISR changes for the partitions this broker leads.
type Manager struct {
	o  Options
	p  Proposer
	lg *zap.Logger
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
	return &Manager{o: o, p: p, lg: lg.Named("isr")}
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
		for _, p := range m.o.Partitions() {
			if ctx.Err() != nil {
				return
			}
			m.check(ctx, p)
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
