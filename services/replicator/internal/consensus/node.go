// Package consensus runs the replicators' Raft group (hashicorp/raft with a
// bbolt log and stable store and a file snapshot store) over a mutual-TLS
// stream layer, and applies metadata commands through it.
package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.uber.org/zap"

	"github.com/strata-log/strata/services/replicator/internal/logbridge"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

// Errors of the consensus node.
var (
	ErrNotLeader = errors.New("consensus: not the raft leader")
)

// Options configure a Node.
type Options struct {
	// NodeID is this node's id; its Raft server id is the decimal string.
	NodeID int32
	// Dir holds raft.db and snapshots/.
	Dir string
	// Listener is the plain TCP listener for Raft (the node closes it).
	Listener net.Listener
	// Advertise is the address peers dial; empty means the listener's.
	Advertise string
	// ServerTLS and ClientTLS carry this node's replicator certificate.
	ServerTLS, ClientTLS *tls.Config
	// Resolve maps a Raft address to the node id serving it (from Serf
	// tags); the node falls back to its Raft configuration.
	Resolve PeerResolver
	// Known reports whether a node id is a Serf member; the node also
	// accepts the ids of its Raft configuration.
	Known PeerKnown
	// Tune, if set, adjusts the Raft config (tests shorten timeouts).
	Tune func(*raft.Config)
	// ApplyTimeout bounds enqueueing a command; default 10s.
	ApplyTimeout time.Duration
}

// Node is this replicator's Raft member.
type Node struct {
	lg       *zap.Logger
	opts     Options
	raft     *raft.Raft
	store    *raftboltdb.BoltStore
	trans    *raft.NetworkTransport
	hasState atomic.Bool
	// started holds n.raft once NewRaft returned: the stream layer's
	// identity checks (resolve, known) run on transport goroutines that
	// start before it.
	started atomic.Pointer[raft.Raft]
	// startIndex is the last log index stored when the node started: it is
	// not caught up before it has applied at least that far.
	startIndex uint64
	// termCache is the newest applied entry's term as appliedTerm last
	// read it.
	termCache atomic.Pointer[indexTerm]
}

// ServerID is the Raft server id of node id.
func ServerID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// New opens the stores and starts Raft with fsm. A node with stored state
// resumes with it; a new one waits to be bootstrapped or added.
func New(opts Options, fsm raft.FSM, lg *zap.Logger) (n *Node, err error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.Named("raft")
	if opts.ApplyTimeout <= 0 {
		opts.ApplyTimeout = 10 * time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("consensus: data dir: %w", err)
	}
	n = &Node{lg: lg, opts: opts}
	defer func() {
		if err != nil {
			var cerr error
			if n.trans != nil {
				cerr = n.trans.Close()
			} else {
				cerr = opts.Listener.Close()
			}
			err = errors.Join(err, cerr, n.closeStores())
		}
	}()
	hl := logbridge.HCLogger("raft", lg)
	n.store, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(opts.Dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("consensus: open raft.db: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(opts.Dir, 2, hl)
	if err != nil {
		return nil, fmt.Errorf("consensus: snapshot store: %w", err)
	}
	var adv net.Addr
	if opts.Advertise != "" {
		if adv, err = net.ResolveTCPAddr("tcp", opts.Advertise); err != nil {
			return nil, fmt.Errorf("consensus: advertise address %q: %w", opts.Advertise, err)
		}
	}
	stream := NewStreamLayer(opts.Listener, adv, opts.ServerTLS, opts.ClientTLS, n.resolve, n.known)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl})
	hasState, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("consensus: read raft state: %w", err)
	}
	n.hasState.Store(hasState)
	conf := raft.DefaultConfig()
	conf.LocalID = ServerID(opts.NodeID)
	conf.Logger = hl
	if opts.Tune != nil {
		opts.Tune(conf)
	}
	if n.startIndex, err = n.store.LastIndex(); err != nil {
		return nil, fmt.Errorf("consensus: read raft log: %w", err)
	}
	n.raft, err = raft.NewRaft(conf, fsm, n.store, n.store, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("consensus: start raft: %w", err)
	}
	n.started.Store(n.raft)
	return n, nil
}

func (n *Node) resolve(addr raft.ServerAddress) (int32, bool) {
	if n.opts.Resolve != nil {
		if id, ok := n.opts.Resolve(addr); ok {
			return id, true
		}
	}
	r := n.started.Load()
	if r == nil {
		return 0, false
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.Address == addr {
			id, err := strconv.ParseInt(string(s.ID), 10, 32)
			return int32(id), err == nil
		}
	}
	return 0, false
}

func (n *Node) known(id int32) bool {
	if n.opts.Known != nil && n.opts.Known(id) {
		return true
	}
	r := n.started.Load()
	if r == nil {
		return false
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.ID == ServerID(id) {
			return true
		}
	}
	return false
}

// HasState reports whether the node started with stored Raft state.
func (n *Node) HasState() bool { return n.hasState.Load() }

// Bootstrap starts a new cluster with servers as voters. It does nothing
// for a node that has state already.
func (n *Node) Bootstrap(servers []raft.Server) error {
	if n.hasState.Load() {
		return nil
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return nil
	}
	if err == nil {
		n.hasState.Store(true)
	}
	return err
}

// Propose applies cmd through Raft and waits until it is committed and
// applied here, returning the FSM's verdict.
func (n *Node) Propose(ctx context.Context, cmd metadata.Command) error {
	b, err := cmd.Encode()
	if err != nil {
		return err
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	f := n.raft.Apply(b, n.opts.ApplyTimeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return fmt.Errorf("consensus: apply: %w", err)
	}
	if rerr, ok := f.Response().(error); ok {
		return rerr
	}
	return nil
}

// Barrier waits until every entry committed before it is applied to the
// FSM here. A new leader calls it before acting on the metadata.
func (n *Node) Barrier(timeout time.Duration) error { return n.raft.Barrier(timeout).Error() }

// Servers returns the latest Raft configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// AddVoter adds (or promotes, or re-addresses) a voter.
func (n *Node) AddVoter(id raft.ServerID, addr raft.ServerAddress) error {
	return n.raft.AddVoter(id, addr, 0, n.opts.ApplyTimeout).Error()
}

// AddNonvoter adds a non-voting member.
func (n *Node) AddNonvoter(id raft.ServerID, addr raft.ServerAddress) error {
	return n.raft.AddNonvoter(id, addr, 0, n.opts.ApplyTimeout).Error()
}

// RemoveServer removes a member.
func (n *Node) RemoveServer(id raft.ServerID) error {
	return n.raft.RemoveServer(id, 0, n.opts.ApplyTimeout).Error()
}

// LeaderCh delivers true on gaining and false on losing leadership.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// IsLeader reports whether this node is the Raft leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the current leader's node id, or -1 if unknown.
func (n *Node) Leader() int32 {
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return -1
	}
	v, err := strconv.ParseInt(string(id), 10, 32)
	if err != nil {
		return -1
	}
	return int32(v)
}

// CaughtUp reports whether this node's metadata is as fresh as the
// cluster's, as far as Raft can tell without a round trip: a leader is
// known, a follower heard from it within the last two seconds, every entry
// it knows committed (at least everything in its log when it started) has
// been applied to the FSM, and the newest applied entry was written in the
// current term.
//
// The last condition is what tells a node back from a network partition:
// the new leader's first heartbeat makes it look current (Raft caps its
// commit index at its own last index, which it has applied) while its log
// still lacks what the cluster committed without it. CI's chaos saw a
// replicator so confirm a broker's leader lease on an epoch the controller
// had replaced 15 s before, and the broker serve a consumer group's
// committed offsets from then. A leader starts every term with a no-op
// entry, so once an entry of the current term is applied here, so is every
// entry committed before the term began.
func (n *Node) CaughtUp() bool {
	_, id := n.raft.LeaderWithID()
	since := time.Duration(0)
	if n.raft.State() != raft.Leader {
		since = time.Since(n.raft.LastContact())
	}
	applied := n.raft.AppliedIndex()
	return caughtUp(id != "", since, n.raft.CommitIndex(), applied, n.startIndex, n.appliedTerm(applied), n.raft.CurrentTerm())
}

// caughtUp is CaughtUp's rule; since is how long ago a follower last heard
// from its leader (0 on the leader).
func caughtUp(leaderKnown bool, since time.Duration, commit, applied, startIndex, appliedTerm, currentTerm uint64) bool {
	return leaderKnown && since <= 2*time.Second && commit >= startIndex && applied >= commit && appliedTerm == currentTerm
}

// appliedTerm is the term of the log entry at index applied (the FSM's
// newest), 0 when unknown. The answer for the last index asked is kept:
// CaughtUp runs on every metadata call.
func (n *Node) appliedTerm(applied uint64) uint64 {
	if c := n.termCache.Load(); c != nil && c.index == applied {
		return c.term
	}
	var term uint64
	var l raft.Log
	if err := n.store.GetLog(applied, &l); err == nil {
		term = l.Term
	} else if st := n.raft.Stats(); st["last_snapshot_index"] == strconv.FormatUint(applied, 10) {
		// Restored from a snapshot with no entry after it yet.
		term, _ = strconv.ParseUint(st["last_snapshot_term"], 10, 64)
	}
	n.termCache.Store(&indexTerm{index: applied, term: term})
	return term
}

// indexTerm is a log index and the term of its entry.
type indexTerm struct{ index, term uint64 }

// Stats is a snapshot of Raft's state for metrics and status.
type Stats struct {
	State       raft.RaftState
	Term        uint64
	CommitIndex uint64
	AppliedIdx  uint64
	LastContact time.Time
}

// Stats returns Raft's current numbers.
func (n *Node) Stats() Stats {
	term, _ := strconv.ParseUint(n.raft.Stats()["term"], 10, 64) // always a number
	return Stats{State: n.raft.State(), Term: term, CommitIndex: n.raft.CommitIndex(),
		AppliedIdx: n.raft.AppliedIndex(), LastContact: n.raft.LastContact()}
}

// Close shuts Raft down and closes the transport and stores.
func (n *Node) Close() error {
	err := n.raft.Shutdown().Error()
	// Close the pooled outbound connections too, so that the peers'
	// connection handlers see EOF instead of waiting on an idle stream.
	n.trans.CloseStreams()
	return errors.Join(err, n.trans.Close(), n.closeStores())
}

func (n *Node) closeStores() error {
	if n.store == nil {
		return nil
	}
	err := n.store.Close()
	n.store = nil
	return err
}
