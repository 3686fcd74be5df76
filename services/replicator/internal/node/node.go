// Package node wires one replicator together: Serf membership, the Raft
// metadata group, the controller (on the Raft leader), the applier that
// drives the local broker, the fetchers that replicate follower partitions
// into it, the gRPC API and metrics.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/stats"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/replicator/internal/applier"
	"github.com/strata-log/strata/services/replicator/internal/consensus"
	"github.com/strata-log/strata/services/replicator/internal/controller"
	"github.com/strata-log/strata/services/replicator/internal/fetcher"
	"github.com/strata-log/strata/services/replicator/internal/grpcserver"
	"github.com/strata-log/strata/services/replicator/internal/liveness"
	"github.com/strata-log/strata/services/replicator/internal/membership"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
	"github.com/strata-log/strata/services/replicator/internal/metrics"
)

// Options configure a Node. Listeners are owned (closed) by the node.
type Options struct {
	NodeID  int32
	DataDir string
	// RaftMetrics, when set, is served on /metrics: the process's
	// go-metrics sink, which hashicorp/raft writes to.
	RaftMetrics *metrics.RaftSink

	SerfBind, SerfAdvertise string
	Join                    []string
	ClusterKey              []byte

	RaftListener  net.Listener
	RaftAdvertise string

	GRPCListener net.Listener
	Advertise    string

	// BrokerAdvertise is the local broker's address for clients (a tag).
	BrokerAdvertise string
	// BrokerInternal is the local broker's address on the cluster network,
	// gossiped for the other nodes' fetchers; empty means BrokerAdvertise.
	BrokerInternal string
	// Broker is the local broker client.
	Broker applier.Broker
	// BrokerHealth, when set, is probed (internal/liveness) and what the
	// probe finds is gossiped (membership.SetBrokerUp): a node whose broker
	// is down leads nothing and is out of every ISR. Nil: no probe, the
	// broker counts as up while the node is.
	BrokerHealth liveness.Checker
	// Liveness tunes the probe; its OnChange and OnProbe are the node's.
	Liveness liveness.Options
	// Local is the local broker's client for the fetchers and
	// Leaders dials the partition leaders' brokers (fetcher.Conns, owned by
	// the caller). With both set the node replicates every partition it
	// follows into its broker; without, it runs the control plane only.
	Local   fetcher.Local
	Leaders fetcher.Dialer
	// Fetcher tunes the fetchers; its Observer defaults to the node's metrics.
	Fetcher fetcher.Options

	BootstrapExpect int
	Bootstrap       bool

	// ServerTLS requires and verifies client certs; ClientTLS presents this
	// node's replicator certificate. Both carry the cluster CA.
	ServerTLS, ClientTLS *tls.Config

	// Authorizer decides every gRPC call (pkg/acl). Nil means the default
	// policy, with its last-good cache under DataDir/acl.
	Authorizer *acl.Authorizer
	// GRPCLimits are the gRPC server's handshake deadline and stream
	// caps; zero fields mean grpcserver's defaults.
	GRPCLimits grpcserver.Limits
	// GRPCTracing instruments the gRPC server; nil means tracing off.
	GRPCTracing stats.Handler

	// MetricsListener serves /metrics when set.
	MetricsListener net.Listener
	// Pprof also serves /debug/pprof/ on MetricsListener.
	Pprof bool

	Controller controller.Options
	Applier    applier.Options
	TuneSerf   func(*memberlist.Config)
	TuneRaft   func(*raft.Config)
}

// Node is one running replicator.
type Node struct {
	lg   *zap.Logger
	opts Options

	fsm     *metadata.FSM
	raft    *consensus.Node
	members atomic.Pointer[membership.Membership]
	// storageID is the local broker's storage id last asked by the applier.
	storageID atomic.Pointer[string]
	ctrl      *controller.Controller
	grpc      *grpc.Server
	health    *health.Server
	fwd       *grpcserver.Forwarder
	metrics   *metrics.Metrics
	httpSrv   *telemetry.MetricsServer

	bootstrapped atomic.Bool
	ready        chan struct{} // closed once the metadata has caught up (waitCaughtUp)
	lastBehind   atomic.Int64  // unix nanoseconds when the metadata was last behind
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	closeOnce    sync.Once
}

// Start starts every part of the replicator.
func Start(opts Options, lg *zap.Logger) (_ *Node, err error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.With(zap.Int32("node", opts.NodeID))
	// n is not the named result: an error return must not nil it before
	// the deferred cleanup (and the goroutines already started) use it.
	n := &Node{lg: lg, opts: opts, fsm: metadata.NewFSM(lg), ready: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	grpcServing := false
	defer func() {
		if err == nil {
			return
		}
		// Listeners not yet handed to a server are closed here.
		if !grpcServing {
			err = errors.Join(err, opts.GRPCListener.Close())
		}
		if n.httpSrv == nil && opts.MetricsListener != nil {
			err = errors.Join(err, opts.MetricsListener.Close())
		}
		err = errors.Join(err, n.Kill())
	}()

	n.raft, err = consensus.New(consensus.Options{
		NodeID: opts.NodeID, Dir: opts.DataDir, Listener: opts.RaftListener, Advertise: opts.RaftAdvertise,
		ServerTLS: opts.ServerTLS, ClientTLS: opts.ClientTLS, Resolve: n.resolveRaftPeer, Known: n.isMember, Tune: opts.TuneRaft,
	}, n.fsm, lg)
	if err != nil {
		return nil, err
	}
	n.metrics = metrics.New(metrics.Sources{Members: n.membersByStatus, Raft: n.raft.Stats, State: n.fsm.State, RaftSink: opts.RaftMetrics})
	copts := opts.Controller
	copts.LocalID = opts.NodeID
	copts.OnAction = n.metrics.ControllerAction
	n.ctrl = controller.New(copts, n.fsm, n.raft, n, n.raft, lg)

	if opts.Bootstrap && !n.raft.HasState() {
		if err := n.raft.Bootstrap([]raft.Server{{ID: consensus.ServerID(opts.NodeID),
			Address: raft.ServerAddress(n.raftAdvertise()), Suffrage: raft.Voter}}); err != nil {
			return nil, fmt.Errorf("node: bootstrap: %w", err)
		}
	}

	authz := opts.Authorizer
	if authz == nil {
		if authz, err = acl.NewAuthorizer(acl.Options{CachePath: filepath.Join(opts.DataDir, "acl", "policy.cache")}, lg); err != nil {
			return nil, fmt.Errorf("node: authorizer: %w", err)
		}
	}
	ic, err := acl.NewInterceptor(authz, grpcserver.MethodTable(), lg)
	if err != nil {
		return nil, fmt.Errorf("node: authorizer: %w", err)
	}
	n.fwd = grpcserver.NewForwarder(opts.ClientTLS)
	n.grpc, n.health = grpcserver.New(opts.ServerTLS, ic, grpcserver.Deps{State: n.fsm, Controller: n.ctrl,
		Cluster: clusterView{n}, Forwarder: n.fwd, ISR: n, Limits: opts.GRPCLimits, Tracing: opts.GRPCTracing}, lg)
	grpcServing = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(opts.GRPCListener); err != nil {
			lg.Error("grpc server stopped", zap.Error(err))
		}
	}()
	if opts.MetricsListener != nil {
		n.httpSrv = telemetry.NewMetricsServer(telemetry.MetricsOptions{Registry: n.metrics.Registry, Pprof: opts.Pprof, Logger: lg})
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.httpSrv.Serve(opts.MetricsListener); err != nil {
				lg.Error("metrics server stopped", zap.Error(err))
			}
		}()
	}

	// The fetchers wait on what the applier has told the broker: both
	// follow the FSM, and a fetcher must not write before its epoch is
	// applied.
	applied := fetcher.NewApplied()
	aopts := opts.Applier
	aopts.OnStorageID = func(id string) {
		n.brokerStorage(id)
		if opts.Applier.OnStorageID != nil {
			opts.Applier.OnStorageID(id)
		}
	}
	aopts.OnApply = func(req *stratav1.ApplyPartitionStateRequest) {
		applied.Observe(req)
		if opts.Applier.OnApply != nil {
			opts.Applier.OnApply(req)
		}
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.leadershipLoop(ctx)
	}()
	go func() {
		defer n.wg.Done()
		n.waitCaughtUp(ctx)
	}()
	go func() {
		defer n.wg.Done()
		// A restarted node's FSM is stale until Raft has caught it up:
		// applying it would hand the broker leaderships it lost meanwhile.
		if !n.isReady(ctx) {
			return
		}
		applier.New(opts.NodeID, n.fsm, opts.Broker, aopts, lg).Run(ctx)
	}()
	if opts.Local != nil && opts.Leaders != nil {
		fopts := opts.Fetcher
		if fopts.Observer == nil {
			fopts.Observer = n.metrics.Replication
		}
		m := fetcher.New(opts.NodeID, n.fsm, opts.Local, opts.Leaders, applied, fopts, lg)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if n.isReady(ctx) {
				m.Run(ctx)
			}
		}()
	} else {
		lg.Info("no local Replica client: follower partitions are not replicated")
	}

	m, err := membership.New(membership.Options{
		NodeID: opts.NodeID, BindAddr: opts.SerfBind, AdvertiseAddr: opts.SerfAdvertise, Join: opts.Join,
		ClusterKey: opts.ClusterKey, BrokerAddr: opts.BrokerAdvertise, BrokerInternalAddr: opts.BrokerInternal, ReplicatorAddr: n.advertise(),
		RaftAddr: n.raftAdvertise(), Handler: n.onMemberEvent, Tune: opts.TuneSerf,
	}, lg)
	if err != nil {
		return nil, err
	}
	n.members.Store(m)
	if id := n.storageID.Load(); id != nil {
		if err := m.SetBrokerStorageID(*id); err != nil { // learnt before the member existed
			n.lg.Warn("gossiping the local broker's storage id", zap.String("storage_id", *id), zap.Error(err))
		}
	}
	if opts.BrokerHealth != nil {
		lopts := opts.Liveness
		lopts.OnChange, lopts.OnProbe = n.brokerLive, n.metrics.LocalBrokerProbe
		p := liveness.New(opts.BrokerHealth, lopts, lg)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			p.Run(ctx)
		}()
	}
	n.maybeBootstrap()
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING) // SERVING once caught up
	lg.Info("replicator started", zap.String("raft", n.raftAdvertise()), zap.String("grpc", n.advertise()),
		zap.Bool("raft_state", n.raft.HasState()))
	return n, nil
}

// waitCaughtUp marks the node ready (health SERVING, applier and fetchers
// started, metadata served) once Raft has caught its FSM up, holding for
// two checks in a row so a follower whose log is still arriving is not
// taken for current. Afterwards it keeps noting when the node last fell
// behind (lost contact with the leader): a node back from a network
// partition is current by Raft's measure as soon as the leader's first
// heartbeat arrives, a moment before the entries it missed do. Raft offers
// no notification for either, so it checks every 100ms.
func (n *Node) waitCaughtUp(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	streak := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.raft.CaughtUp() {
			streak = 0
			n.lastBehind.Store(time.Now().UnixNano())
			continue
		}
		if streak++; streak != 2 || n.Ready() {
			continue
		}
		close(n.ready)
		n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
		n.lg.Info("metadata caught up: serving", zap.Uint64("applied_index", n.raft.Stats().AppliedIdx))
	}
}

// current reports whether the metadata may be served now: caught up since
// start, in contact with the leader, and not behind within the last
// settle period (see waitCaughtUp).
func (n *Node) current() bool {
	const settle = 500 * time.Millisecond
	return n.Ready() && n.raft.CaughtUp() && time.Since(time.Unix(0, n.lastBehind.Load())) > settle
}

// isReady waits until the node is caught up; false when ctx ends first.
func (n *Node) isReady(ctx context.Context) bool {
	select {
	case <-n.ready:
		return true
	case <-ctx.Done():
		return false
	}
}

// Ready reports whether the node's metadata has caught up since it started.
func (n *Node) Ready() bool {
	select {
	case <-n.ready:
		return true
	default:
		return false
	}
}

func (n *Node) raftAdvertise() string {
	if n.opts.RaftAdvertise != "" {
		return n.opts.RaftAdvertise
	}
	return n.opts.RaftListener.Addr().String()
}

func (n *Node) advertise() string {
	if n.opts.Advertise != "" {
		return n.opts.Advertise
	}
	return n.opts.GRPCListener.Addr().String()
}

// Members lists the Serf members (empty before Serf starts).
func (n *Node) Members() []membership.Member {
	if m := n.members.Load(); m != nil {
		return m.Members()
	}
	return nil
}

func (n *Node) membersByStatus() map[membership.Status]int {
	if m := n.members.Load(); m != nil {
		return m.NumMembersByStatus()
	}
	return nil
}

// resolveRaftPeer maps a Raft address to the node id in the Serf tags of
// the member advertising it.
func (n *Node) resolveRaftPeer(addr raft.ServerAddress) (int32, bool) {
	for _, m := range n.Members() {
		if m.RaftAddr == string(addr) && m.Status == membership.StatusAlive {
			return m.ID, true
		}
	}
	return 0, false
}

// isMember reports whether id is a Serf member in any status.
func (n *Node) isMember(id int32) bool {
	for _, m := range n.Members() {
		if m.ID == id {
			return true
		}
	}
	return false
}

// brokerLive gossips what the liveness probe found of the local broker
// (from the probe's goroutine). Serf raises a member-update event on every
// member, which notifies the controller wherever it runs; the local one is
// notified here as well, so that a controller on this node acts without
// waiting for its own event.
func (n *Node) brokerLive(up bool) {
	n.metrics.LocalBrokerUp(up)
	if m := n.members.Load(); m != nil {
		if err := m.SetBrokerUp(up); err != nil {
			n.lg.Warn("gossiping the local broker's status", zap.Bool("up", up), zap.Error(err))
		}
	}
	n.ctrl.Notify()
}

// brokerStorage gossips the local broker's storage id, which the applier
// asks before applying any state (membership.TagBrokerStorage), and
// notifies the local controller as brokerLive does.
func (n *Node) brokerStorage(id string) {
	if prev := n.storageID.Swap(&id); prev != nil && *prev == id && n.members.Load() != nil {
		return // asked again after a failed call: nothing new to gossip
	}
	if m := n.members.Load(); m != nil {
		if err := m.SetBrokerStorageID(id); err != nil {
			n.lg.Warn("gossiping the local broker's storage id", zap.String("storage_id", id), zap.Error(err))
		}
	}
	n.ctrl.Notify()
}

// onMemberEvent runs on the membership event goroutine.
func (n *Node) onMemberEvent(membership.Event) {
	n.maybeBootstrap()
	n.ctrl.Notify()
}

// maybeBootstrap bootstraps Raft with every alive member once
// BootstrapExpect of them are seen, unless there is state already.
func (n *Node) maybeBootstrap() {
	if n.opts.BootstrapExpect <= 0 || n.bootstrapped.Load() || n.raft.HasState() {
		return
	}
	var servers []raft.Server
	for _, m := range n.Members() {
		if m.Status == membership.StatusAlive && m.RaftAddr != "" {
			servers = append(servers, raft.Server{ID: consensus.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddr), Suffrage: raft.Voter})
		}
	}
	if len(servers) < n.opts.BootstrapExpect {
		return
	}
	slices.SortFunc(servers, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	if err := n.raft.Bootstrap(servers); err != nil {
		n.lg.Error("raft bootstrap failed", zap.Error(err))
		return
	}
	n.bootstrapped.Store(true)
	n.lg.Info("raft bootstrapped", zap.Int("voters", len(servers)))
}

// leadershipLoop runs the controller while this node leads Raft.
func (n *Node) leadershipLoop(ctx context.Context) {
	var (
		stop func()
	)
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case leader := <-n.raft.LeaderCh():
			switch {
			case leader && stop == nil:
				cctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() {
					defer close(done)
					if n.barrier(cctx) {
						n.ctrl.Run(cctx)
					}
				}()
				stop = func() { cancel(); <-done }
			case !leader && stop != nil:
				stop()
				stop = nil
			}
		}
	}
}

// AlterPartition proposes an ISR change (shrink or expansion) for a
// partition led by leaderID in leaderEpoch (Kafka's AlterPartition); the
// gRPC Controller.AlterPartition lands here on the Raft leader. Elsewhere it
// returns consensus.ErrNotLeader; the FSM rejects it with
// metadata.ErrStaleEpoch when leaderEpoch is no longer current and
// metadata.ErrNotPartitionLeader when leaderID does not lead.
func (n *Node) AlterPartition(ctx context.Context, topic string, partition, leaderID, leaderEpoch int32, isr []int32) error {
	return n.raft.Propose(ctx, metadata.Command{Type: metadata.CmdChangeISR, ChangeISR: &metadata.ChangeISR{
		Topic: topic, Partition: partition, LeaderID: leaderID, LeaderEpoch: leaderEpoch, ISR: slices.Clone(isr)}})
}

// barrier waits until the FSM holds every committed entry, so that a new
// controller acts on current metadata. It retries until ctx is done and
// reports whether it succeeded.
func (n *Node) barrier(ctx context.Context) bool {
	for {
		err := n.raft.Barrier(5 * time.Second)
		if err == nil {
			return true
		}
		n.lg.Warn("raft barrier failed; retrying before starting the controller", zap.Error(err))
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// FSM exposes the metadata state machine (read-only use).
func (n *Node) FSM() *metadata.FSM { return n.fsm }

// Raft exposes the consensus node.
func (n *Node) Raft() *consensus.Node { return n.raft }

// MetricsAddr is the /metrics listener address, or nil.
func (n *Node) MetricsAddr() net.Addr {
	if n.httpSrv == nil {
		return nil
	}
	return n.opts.MetricsListener.Addr()
}

// Close shuts down gracefully: leave Serf (the controller then removes this
// node from Raft), stop serving, stop the loops, shut Raft down.
func (n *Node) Close(ctx context.Context) error {
	var err error
	n.closeOnce.Do(func() {
		if n.health != nil {
			n.health.Shutdown()
		}
		if m := n.members.Load(); m != nil {
			err = errors.Join(err, m.Close(ctx))
		}
		if n.grpc != nil {
			timeout := 5 * time.Second
			if d, ok := ctx.Deadline(); ok {
				timeout = time.Until(d)
			}
			grpcserver.Stop(n.grpc, timeout)
		}
		err = errors.Join(err, n.stopRest(ctx))
	})
	return err
}

// Kill stops everything abruptly, without leaving Serf: the others see
// this node fail. For tests and failed starts.
func (n *Node) Kill() error {
	var err error
	n.closeOnce.Do(func() {
		if m := n.members.Load(); m != nil {
			err = errors.Join(err, m.Kill())
		}
		if n.grpc != nil {
			n.grpc.Stop()
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = errors.Join(err, n.stopRest(ctx))
	})
	return err
}

func (n *Node) stopRest(ctx context.Context) error {
	var err error
	if n.httpSrv != nil {
		err = errors.Join(err, n.httpSrv.Shutdown(ctx))
	}
	n.cancel()
	n.wg.Wait()
	if n.raft != nil {
		err = errors.Join(err, n.raft.Close())
	}
	if n.fwd != nil {
		err = errors.Join(err, n.fwd.Close())
	}
	return err
}

// clusterView adapts the node to grpcserver.Cluster.
type clusterView struct{ n *Node }

func (c clusterView) IsLeader() bool { return c.n.raft.IsLeader() }

// Ready is true while the node's metadata is current: caught up since start
// and still in contact with the Raft leader, so that a node cut off from
// the cluster (or just back) does not answer from a stale FSM.
func (c clusterView) Ready() bool   { return c.n.current() }
func (c clusterView) Leader() int32 { return c.n.raft.Leader() }

func (c clusterView) RaftRole(id int32) string {
	if id == c.n.raft.Leader() {
		return "leader"
	}
	if id == c.n.opts.NodeID {
		return strings.ToLower(c.n.raft.Stats().State.String())
	}
	servers, err := c.n.raft.Servers()
	if err != nil {
		return "none"
	}
	for _, s := range servers {
		if s.ID == consensus.ServerID(id) {
			return "follower"
		}
	}
	return "none"
}
