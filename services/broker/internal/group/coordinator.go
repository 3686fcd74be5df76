package group

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// Cluster is what the coordinator asks of the rest of the broker.
type Cluster interface {
	// Partition is this broker's replica of a partition.
	Partition(topic string, id int32) (*partition.Partition, error)
	// Metadata describes topics (all when none are named): partition
	// counts and leaders.
	Metadata(ctx context.Context, topics ...string) (*stratav1.MetadataResponse, error)
	// CreateOffsetsTopic creates OffsetsTopic with partitions partitions,
	// replicated like any topic (the cluster's default replication factor,
	// min.insync.replicas 2 when there are three replicas); a topic that
	// already exists is success.
	CreateOffsetsTopic(ctx context.Context, partitions int32) error
	// HighWatermark is a partition's high watermark, asked of its leader;
	// an error wrapping ErrNoPartition when the partition does not exist.
	HighWatermark(ctx context.Context, topic string, partition int32) (int64, error)
}

// NotCoordinatorError answers a call for a group this broker does not
// coordinate; LeaderID is the coordinator (-1: none right now).
type NotCoordinatorError struct {
	Group      string
	LeaderID   int32
	LeaderAddr string
}

func (e *NotCoordinatorError) Error() string {
	if e.LeaderID < 0 {
		return fmt.Sprintf("group: no coordinator for group %q right now (its offsets partition has no leader); retry", e.Group)
	}
	return fmt.Sprintf("group: this broker does not coordinate group %q; broker %d (%s) does", e.Group, e.LeaderID, e.LeaderAddr)
}

// Options configures a Coordinator.
type Options struct {
	// OffsetsPartitions is the partition count OffsetsTopic is created
	// with; zero means 6. Once created, the topic's own count rules.
	OffsetsPartitions int32
	// LoadTimeout bounds the wait for a new coordinator's log to be fully
	// committed before it serves; zero means 10 s.
	LoadTimeout time.Duration
	// Now is the clock for commit times; nil means time.Now.
	Now func() time.Time
}

// Coordinator serves the groups whose offsets partitions this broker
// leads. Each such partition is a shard: its groups, rebuilt from the
// partition's log when this broker became its leader (in that leader
// epoch), and the live sessions of their members.
type Coordinator struct {
	cluster Cluster
	opts    Options
	lg      *zap.Logger
	closed  chan struct{}
	ctx     context.Context // ended by Close: batched writes in flight give up
	cancel  context.CancelFunc

	wg sync.WaitGroup // persistEpochAsync, refreshLoop
	m  *metrics

	mu     sync.Mutex
	shards map[int32]*shard
	nparts int32        // OffsetsTopic's partition count, once known
	hw     map[TP]int64 // high watermarks heard, for commit checks
}

// NewCoordinator builds a Coordinator. lg may be nil.
func NewCoordinator(c Cluster, opts Options, lg *zap.Logger) *Coordinator {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.OffsetsPartitions <= 0 {
		opts.OffsetsPartitions = 6
	}
	if opts.LoadTimeout <= 0 {
		opts.LoadTimeout = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	co := &Coordinator{cluster: c, opts: opts, lg: lg, closed: make(chan struct{}), shards: map[int32]*shard{}, hw: map[TP]int64{}, m: newMetrics()}
	co.ctx, co.cancel = context.WithCancel(context.Background())
	co.wg.Add(1)
	go co.refreshLoop()
	return co
}

// Close ends every session (Unavailable), stops static members' expiry
// timers and waits for epoch records in flight. Later calls fail.
func (c *Coordinator) Close() {
	c.mu.Lock()
	select {
	case <-c.closed:
		c.mu.Unlock()
		return
	default:
	}
	close(c.closed)
	c.cancel()
	for _, s := range c.shards {
		s.stop()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// shard is one offsets partition this broker leads, in one leader epoch.
type shard struct {
	p     *partition.Partition
	epoch int32

	loadOnce sync.Once
	loadDone chan struct{}
	loadErr  error

	wmu     sync.Mutex // guards queue and writing (write.go)
	queue   []*pendingWrite
	writing bool

	mu       sync.Mutex // guards everything below
	l        *loaded
	sessions map[string]chan struct{} // member id -> its session's notify
	timers   map[string]*time.Timer   // static member id -> expiry
	stopped  bool
}

// failed reports a load that ended in an error: the next call loads again.
func (s *shard) failed() bool {
	select {
	case <-s.loadDone:
		return s.loadErr != nil
	default:
		return false
	}
}

func (s *shard) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	for _, t := range s.timers {
		t.Stop()
	}
	for _, ch := range s.sessions {
		signal(ch)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// notifyLocked wakes the sessions of members whose assignment changed.
func (s *shard) notifyLocked(ms []*Member) {
	for _, m := range ms {
		if ch, ok := s.sessions[m.ID]; ok {
			signal(ch)
		}
	}
}

// offsetsPartitions is OffsetsTopic's partition count, creating the topic
// when it does not exist yet.
func (c *Coordinator) offsetsPartitions(ctx context.Context) (int32, error) {
	c.mu.Lock()
	n := c.nparts
	c.mu.Unlock()
	if n > 0 {
		return n, nil
	}
	md, err := c.cluster.Metadata(ctx, OffsetsTopic)
	if err == nil {
		for _, t := range md.GetTopics() {
			if t.GetName() == OffsetsTopic && len(t.GetPartitions()) > 0 {
				n = int32(len(t.GetPartitions()))
			}
		}
	}
	if n == 0 {
		if err := c.cluster.CreateOffsetsTopic(ctx, c.opts.OffsetsPartitions); err != nil {
			return 0, fmt.Errorf("group: create %s: %w", OffsetsTopic, err)
		}
		c.lg.Info("offsets topic created", zap.String("topic", OffsetsTopic), zap.Int32("partitions", c.opts.OffsetsPartitions))
		return 0, &NotCoordinatorError{LeaderID: -1}
	}
	c.mu.Lock()
	c.nparts = n
	c.mu.Unlock()
	return n, nil
}

// Find answers which broker coordinates group, and its offsets partition.
func (c *Coordinator) Find(ctx context.Context, group string) (*stratav1.FindCoordinatorResponse, error) {
	n, err := c.offsetsPartitions(ctx)
	if err != nil {
		var nc *NotCoordinatorError
		if errors.As(err, &nc) {
			nc.Group = group
		}
		return nil, err
	}
	id := PartitionFor(group, n)
	md, err := c.cluster.Metadata(ctx, OffsetsTopic)
	if err != nil {
		return nil, fmt.Errorf("group: find coordinator: %w", err)
	}
	for _, t := range md.GetTopics() {
		for _, pm := range t.GetPartitions() {
			if t.GetName() == OffsetsTopic && pm.GetPartition() == id {
				if pm.GetLeaderId() < 0 || pm.GetOffline() {
					return nil, &NotCoordinatorError{Group: group, LeaderID: -1}
				}
				return &stratav1.FindCoordinatorResponse{CoordinatorId: pm.GetLeaderId(), CoordinatorAddress: pm.GetLeaderAddress(), OffsetsPartition: id}, nil
			}
		}
	}
	return nil, &NotCoordinatorError{Group: group, LeaderID: -1}
}

// shardFor is the loaded shard holding group, or a NotCoordinatorError.
func (c *Coordinator) shardFor(ctx context.Context, group string) (*shard, error) {
	select {
	case <-c.closed:
		return nil, errStopping
	default:
	}
	n, err := c.offsetsPartitions(ctx)
	if err != nil {
		var nc *NotCoordinatorError
		if errors.As(err, &nc) {
			nc.Group = group
		}
		return nil, err
	}
	id := PartitionFor(group, n)
	p, err := c.cluster.Partition(OffsetsTopic, id)
	if err != nil {
		return nil, c.notCoordinator(ctx, group)
	}
	st := p.State()
	if st.Role != partition.RoleLeader || p.LeaseErr() != nil {
		return nil, &NotCoordinatorError{Group: group, LeaderID: st.LeaderID, LeaderAddr: st.LeaderAddr}
	}
	c.mu.Lock()
	s := c.shards[id]
	if s == nil || s.p != p || s.epoch != st.LeaderEpoch || s.failed() {
		if s != nil {
			s.stop()
		}
		s = &shard{p: p, epoch: st.LeaderEpoch, loadDone: make(chan struct{}),
			sessions: map[string]chan struct{}{}, timers: map[string]*time.Timer{}}
		c.shards[id] = s
	}
	c.mu.Unlock()
	s.loadOnce.Do(func() { go c.load(s) })
	select {
	case <-s.loadDone:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s.loadErr != nil {
		return nil, s.loadErr
	}
	return s, nil
}

// notCoordinator names the coordinator of group from the metadata.
func (c *Coordinator) notCoordinator(ctx context.Context, group string) error {
	if r, err := c.Find(ctx, group); err == nil {
		return &NotCoordinatorError{Group: group, LeaderID: r.GetCoordinatorId(), LeaderAddr: r.GetCoordinatorAddress()}
	}
	return &NotCoordinatorError{Group: group, LeaderID: -1}
}

// load rebuilds s's groups once the whole log is committed.
func (c *Coordinator) load(s *shard) {
	defer close(s.loadDone)
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.LoadTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	if end := s.p.LogEndOffset(); end > 0 {
		if err := s.p.WaitFor(ctx, end-1, nil); err != nil {
			s.loadErr = fmt.Errorf("group: %s/%d not fully committed yet: %w", OffsetsTopic, s.p.ID(), err)
			return
		}
	}
	l, err := load(ctx, s.p)
	if err != nil {
		s.loadErr = err
		return
	}
	s.mu.Lock()
	s.l = l
	s.mu.Unlock()
	c.lg.Info("groups loaded", zap.Int32("partition", s.p.ID()), zap.Int32("leader_epoch", s.epoch),
		zap.Int("groups", len(l.groups)), zap.Duration("took", time.Since(start)))
}

// errStopping answers calls once the broker is stopping.
var errStopping = errors.New("group: broker stopping")

// ErrStopping reports whether err is the coordinator stopping.
func ErrStopping(err error) bool { return errors.Is(err, errStopping) }

func newMemberID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

func toSet(tps []*stratav1.TopicPartitions) Set {
	s := Set{}
	for _, t := range tps {
		for _, p := range t.GetPartitions() {
			s[TP{t.GetTopic(), p}] = struct{}{}
		}
	}
	return s
}

func fromSet(s Set) []*stratav1.TopicPartitions {
	var out []*stratav1.TopicPartitions
	for _, tp := range s.Sorted() {
		if n := len(out); n > 0 && out[n-1].Topic == tp.Topic {
			out[n-1].Partitions = append(out[n-1].Partitions, tp.Partition)
			continue
		}
		out = append(out, &stratav1.TopicPartitions{Topic: tp.Topic, Partitions: []int32{tp.Partition}})
	}
	return out
}

// partitionCounts is the partition count of each existing topic named.
func (c *Coordinator) partitionCounts(ctx context.Context, topics []string) (map[string]int32, error) {
	md, err := c.cluster.Metadata(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("group: topic metadata: %w", err)
	}
	out := map[string]int32{}
	for _, t := range md.GetTopics() {
		out[t.GetName()] = int32(len(t.GetPartitions()))
	}
	return out, nil
}

// epochRecordLocked is the record of g's epoch, built under the shard's
// lock, for persistEpoch.
func epochRecordLocked(g *Group) *stratav1.Record {
	rec, err := groupRecord(g, false)
	if err != nil {
		return nil // proto.Marshal of two scalars does not fail
	}
	return rec
}

// persistEpoch records a group's epoch in its offsets partition, so that
// a later coordinator continues above it. A lost record only means a
// later coordinator starts from an older epoch; members rejoin it anyway.
func (c *Coordinator) persistEpoch(ctx context.Context, s *shard, group string, rec *stratav1.Record) {
	if rec == nil {
		return
	}
	if _, err := s.p.Produce(ctx, []*stratav1.Record{rec}, stratav1.Acks_ACKS_ALL); err != nil {
		c.lg.Warn("group epoch not recorded", zap.String("group", group), zap.Error(err))
	}
}

// persistEpochAsync is persistEpoch off the caller's path (a session's
// end, a timer), owned by the coordinator: Close waits for it.
func (c *Coordinator) persistEpochAsync(s *shard, group string, rec *stratav1.Record) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		go func() {
			select {
			case <-c.closed:
				cancel()
			case <-ctx.Done():
			}
		}()
		c.persistEpoch(ctx, s, group, rec)
	}()
}
