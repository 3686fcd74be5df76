// Package controller is the cluster controller. It runs only on the Raft
// leader: it registers brokers and Raft servers as Serf reports members,
// moves partition leadership away from failed brokers, places the replicas
// of new topics, and periodically moves leadership back to preferred
// replicas. Every change it makes is a metadata command applied through Raft.
package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/replicator/internal/membership"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

// Proposer applies a command through Raft and returns its FSM result
// (nil when applied, the rejection otherwise).
type Proposer interface {
	Propose(ctx context.Context, cmd metadata.Command) error
}

// StateSource gives the current metadata.
type StateSource interface {
	State() *metadata.State
}

// MemberLister gives the Serf members.
type MemberLister interface {
	Members() []membership.Member
}

// RaftCluster manages the Raft configuration. Nil in unit tests that do
// not exercise it.
type RaftCluster interface {
	Servers() ([]raft.Server, error)
	AddVoter(id raft.ServerID, addr raft.ServerAddress) error
	AddNonvoter(id raft.ServerID, addr raft.ServerAddress) error
	RemoveServer(id raft.ServerID) error
}

// MaxVoters is the most Raft voters the controller keeps; more members join
// as non-voters.
const MaxVoters = 5

// Options configure a Controller. Zero values mean defaults.
type Options struct {
	// LocalID is this node's id; the controller never removes itself from Raft.
	LocalID int32
	// ReconcileInterval is how often a full reconcile runs besides member
	// events; default 10s.
	ReconcileInterval time.Duration
	// PreferredLeaderInterval is how often leadership moves back to
	// preferred replicas; default 30s, negative disables.
	PreferredLeaderInterval time.Duration
	// AbsentGrace is how long after gaining leadership a registered broker
	// unknown to Serf is left as it is before being marked dead; default 30s.
	AbsentGrace time.Duration
	// Clock defaults to the wall clock.
	Clock Clock
	// OnAction is called once per change the controller made, by kind.
	OnAction func(kind string)
}

// Action kinds reported to Options.OnAction.
const (
	ActionInitCluster     = "init_cluster"
	ActionRegisterBroker  = "register_broker"
	ActionBrokerDead      = "broker_dead"
	ActionAddVoter        = "add_voter"
	ActionAddNonvoter     = "add_nonvoter"
	ActionRemoveServer    = "remove_server"
	ActionElectLeader     = "elect_leader"
	ActionUncleanElection = "unclean_election"
	ActionOffline         = "partition_offline"
	ActionShrinkISR       = "isr_shrink"
	ActionPreferredLeader = "preferred_leader"
	ActionLeaderResigned  = "leader_resigned"
	ActionStorageReplaced = "storage_replaced"
	ActionCreateTopic     = "create_topic"
	ActionDeleteTopic     = "delete_topic"
	ActionAlterTopic      = "alter_topic"
	ActionProducerIDs     = "producer_ids"
)

// Controller makes the cluster's metadata follow its membership.
type Controller struct {
	lg      *zap.Logger
	opts    Options
	state   StateSource
	prop    Proposer
	members MemberLister
	cluster RaftCluster

	kick        chan struct{}
	leaderSince time.Time // set by Run; only Run's goroutine reads it
}

// New returns a controller. cluster may be nil.
func New(opts Options, state StateSource, prop Proposer, members MemberLister, cluster RaftCluster, lg *zap.Logger) *Controller {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = 10 * time.Second
	}
	if opts.PreferredLeaderInterval == 0 {
		opts.PreferredLeaderInterval = 30 * time.Second
	}
	if opts.AbsentGrace <= 0 {
		opts.AbsentGrace = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = RealClock{}
	}
	if opts.OnAction == nil {
		opts.OnAction = func(string) {}
	}
	return &Controller{lg: lg.Named("controller"), opts: opts, state: state, prop: prop,
		members: members, cluster: cluster, kick: make(chan struct{}, 1)}
}

// Notify asks a running controller to reconcile soon. It never blocks;
// notifications coalesce.
func (c *Controller) Notify() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Run reconciles on every notification and tick until ctx is done. Start it
// on gaining Raft leadership and cancel ctx on losing it.
func (c *Controller) Run(ctx context.Context) {
	c.leaderSince = c.opts.Clock.Now()
	c.lg.Info("controller started")
	defer c.lg.Info("controller stopped")
	reconcile := c.opts.Clock.NewTicker(c.opts.ReconcileInterval)
	defer reconcile.Stop()
	var rebalanceC <-chan time.Time
	if c.opts.PreferredLeaderInterval > 0 {
		t := c.opts.Clock.NewTicker(c.opts.PreferredLeaderInterval)
		defer t.Stop()
		rebalanceC = t.C()
	}
	c.Reconcile(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			c.Reconcile(ctx)
		case <-reconcile.C():
			c.Reconcile(ctx)
		case <-rebalanceC:
			c.RebalancePreferred(ctx)
		}
	}
}

func (c *Controller) propose(ctx context.Context, kind string, cmd metadata.Command) error {
	if err := c.prop.Propose(ctx, cmd); err != nil {
		return err
	}
	c.opts.OnAction(kind)
	return nil
}

// Reconcile makes one pass: cluster id, brokers and Raft servers from the
// members, then partition leadership from broker liveness. Failures are
// logged; the next pass retries.
func (c *Controller) Reconcile(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	st := c.state.State()
	if st.ClusterID == "" {
		if err := c.propose(ctx, ActionInitCluster, metadata.Command{Type: metadata.CmdInitCluster,
			InitCluster: &metadata.InitCluster{ClusterID: newClusterID()}}); err != nil {
			c.lg.Warn("init cluster id", zap.Error(err))
		}
	}
	c.reconcileMembers(ctx, st)
	c.reconcileRaft(ctx)
	c.reconcilePartitions(ctx)
}

func newClusterID() string { return strings.ToLower(rand.Text()) }

func (c *Controller) reconcileMembers(ctx context.Context, st *metadata.State) {
	seen := map[int32]bool{}
	for _, m := range c.members.Members() {
		seen[m.ID] = true
		b, registered := st.Brokers[m.ID]
		switch m.Status {
		case membership.StatusAlive:
			// Compared through the fallbacks, so that a member without the
			// internal tag is not registered again on every pass.
			same := registered && b.BrokerAddress == m.BrokerAddr && b.InternalAddress() == m.BrokerInternal() &&
				b.ReplicatorAddress == m.ReplicatorAddr && b.RaftAddress == m.RaftAddr &&
				(m.StorageID == "" || b.StorageID == m.StorageID)
			// A member whose replicator reports its broker down is dead
			// for leadership, ISRs and placement, as a failed node is,
			// but stays a Raft server: its replicator is up.
			alive := !m.BrokerDown
			switch {
			case same && b.Alive == alive:
				continue
			case same && !alive:
				c.markDead(ctx, m.ID, "broker_down")
				continue
			}
			if m.BrokerAddr == "" || m.ReplicatorAddr == "" || m.RaftAddr == "" {
				c.lg.Warn("member without addresses", zap.Int32("node", m.ID))
				continue
			}
			err := c.propose(ctx, ActionRegisterBroker, metadata.Command{Type: metadata.CmdRegisterBroker,
				RegisterBroker: &metadata.RegisterBroker{ID: m.ID, BrokerAddress: m.BrokerAddr, BrokerInternalAddress: m.BrokerInternalAddr,
					ReplicatorAddress: m.ReplicatorAddr, RaftAddress: m.RaftAddr, Alive: alive, StorageID: m.StorageID}})
			c.logResult("register broker", m.ID, err)
			if err == nil && registered && b.StorageID != "" && m.StorageID != "" && b.StorageID != m.StorageID {
				// The FSM took it out of every ISR and moved its leaderships
				// (metadata.RegisterBroker.StorageID).
				c.opts.OnAction(ActionStorageReplaced)
				c.lg.Warn("broker has a new, empty data directory: out of every ISR, its leaderships moved; it rejoins as a follower",
					zap.Int32("node", m.ID), zap.String("old_storage_id", b.StorageID), zap.String("storage_id", m.StorageID))
			}
		case membership.StatusFailed, membership.StatusLeft, membership.StatusLeaving:
			if registered && b.Alive {
				c.markDead(ctx, m.ID, m.Status.String())
			}
		}
	}
	if c.opts.Clock.Now().Sub(c.leaderSince) < c.opts.AbsentGrace {
		return
	}
	for id, b := range st.Brokers {
		if !seen[id] && b.Alive {
			c.markDead(ctx, id, "absent")
		}
	}
}

func (c *Controller) markDead(ctx context.Context, id int32, why string) {
	err := c.propose(ctx, ActionBrokerDead, metadata.Command{Type: metadata.CmdSetBrokerAlive,
		SetBrokerAlive: &metadata.SetBrokerAlive{ID: id, Alive: false}})
	c.lg.Info("broker dead", zap.Int32("node", id), zap.String("status", why), zap.Error(err))
}

func (c *Controller) logResult(what string, id int32, err error) {
	if err != nil {
		c.lg.Warn(what+" failed", zap.Int32("node", id), zap.Error(err))
	}
}

// reconcileRaft adds alive members to the Raft configuration (voters up to
// MaxVoters, then non-voters), promotes non-voters while there is room and
// removes members that left. Failed members stay: they may come back.
func (c *Controller) reconcileRaft(ctx context.Context) {
	if c.cluster == nil || ctx.Err() != nil {
		return
	}
	servers, err := c.cluster.Servers()
	if err != nil {
		c.lg.Warn("read raft configuration", zap.Error(err))
		return
	}
	byID := map[raft.ServerID]raft.Server{}
	voters := 0
	for _, s := range servers {
		byID[s.ID] = s
		if s.Suffrage == raft.Voter {
			voters++
		}
	}
	members := c.members.Members()
	slices.SortFunc(members, func(a, b membership.Member) int { return int(a.ID - b.ID) })
	for _, m := range members {
		id := raft.ServerID(strconv.Itoa(int(m.ID)))
		addr := raft.ServerAddress(m.RaftAddr)
		s, in := byID[id]
		switch m.Status {
		case membership.StatusAlive:
			if m.RaftAddr == "" {
				continue
			}
			switch {
			case in && s.Suffrage == raft.Voter && s.Address == addr:
			case (!in || s.Suffrage != raft.Voter) && voters < MaxVoters:
				if err := c.cluster.AddVoter(id, addr); err != nil {
					c.logResult("add voter", m.ID, err)
					continue
				}
				voters++
				c.opts.OnAction(ActionAddVoter)
			case in && s.Address == addr:
			case in && s.Suffrage == raft.Voter: // address changed
				if err := c.cluster.AddVoter(id, addr); err != nil {
					c.logResult("update voter address", m.ID, err)
				}
			default:
				if err := c.cluster.AddNonvoter(id, addr); err != nil {
					c.logResult("add nonvoter", m.ID, err)
					continue
				}
				c.opts.OnAction(ActionAddNonvoter)
			}
		case membership.StatusLeft:
			if !in || m.ID == c.opts.LocalID {
				continue
			}
			if err := c.cluster.RemoveServer(id); err != nil {
				c.logResult("remove server", m.ID, err)
				continue
			}
			if s.Suffrage == raft.Voter {
				voters--
			}
			c.opts.OnAction(ActionRemoveServer)
		}
	}
}

// reconcilePartitions moves leadership off dead brokers and back onto
// offline partitions, and drops dead followers from ISRs.
func (c *Controller) reconcilePartitions(ctx context.Context) {
	st := c.state.State()
	// Nodes whose replicator is a live member: a dead broker among them
	// is down alone (membership.Member.BrokerDown).
	members := map[int32]bool{}
	for _, m := range c.members.Members() {
		if m.Status == membership.StatusAlive {
			members[m.ID] = true
		}
	}
	for _, name := range st.TopicNames() {
		t := st.Topics[name]
		for _, p := range t.Partitions {
			if ctx.Err() != nil {
				return
			}
			cmd, kind, ok := planPartition(st, t, p, members)
			if !ok {
				continue
			}
			err := c.propose(ctx, kind, cmd)
			if err != nil {
				c.lg.Warn("partition change rejected", zap.String("topic", name), zap.Int32("partition", p.ID),
					zap.String("action", kind), zap.Error(err))
				continue
			}
			c.lg.Info("partition changed", zap.String("topic", name), zap.Int32("partition", p.ID),
				zap.String("action", kind), zap.Int32("old_leader", p.Leader), zap.Int32("old_epoch", p.LeaderEpoch))
		}
	}
}

// planPartition decides the one change partition p needs, if any.
// memberAlive tells which nodes' replicators are live Serf members.
func planPartition(st *metadata.State, t *metadata.Topic, p metadata.Partition, memberAlive map[int32]bool) (metadata.Command, string, bool) {
	aliveISR := make([]int32, 0, len(p.ISR))
	for _, id := range p.ISR {
		if st.IsAlive(id) {
			aliveISR = append(aliveISR, id)
		}
	}
	leaderAlive := p.Leader != metadata.NoLeader && st.IsAlive(p.Leader)
	if leaderAlive {
		if len(aliveISR) == len(p.ISR) {
			return metadata.Command{}, "", false
		}
		// A follower in the ISR died: the controller drops it (Kafka's
		// controlled ISR removal on broker failure), keeping the epoch.
		return metadata.Command{Type: metadata.CmdChangeISR, ChangeISR: &metadata.ChangeISR{
				Topic: t.Name, Partition: p.ID, LeaderID: p.Leader, LeaderEpoch: p.LeaderEpoch, ISR: aliveISR}},
			ActionShrinkISR, true
	}
	elect := &metadata.ElectLeader{Topic: t.Name, Partition: p.ID, ExpectedEpoch: p.LeaderEpoch}
	cmd := metadata.Command{Type: metadata.CmdElectLeader, ElectLeader: elect}
	// Candidates in replica order, so the preferred replica wins when eligible.
	for _, id := range p.Replicas {
		if slices.Contains(aliveISR, id) {
			elect.Leader, elect.ISR = id, aliveISR
			return cmd, ActionElectLeader, true
		}
	}
	if t.Config.UncleanLeaderElection {
		for _, id := range p.Replicas {
			if st.IsAlive(id) {
				elect.Leader, elect.ISR, elect.Unclean = id, []int32{id}, true
				return cmd, ActionUncleanElection, true
			}
		}
	}
	if p.Leader == metadata.NoLeader {
		return metadata.Command{}, "", false // stays offline until an ISR member returns
	}
	if memberAlive[p.Leader] {
		// Only the leader's broker is down, its replicator is up, and no
		// other replica may lead: the leader keeps the partition, in its
		// epoch. Offline would serve no better while the broker is down,
		// and would turn a false alarm (a probe that failed while the
		// broker served) into an outage.
		return metadata.Command{}, "", false
	}
	// No eligible leader: offline. The ISR keeps its last members so that
	// whichever of them returns first can lead without losing records.
	elect.Leader, elect.ISR = metadata.NoLeader, slices.Clone(p.ISR)
	return cmd, ActionOffline, true
}

// RebalancePreferred moves leadership back to each partition's preferred
// replica (Replicas[0]) where that replica is alive and in the ISR.
func (c *Controller) RebalancePreferred(ctx context.Context) {
	st := c.state.State()
	for _, name := range st.TopicNames() {
		for _, p := range st.Topics[name].Partitions {
			if ctx.Err() != nil {
				return
			}
			pref := p.Replicas[0]
			if p.Leader == pref || !st.IsAlive(pref) || !slices.Contains(p.ISR, pref) {
				continue
			}
			err := c.propose(ctx, ActionPreferredLeader, metadata.Command{Type: metadata.CmdElectLeader,
				ElectLeader: &metadata.ElectLeader{Topic: name, Partition: p.ID, ExpectedEpoch: p.LeaderEpoch,
					Leader: pref, ISR: slices.Clone(p.ISR)}})
			if err != nil {
				c.lg.Warn("preferred leader election rejected", zap.String("topic", name), zap.Int32("partition", p.ID), zap.Error(err))
			}
		}
	}
}

// ResignLeader moves leadership of a partition away from leaderID, which
// leads it in leaderEpoch and whose log cannot serve as the partition's copy
// (a corrupt record below its log end, a failed write: DESIGN.md §8). The
// FSM takes the leader out of the ISR and elects the first alive replica
// left in it with the epoch bumped, the election a failed node gets
// (metadata.ResignLeader); it refuses a stale epoch, a caller that does not
// lead, and a partition with no other alive in-sync replica
// (metadata.ErrIneligibleLeader), where the caller keeps leading. It
// returns the partition as committed.
func (c *Controller) ResignLeader(ctx context.Context, topic string, partition, leaderID, leaderEpoch int32, reason string) (metadata.Partition, error) {
	err := c.propose(ctx, ActionLeaderResigned, metadata.Command{Type: metadata.CmdResignLeader,
		ResignLeader: &metadata.ResignLeader{Topic: topic, Partition: partition, LeaderID: leaderID, LeaderEpoch: leaderEpoch}})
	lg := c.lg.With(zap.String("topic", topic), zap.Int32("partition", partition), zap.Int32("old_leader", leaderID),
		zap.Int32("old_epoch", leaderEpoch), zap.String("reason", reason))
	if err != nil {
		lg.Warn("leader resignation refused", zap.Error(err))
		return metadata.Partition{}, err
	}
	t, ok := c.state.State().Topics[topic]
	if !ok || int(partition) >= len(t.Partitions) {
		return metadata.Partition{}, errors.Join(metadata.ErrTopicNotFound, errors.New("controller: topic vanished after apply"))
	}
	p := t.Partitions[partition]
	lg.Warn("partition leader resigned; leadership moved", zap.Int32("leader", p.Leader), zap.Int32("leader_epoch", p.LeaderEpoch),
		zap.Int32s("isr", p.ISR))
	return p, nil
}

// CreateTopic places a new topic's replicas on the live brokers and applies
// it. Settings left zero are written down as topicconfig.Default's, and a
// zero replication factor is topicconfig.DefaultReplicationFactor of the
// live brokers, so that every broker applies the same, checked config
// whatever its own defaults.
func (c *Controller) CreateTopic(ctx context.Context, name string, cfg topicconfig.Config) (*metadata.Topic, error) {
	if err := topicconfig.ValidateName(name); err != nil {
		return nil, err
	}
	st := c.state.State()
	if _, ok := st.Topics[name]; ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrTopicExists, name)
	}
	live := st.AliveBrokerIDs()
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = topicconfig.DefaultReplicationFactor(len(live))
	}
	cfg = topicconfig.Default().Merge(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	assignment, err := Place(name, cfg.Partitions, cfg.ReplicationFactor, live)
	if err != nil {
		return nil, err
	}
	if err := c.propose(ctx, ActionCreateTopic, metadata.Command{Type: metadata.CmdCreateTopic,
		CreateTopic: &metadata.CreateTopic{Name: name, ID: newTopicID(), Config: cfg, Assignment: assignment}}); err != nil {
		return nil, err
	}
	return c.topic(name)
}

// newTopicID is a random 128-bit topic identity, in hex.
func newTopicID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// DeleteTopic deletes a topic.
func (c *Controller) DeleteTopic(ctx context.Context, name string) error {
	return c.propose(ctx, ActionDeleteTopic, metadata.Command{Type: metadata.CmdDeleteTopic,
		DeleteTopic: &metadata.DeleteTopic{Name: name}})
}

// AlterTopic changes a topic's config (non-zero fields replace). A change
// any broker would refuse is refused here, before it is proposed (and
// again when applied).
func (c *Controller) AlterTopic(ctx context.Context, name string, cfg topicconfig.Config) (*metadata.Topic, error) {
	t, ok := c.state.State().Topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", metadata.ErrTopicNotFound, name)
	}
	if _, err := t.Config.Alter(cfg); err != nil {
		return nil, err
	}
	if err := c.propose(ctx, ActionAlterTopic, metadata.Command{Type: metadata.CmdAlterTopic,
		AlterTopic: &metadata.AlterTopic{Name: name, Config: cfg}}); err != nil {
		return nil, err
	}
	return c.topic(name)
}

func (c *Controller) topic(name string) (*metadata.Topic, error) {
	t, ok := c.state.State().Topics[name]
	if !ok {
		return nil, errors.Join(metadata.ErrTopicNotFound, errors.New("controller: topic vanished after apply"))
	}
	return t, nil
}

// ProducerIDBlock is how many producer ids AllocateProducerIDs hands out.
const ProducerIDBlock = 1000

// AllocateProducerIDs commits a block of ProducerIDBlock producer ids for
// brokerID through Raft and returns its first id: no block overlaps
// another, ever. A block another call took between reading the state and
// committing is retried from the new state.
func (c *Controller) AllocateProducerIDs(ctx context.Context, brokerID int32) (int64, int32, error) {
	for {
		first := c.state.State().NextProducerIDOrFirst()
		err := c.propose(ctx, ActionProducerIDs, metadata.Command{Type: metadata.CmdAllocateProducerIDs,
			AllocateProducerIDs: &metadata.AllocateProducerIDs{BrokerID: brokerID, First: first, Count: ProducerIDBlock}})
		if errors.Is(err, metadata.ErrProducerIDConflict) && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return 0, 0, err
		}
		c.lg.Info("producer ids allocated", zap.Int32("broker", brokerID), zap.Int64("first", first), zap.Int32("count", ProducerIDBlock))
		return first, ProducerIDBlock, nil
	}
}
