package membership

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"go.uber.org/zap"

	"github.com/strata-log/strata/services/replicator/internal/logbridge"
)

// Options configure a Membership.
type Options struct {
	// NodeID is this node's id (> 0).
	NodeID int32
	// BindAddr is the host:port Serf listens on (TCP and UDP).
	BindAddr string
	// AdvertiseAddr is the host:port others reach this node at; empty means BindAddr.
	AdvertiseAddr string
	// Join is the seed list; joining is retried with backoff until one answers.
	Join []string
	// ClusterKey is the 32-byte gossip encryption key.
	ClusterKey []byte
	// BrokerAddr, ReplicatorAddr and RaftAddr are the advertised addresses gossiped as tags.
	BrokerAddr, ReplicatorAddr, RaftAddr string
	// BrokerInternalAddr is the broker's address on the cluster network
	// (tag broker_internal); empty means BrokerAddr.
	BrokerInternalAddr string
	// Handler receives every member event, from the single event goroutine.
	Handler func(Event)
	// Tune, if set, adjusts the memberlist config (tests shorten timings).
	Tune func(*memberlist.Config)
	// RejoinMax caps the join retry backoff; zero means 10s.
	RejoinMax time.Duration
}

// DecodeClusterKey decodes a base64 32-byte cluster key.
func DecodeClusterKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("membership: cluster key is not base64: %w", err)
	}
	if len(k) != 32 {
		return nil, fmt.Errorf("membership: cluster key must be 32 bytes, got %d", len(k))
	}
	return k, nil
}

// Membership is this node's Serf member.
type Membership struct {
	lg   *zap.Logger
	opts Options
	serf *serf.Serf

	// tagsMu serializes SetBrokerUp and SetBrokerStorageID; tags are the ones last given to Serf.
	tagsMu sync.Mutex
	tags   map[string]string

	events   chan serf.Event
	stop     chan struct{}
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// New creates the Serf member and starts the event and join goroutines.
func New(opts Options, lg *zap.Logger) (*Membership, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.Named("membership")
	host, portStr, err := net.SplitHostPort(opts.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("membership: bind address %q: %w", opts.BindAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("membership: bind port %q: %w", portStr, err)
	}
	keyring, err := memberlist.NewKeyring(nil, opts.ClusterKey)
	if err != nil {
		return nil, fmt.Errorf("membership: keyring: %w", err)
	}
	m := &Membership{lg: lg, opts: opts, events: make(chan serf.Event, 256), stop: make(chan struct{})}

	conf := serf.DefaultConfig()
	conf.Init()
	conf.NodeName = NodeName(opts.NodeID)
	conf.Tags = map[string]string{
		TagID:         strconv.Itoa(int(opts.NodeID)),
		TagBroker:     opts.BrokerAddr,
		TagReplicator: opts.ReplicatorAddr,
		TagRaft:       opts.RaftAddr,
	}
	if opts.BrokerInternalAddr != "" {
		conf.Tags[TagBrokerInternal] = opts.BrokerInternalAddr
	}
	m.tags = maps.Clone(conf.Tags)
	// Serf retries a failed member every ReconnectInterval (30 s by
	// default): after a network partition heals, that interval is how long
	// a node may stay "failed" (and out of every ISR). Members are few, so
	// trying every 5 s costs nothing.
	conf.ReconnectInterval = 5 * time.Second
	conf.EventCh = m.events
	serfLog := logbridge.StdLogger(lg.Named("serf"))
	conf.Logger = serfLog
	ml := conf.MemberlistConfig
	ml.BindAddr, ml.BindPort = host, port
	if opts.AdvertiseAddr != "" {
		ah, ap, err := net.SplitHostPort(opts.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("membership: advertise address %q: %w", opts.AdvertiseAddr, err)
		}
		if ml.AdvertisePort, err = strconv.Atoi(ap); err != nil {
			return nil, fmt.Errorf("membership: advertise port %q: %w", ap, err)
		}
		ml.AdvertiseAddr = ah
	}
	ml.Keyring = keyring
	ml.GossipVerifyIncoming, ml.GossipVerifyOutgoing = true, true
	ml.Logger = serfLog
	if opts.Tune != nil {
		opts.Tune(ml)
	}
	s, err := serf.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("membership: create serf: %w", err)
	}
	m.serf = s
	m.wg.Add(1)
	go m.eventLoop()
	if len(opts.Join) > 0 {
		m.wg.Add(1)
		go m.joinLoop()
	}
	return m, nil
}

// eventLoop is the only reader of the Serf event channel.
func (m *Membership) eventLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case e := <-m.events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			var typ EventType
			switch me.Type {
			case serf.EventMemberJoin:
				typ = EventJoin
			case serf.EventMemberLeave:
				typ = EventLeave
			case serf.EventMemberFailed:
				typ = EventFail
			case serf.EventMemberUpdate:
				typ = EventUpdate
			case serf.EventMemberReap:
				typ = EventReap
			default:
				continue
			}
			for _, sm := range me.Members {
				mem, err := fromSerf(sm)
				if err != nil {
					m.lg.Warn("ignoring member without id", zap.String("member", sm.Name), zap.Error(err))
					continue
				}
				m.lg.Info("member event", zap.Stringer("event", typ), zap.Int32("node", mem.ID), zap.Stringer("status", mem.Status))
				if m.opts.Handler != nil {
					m.opts.Handler(Event{Type: typ, Member: mem})
				}
			}
		}
	}
}

// joinLoop joins the seed list, retrying with capped exponential backoff
// until one seed answers or the member stops.
func (m *Membership) joinLoop() {
	defer m.wg.Done()
	maxWait := m.opts.RejoinMax
	if maxWait <= 0 {
		maxWait = 10 * time.Second
	}
	wait := 100 * time.Millisecond
	for {
		n, err := m.serf.Join(m.opts.Join, true)
		if err == nil || n > 0 {
			m.lg.Info("joined cluster", zap.Int("contacted", n), zap.Strings("seeds", m.opts.Join))
			return
		}
		m.lg.Debug("join failed, retrying", zap.Strings("seeds", m.opts.Join), zap.Duration("in", wait), zap.Error(err))
		t := time.NewTimer(wait)
		select {
		case <-m.stop:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// Members returns every known member carrying a valid id tag.
func (m *Membership) Members() []Member {
	var out []Member
	for _, sm := range m.serf.Members() {
		if mem, err := fromSerf(sm); err == nil {
			out = append(out, mem)
		}
	}
	return out
}

// SetBrokerUp gossips whether this node's broker is up (TagBrokerStatus),
// for the controller: a node whose broker is down leads nothing and is
// out of every ISR though its replicator stays a member and a Raft voter.
// Serf spreads the change to every member within a few gossip rounds (a
// fraction of a second on a LAN); it returns once the update has been
// broadcast, or with an error after Serf's broadcast timeout (the others
// still learn it from the next push-pull).
func (m *Membership) SetBrokerUp(up bool) error {
	v := BrokerUp
	if !up {
		v = BrokerDown
	}
	if err := m.setTag(TagBrokerStatus, v); err != nil {
		return fmt.Errorf("membership: gossip broker status %s: %w", v, err)
	}
	return nil
}

// SetBrokerStorageID gossips the storage id of this node's broker's data
// directory (TagBrokerStorage), for the controller to record: a broker
// whose id changed has a new, empty directory. It returns as SetBrokerUp.
func (m *Membership) SetBrokerStorageID(id string) error {
	if err := m.setTag(TagBrokerStorage, id); err != nil {
		return fmt.Errorf("membership: gossip broker storage id %s: %w", id, err)
	}
	return nil
}

func (m *Membership) setTag(k, v string) error {
	m.tagsMu.Lock()
	defer m.tagsMu.Unlock()
	if m.tags[k] == v {
		return nil
	}
	tags := maps.Clone(m.tags)
	tags[k] = v
	// Serf keeps the map and reads it on later updates: it gets its own.
	if err := m.serf.SetTags(maps.Clone(tags)); err != nil {
		return err
	}
	m.tags = tags
	return nil
}

// LocalID returns this node's id.
func (m *Membership) LocalID() int32 { return m.opts.NodeID }

// Close leaves the cluster gracefully (others see "left"), shuts Serf down
// and waits for the goroutines.
func (m *Membership) Close(ctx context.Context) error {
	var err error
	leaveDone := make(chan error, 1)
	go func() { leaveDone <- m.serf.Leave() }()
	select {
	case err = <-leaveDone:
	case <-ctx.Done():
		err = fmt.Errorf("membership: leave: %w", ctx.Err())
	}
	return errors.Join(err, m.shutdown())
}

// Kill shuts Serf down without leaving: the others see this node fail.
func (m *Membership) Kill() error { return m.shutdown() }

func (m *Membership) shutdown() error {
	var err error
	m.stopOnce.Do(func() {
		close(m.stop)
		err = m.serf.Shutdown()
		m.wg.Wait()
	})
	return err
}

// NumMembersByStatus counts members per status, for metrics.
func (m *Membership) NumMembersByStatus() map[Status]int {
	out := map[Status]int{}
	for _, mem := range m.Members() {
		out[mem.Status]++
	}
	return out
}
