package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Assignor is how a group's coordinator divides partitions among members.
type Assignor int

const (
	// AssignorCooperativeSticky (the default) balances partitions and
	// moves as few as it can; members keep consuming the partitions they
	// keep while the group rebalances.
	AssignorCooperativeSticky Assignor = iota
	// AssignorRange gives each member a range of each topic's partitions.
	AssignorRange
	// AssignorRoundRobin deals every subscribed partition in turn.
	AssignorRoundRobin
)

func (a Assignor) proto() stratav1.Assignor {
	switch a {
	case AssignorRange:
		return stratav1.Assignor_ASSIGNOR_RANGE
	case AssignorRoundRobin:
		return stratav1.Assignor_ASSIGNOR_ROUND_ROBIN
	default:
		return stratav1.Assignor_ASSIGNOR_COOPERATIVE_STICKY
	}
}

// String returns cooperative-sticky, range or round-robin.
func (a Assignor) String() string {
	switch a {
	case AssignorRange:
		return "range"
	case AssignorRoundRobin:
		return "round-robin"
	default:
		return "cooperative-sticky"
	}
}

// ParseAssignor parses cooperative-sticky (or empty), range and
// round-robin.
func ParseAssignor(s string) (Assignor, error) {
	switch s {
	case "", "cooperative-sticky", "sticky":
		return AssignorCooperativeSticky, nil
	case "range":
		return AssignorRange, nil
	case "round-robin", "roundrobin":
		return AssignorRoundRobin, nil
	}
	return 0, &ConfigError{Field: "Assignor", Msg: "must be cooperative-sticky, range or round-robin, got " + quote(s)}
}

// GroupConsumerOptions configures a GroupConsumer. Zero values mean the
// defaults.
type GroupConsumerOptions struct {
	// Group is the consumer group's name (the rules of topic names);
	// required.
	Group string
	// Topics are the topics the member consumes; at least one. A topic
	// that does not exist yet is consumed once it does and the group
	// rebalances.
	Topics []string
	// InstanceID makes the member static: when it ends its session
	// without Close's leave (a crash, a restart, Close itself) the
	// coordinator keeps its partitions for SessionTimeout, and a member
	// joining with the same InstanceID within it takes them back without a
	// rebalance. Two live members with one InstanceID fence each other:
	// the older one ends with ErrFenced. Empty: a dynamic member, whose
	// partitions move as soon as its session ends.
	InstanceID string
	// ClientID names the application in group describe.
	ClientID string
	// Assignor is the assignment strategy; default cooperative sticky. The
	// group uses the one its first member asked for.
	Assignor Assignor
	// SessionTimeout is how long the coordinator waits for a heartbeat
	// before removing the member (and how long it keeps a static member's
	// partitions); between 1 s and 5 min, default 10 s.
	SessionTimeout time.Duration
	// StartFrom is where the member starts in a partition the group has
	// no committed offset for: Earliest() (the zero value) or Latest().
	StartFrom Position
	// AutoCommitInterval is how often the offsets of what the application
	// has had are committed; default 5 s.
	AutoCommitInterval time.Duration
	// DisableAutoCommit leaves every commit to the application (Commit,
	// CommitAsync): nothing is committed by the interval, on a revocation
	// or by Close. Commit from OnRevoked to keep a partition's progress
	// when it moves.
	DisableAutoCommit bool
	// OnAssigned is called, from Poll, with partitions the member was
	// given, once their start offsets are known and before any of their
	// records is returned.
	OnAssigned func(ctx context.Context, partitions []TopicPartition)
	// OnRevoked is called, from Poll or Close, with partitions the member
	// gives up, before their offsets are committed and the coordinator is
	// told; no record of theirs is returned after it. Commit may be
	// called from it (they are still owned).
	OnRevoked func(ctx context.Context, partitions []TopicPartition)
	// MaxPollRecords bounds the records one Poll returns; default 500.
	MaxPollRecords int
	// MaxBatchRecords and MaxBatchBytes size the brokers' stream messages;
	// zero means the broker defaults (500 records, 1 MiB).
	MaxBatchRecords int32
	MaxBatchBytes   int32
	// RetryBackoff and RetryBackoffMax pace rejoins and reconnects;
	// defaults 50ms, 2s.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
}

func (o *GroupConsumerOptions) validate() error {
	switch {
	case o.Group == "":
		return &ConfigError{Field: "Group", Msg: "a group name is required"}
	case len(o.Topics) == 0:
		return &ConfigError{Field: "Topics", Msg: "at least one topic is required"}
	case o.SessionTimeout != 0 && (o.SessionTimeout < time.Second || o.SessionTimeout > 5*time.Minute):
		return &ConfigError{Field: "SessionTimeout", Msg: fmt.Sprintf("%v, want between 1s and 5m", o.SessionTimeout)}
	case o.StartFrom.kind != posEarliest && o.StartFrom.kind != posLatest:
		return &ConfigError{Field: "StartFrom", Msg: "must be Earliest() or Latest(), got " + o.StartFrom.String()}
	}
	for _, t := range o.Topics {
		if t == "" {
			return &ConfigError{Field: "Topics", Msg: "empty topic name"}
		}
	}
	return nil
}

func (o *GroupConsumerOptions) setDefaults() {
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.AutoCommitInterval <= 0 {
		o.AutoCommitInterval = 5 * time.Second
	}
	if o.MaxPollRecords <= 0 {
		o.MaxPollRecords = 500
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 50 * time.Millisecond
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = 2 * time.Second
	}
}

// GroupConsumer is a member of a consumer group: it consumes the
// partitions the group's coordinator assigns it, from the group's
// committed offsets, and commits what the application has had.
//
// Delivery is at least once: a partition's new owner starts at the last
// committed offset, and an offset is committed only for records Poll
// returned before the current Poll (or, with Commit, CommitAsync and
// Close, every record Poll returned). After a crash, records since the
// last commit are delivered again; no record is skipped.
//
// Rebalances are incremental: partitions the member keeps are consumed
// without a pause, and a partition moves only after its old owner gave it
// up (OnRevoked, then a commit, then it tells the coordinator). A
// revocation is applied by Poll: call Poll regularly, since the new owner
// waits for it.
//
// Poll, Close and the callbacks run on the application's goroutine and
// must not be called concurrently; Commit and CommitAsync may be called
// from any goroutine.
type GroupConsumer struct {
	c  *Client
	o  GroupConsumerOptions
	lg *zap.Logger

	// ctx is cancelled by Close and by the client's Close; every goroutine
	// of the consumer derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// joinCtx bounds finding the coordinator; Close cancels it so that a
	// member not in a session stops at once.
	joinCtx    context.Context
	joinCancel context.CancelFunc

	recs        chan groupBatch // from the partitions' pumps, read by Poll
	fetchErrs   chan fetchErr   // a partition's fetcher ended
	wake        chan struct{}   // Poll: a new assignment, or the consumer failed
	ackNow      chan struct{}   // session: send an Ack now
	leave       chan struct{}   // closed by Close: the session leaves and ends
	sessionDone chan struct{}   // closed when the session goroutine returns

	commitMu sync.Mutex // one commit at a time

	mu         sync.Mutex
	memberID   string
	epoch      int64  // the newest member epoch heard
	gen        uint64 // numbers the sessions joined
	coord      string // the coordinator's address, once found
	next       *pendingAssignment
	appliedGen uint64 // the session of appliedSeq
	appliedSeq uint64 // the last assignment applied
	parts      map[TopicPartition]*groupPartition
	failed     error // sticky: the consumer cannot go on

	// Poll's own.
	held   []groupBatch // received but not yet returned (MaxPollRecords)
	closed bool
	once   sync.Once
}

// pendingAssignment is an assignment received and not yet applied.
type pendingAssignment struct {
	gen   uint64
	seq   uint64
	parts map[TopicPartition]bool
}

// groupPartition is a partition the member owns, and its positions.
type groupPartition struct {
	tp     TopicPartition
	cs     *Consumer
	cancel context.CancelFunc // stops the pump
	done   chan struct{}      // closed when the pump returns

	// Guarded by GroupConsumer.mu.
	returned  int64 // the offset after the last record Poll returned (the start before any)
	consumed  int64 // returned as of the start of the latest Poll: what the application has had
	committed int64 // the offset last committed or found committed; -1 none
	stopped   bool  // the fetcher is stopped (revoking, or it failed)
	broken    bool  // the fetcher failed; the next Poll restarts it
}

type groupBatch struct {
	gp   *groupPartition
	recs []Record
}

type fetchErr struct {
	gp  *groupPartition
	err error
}

// NewGroupConsumer joins a consumer group. Joining, assignments and
// errors of the membership surface through Poll.
func (c *Client) NewGroupConsumer(o GroupConsumerOptions) (*GroupConsumer, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	o.Topics = slices.Clone(o.Topics)
	ctx, cancel := context.WithCancel(c.ctx)
	joinCtx, joinCancel := context.WithCancel(ctx)
	gc := &GroupConsumer{
		c: c, o: o, lg: c.lg.With(zap.String("group", o.Group)),
		ctx: ctx, cancel: cancel, joinCtx: joinCtx, joinCancel: joinCancel,
		recs:        make(chan groupBatch, 16),
		fetchErrs:   make(chan fetchErr, 1),
		wake:        make(chan struct{}, 1),
		ackNow:      make(chan struct{}, 1),
		leave:       make(chan struct{}),
		sessionDone: make(chan struct{}),
		parts:       make(map[TopicPartition]*groupPartition),
	}
	if err := c.register(gc); err != nil {
		cancel()
		return nil, err
	}
	gc.wg.Add(1)
	go func() {
		defer gc.wg.Done()
		defer close(gc.sessionDone)
		gc.runSession()
	}()
	if !o.DisableAutoCommit {
		gc.wg.Add(1)
		go func() {
			defer gc.wg.Done()
			gc.autoCommit()
		}()
	}
	return gc, nil
}

// MemberID is the id the coordinator gave this member ("" until joined).
func (gc *GroupConsumer) MemberID() string {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.memberID
}

// Assignment is the partitions the member consumes now, sorted.
func (gc *GroupConsumer) Assignment() []TopicPartition {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.ownedLocked()
}

func (gc *GroupConsumer) ownedLocked() []TopicPartition {
	out := make([]TopicPartition, 0, len(gc.parts))
	for tp := range gc.parts {
		out = append(out, tp)
	}
	sortTPs(out)
	return out
}

func sortTPs(tps []TopicPartition) {
	slices.SortFunc(tps, func(a, b TopicPartition) int {
		switch {
		case a.Topic < b.Topic:
			return -1
		case a.Topic > b.Topic:
			return 1
		}
		return int(a.Partition) - int(b.Partition)
	})
}

// Poll returns records of the member's partitions, waiting for at least
// one until ctx ends. Records of a partition come in offset order. Every
// record returned by earlier Polls counts as had by the application (the
// auto-commit commits them). Poll applies assignment changes first,
// calling OnRevoked and OnAssigned.
func (gc *GroupConsumer) Poll(ctx context.Context) ([]Record, error) {
	if gc.closed {
		return nil, ErrClosed
	}
	gc.mu.Lock()
	for _, gp := range gc.parts {
		gp.consumed = gp.returned
	}
	gc.mu.Unlock()
	for {
		if err := gc.failure(); err != nil {
			return nil, err
		}
		if err := gc.apply(ctx); err != nil {
			return nil, err
		}
		if err := gc.restartBroken(); err != nil {
			return nil, err
		}
		if out := gc.drain(nil); len(out) > 0 {
			return out, nil
		}
		select {
		case b := <-gc.recs:
			gc.held = append(gc.held, b)
			if out := gc.drain(nil); len(out) > 0 {
				return out, nil
			}
		case fe := <-gc.fetchErrs:
			if err := gc.fetchFailed(fe); err != nil {
				return nil, err
			}
		case <-gc.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-gc.ctx.Done():
			return nil, ErrClosed
		}
	}
}

func (gc *GroupConsumer) failure() error {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.failed
}

// drain appends to out the records received so far, up to
// MaxPollRecords, without waiting. Records of partitions no longer owned
// (or being revoked) are dropped, as are any before a partition's
// position.
func (gc *GroupConsumer) drain(out []Record) []Record {
	for len(out) < gc.o.MaxPollRecords {
		if len(gc.held) == 0 {
			select {
			case b := <-gc.recs:
				gc.held = append(gc.held, b)
			default:
				return out
			}
		}
		b := &gc.held[0]
		gc.mu.Lock()
		if gc.parts[b.gp.tp] != b.gp || b.gp.stopped {
			b.recs = nil
		}
		for len(b.recs) > 0 && len(out) < gc.o.MaxPollRecords {
			r := b.recs[0]
			b.recs = b.recs[1:]
			if r.Offset < b.gp.returned {
				continue
			}
			out = append(out, r)
			b.gp.returned = r.Offset + 1
		}
		gc.mu.Unlock()
		if len(b.recs) == 0 {
			gc.held = gc.held[1:]
		}
	}
	return out
}

// apply applies the newest assignment received: revoked partitions first
// (fetchers stopped, OnRevoked, their offsets committed, the coordinator
// told), then new ones (start offsets found, fetchers started,
// OnAssigned).
func (gc *GroupConsumer) apply(ctx context.Context) error {
	gc.mu.Lock()
	a := gc.next
	if a == nil || a.gen != gc.gen {
		gc.next = nil
		gc.mu.Unlock()
		return nil
	}
	var revoked, added []TopicPartition
	for tp := range gc.parts {
		if !a.parts[tp] {
			revoked = append(revoked, tp)
		}
	}
	for tp := range a.parts {
		if gc.parts[tp] == nil {
			added = append(added, tp)
		}
	}
	gc.mu.Unlock()
	sortTPs(revoked)
	sortTPs(added)
	if len(revoked) > 0 {
		gc.revoke(ctx, revoked)
	}
	gc.mu.Lock()
	if gc.next == a {
		gc.next = nil
	}
	if a.gen == gc.gen {
		gc.appliedGen, gc.appliedSeq = a.gen, a.seq
	}
	gc.mu.Unlock()
	signal(gc.ackNow)
	if len(added) == 0 {
		return nil
	}
	err := gc.assign(ctx, added)
	signal(gc.ackNow)
	if err != nil {
		// The rest are started by the next Poll, unless a newer
		// assignment says otherwise.
		gc.mu.Lock()
		if gc.next == nil && a.gen == gc.gen {
			gc.next = a
		}
		gc.mu.Unlock()
		return fmt.Errorf("client: group %q: start assigned partitions: %w", gc.o.Group, err)
	}
	return nil
}

// revoke gives partitions up: their fetchers stop, OnRevoked is called,
// their offsets are committed (with auto-commit) and they are dropped. A
// failed commit is logged: the next owner then starts from the previous
// commit, and records are delivered again, not skipped.
func (gc *GroupConsumer) revoke(ctx context.Context, tps []TopicPartition) {
	gps := gc.partitions(tps)
	for _, gp := range gps {
		gc.stopFetcher(gp)
	}
	if gc.o.OnRevoked != nil {
		gc.o.OnRevoked(ctx, tps)
	}
	if !gc.o.DisableAutoCommit {
		if err := gc.commit(ctx, gc.positions(gps, false)); err != nil {
			gc.lg.Warn("commit of revoked partitions failed; their next owner starts from the previous commit",
				zap.Stringers("partitions", tpStringers(tps)), zap.Error(err))
		}
	}
	gc.mu.Lock()
	for _, gp := range gps {
		if gc.parts[gp.tp] == gp {
			delete(gc.parts, gp.tp)
		}
	}
	gc.mu.Unlock()
}

func tpStringers(tps []TopicPartition) []fmt.Stringer {
	out := make([]fmt.Stringer, len(tps))
	for i, tp := range tps {
		out[i] = tp
	}
	return out
}

// partitions is the owned partitions of tps.
func (gc *GroupConsumer) partitions(tps []TopicPartition) []*groupPartition {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	var out []*groupPartition
	for _, tp := range tps {
		if gp := gc.parts[tp]; gp != nil {
			out = append(out, gp)
		}
	}
	return out
}

// assign starts consuming new partitions from the group's committed
// offsets (StartFrom where there is none) and calls OnAssigned with those
// started.
func (gc *GroupConsumer) assign(ctx context.Context, tps []TopicPartition) (err error) {
	var started []TopicPartition
	defer func() {
		if len(started) > 0 && gc.o.OnAssigned != nil {
			gc.o.OnAssigned(ctx, started)
		}
	}()
	var topics []string
	for _, tp := range tps {
		if !slices.Contains(topics, tp.Topic) {
			topics = append(topics, tp.Topic)
		}
	}
	gc.mu.Lock()
	addr := gc.coord
	gc.mu.Unlock()
	offs, _, err := gc.c.fetchGroupOffsets(ctx, gc.o.Group, addr, topics)
	if err != nil {
		return err
	}
	committed := make(map[TopicPartition]int64, len(offs))
	for _, o := range offs {
		committed[TopicPartition{o.GetTopic(), o.GetPartition()}] = o.GetOffset()
	}
	for _, tp := range tps {
		start, ok := committed[tp]
		from := "committed"
		if !ok {
			logStart, hw, err := gc.c.PartitionOffsets(ctx, tp.Topic, tp.Partition)
			if err != nil {
				return fmt.Errorf("%s: %w", tp, err)
			}
			// A position resolved now and committed with the first
			// commit: a later owner continues from it, not from its own
			// "latest".
			start, from = logStart, "earliest"
			if gc.o.StartFrom.kind == posLatest {
				start, from = hw, "latest"
			}
		}
		gp := &groupPartition{tp: tp, returned: start, consumed: start, committed: -1}
		if ok {
			gp.committed = start
		}
		if err := gc.startFetcher(gp, start); err != nil {
			return fmt.Errorf("%s: %w", tp, err)
		}
		gc.mu.Lock()
		gc.parts[tp] = gp
		gc.mu.Unlock()
		gc.lg.Debug("partition assigned", zap.Stringer("partition", tp), zap.Int64("offset", start), zap.String("from", from))
		started = append(started, tp)
	}
	return nil
}

// startFetcher starts gp's consumer at offset and the pump that hands its
// records to Poll.
func (gc *GroupConsumer) startFetcher(gp *groupPartition, offset int64) error {
	cs, err := gc.c.NewConsumer(gc.ctx, ConsumerOptions{Topic: gp.tp.Topic, Partition: gp.tp.Partition, Start: AtOffset(offset),
		MaxBatchRecords: gc.o.MaxBatchRecords, MaxBatchBytes: gc.o.MaxBatchBytes,
		RetryBackoff: gc.o.RetryBackoff, RetryBackoffMax: gc.o.RetryBackoffMax})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(gc.ctx)
	done := make(chan struct{})
	gc.mu.Lock()
	gp.cs, gp.cancel, gp.done, gp.stopped, gp.broken = cs, cancel, done, false, false
	gc.mu.Unlock()
	gc.wg.Add(1)
	go func() {
		defer gc.wg.Done()
		defer close(done)
		for {
			recs, err := cs.Poll(ctx)
			if err != nil {
				if ctx.Err() == nil {
					select {
					case gc.fetchErrs <- fetchErr{gp: gp, err: err}:
					case <-ctx.Done():
					}
				}
				return
			}
			select {
			case gc.recs <- groupBatch{gp: gp, recs: recs}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return nil
}

// stopFetcher stops gp's pump and consumer; its records still queued are
// dropped by drain.
func (gc *GroupConsumer) stopFetcher(gp *groupPartition) {
	gc.mu.Lock()
	gp.stopped = true
	cs, cancel, done := gp.cs, gp.cancel, gp.done
	gp.cs, gp.cancel, gp.done = nil, nil, nil
	gc.mu.Unlock()
	if cs == nil {
		return
	}
	cancel()
	<-done
	if err := cs.Close(); err != nil {
		gc.lg.Debug("close partition consumer", zap.Stringer("partition", gp.tp), zap.Error(err))
	}
}

// fetchFailed handles a partition's fetcher that ended. An offset out of
// range (the committed offset was deleted by retention, or is past the
// end after an unclean leader election) restarts at the nearest valid
// offset; any other error is returned by Poll, and the next Poll starts
// the fetcher again at the partition's position.
func (gc *GroupConsumer) fetchFailed(fe fetchErr) error {
	gc.mu.Lock()
	current := gc.parts[fe.gp.tp] == fe.gp && !fe.gp.stopped
	gc.mu.Unlock()
	if !current {
		return nil
	}
	gp := fe.gp
	// Its pump has returned: only the consumer is left to close.
	gc.stopFetcher(gp)
	var oe *OffsetRangeError
	if errors.As(fe.err, &oe) {
		pos := oe.LogStartOffset
		gc.mu.Lock()
		if oe.Requested >= oe.EndOffset {
			// Past the end: the log was truncated below what was read.
			pos = oe.EndOffset
			gp.returned, gp.consumed, gp.committed = pos, min(gp.consumed, pos), -1
		}
		gc.mu.Unlock()
		gc.lg.Warn("partition position out of range; continuing at the nearest offset", zap.Stringer("partition", gp.tp),
			zap.Int64("requested", oe.Requested), zap.Int64("offset", pos))
		return gc.startFetcher(gp, pos)
	}
	gc.mu.Lock()
	gp.broken = true
	gc.mu.Unlock()
	return fmt.Errorf("client: group %q: consume %s: %w", gc.o.Group, gp.tp, fe.err)
}

// restartBroken starts again the fetchers that failed, at their positions.
func (gc *GroupConsumer) restartBroken() error {
	gc.mu.Lock()
	var broken []*groupPartition
	for _, gp := range gc.parts {
		if gp.broken {
			broken = append(broken, gp)
		}
	}
	gc.mu.Unlock()
	for _, gp := range broken {
		gc.mu.Lock()
		pos := gp.returned
		gc.mu.Unlock()
		if err := gc.startFetcher(gp, pos); err != nil {
			return fmt.Errorf("client: group %q: consume %s: %w", gc.o.Group, gp.tp, err)
		}
	}
	return nil
}

// positions snapshots the offsets to commit for gps (every owned
// partition when nil): what Poll returned, or only what the application
// has had (returned before the latest Poll).
func (gc *GroupConsumer) positions(gps []*groupPartition, returned bool) map[*groupPartition]int64 {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gps == nil {
		for _, gp := range gc.parts {
			gps = append(gps, gp)
		}
	}
	out := make(map[*groupPartition]int64, len(gps))
	for _, gp := range gps {
		if returned {
			out[gp] = gp.returned
		} else {
			out[gp] = gp.consumed
		}
	}
	return out
}

// commit commits the positions of partitions still owned that are ahead
// of their last commit, one commit at a time, so that a commit never
// takes a partition's offset backwards.
func (gc *GroupConsumer) commit(ctx context.Context, pos map[*groupPartition]int64) error {
	gc.commitMu.Lock()
	defer gc.commitMu.Unlock()
	for attempt := 0; ; attempt++ {
		gc.mu.Lock()
		var offs []*PartitionOffset
		var gps []*groupPartition
		for gp, off := range pos {
			if gc.parts[gp.tp] == gp && off >= 0 && off > gp.committed {
				offs = append(offs, &PartitionOffset{Topic: gp.tp.Topic, Partition: gp.tp.Partition, Offset: off})
				gps = append(gps, gp)
			}
		}
		member, epoch, addr := gc.memberID, gc.epoch, gc.coord
		gc.mu.Unlock()
		if len(offs) == 0 {
			return nil
		}
		req := &stratav1.CommitOffsetsRequest{Group: gc.o.Group, MemberId: member, MemberEpoch: epoch, Offsets: offs}
		_, err := gc.c.groupCall(ctx, gc.o.Group, addr, func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := stratav1.NewGroupsClient(cc).CommitOffsets(ctx, req)
			return err
		})
		if err != nil {
			gc.mu.Lock()
			moved := gc.epoch != epoch
			gc.mu.Unlock()
			// An epoch that advanced while the commit was on its way
			// makes it stale; once more with the new one.
			if moved && attempt == 0 {
				continue
			}
			return fmt.Errorf("client: group %q: commit: %w", gc.o.Group, err)
		}
		gc.mu.Lock()
		for i, gp := range gps {
			gp.committed = offs[i].GetOffset()
		}
		gc.mu.Unlock()
		return nil
	}
}

// Commit commits, and waits for, the offsets after every record Poll has
// returned.
func (gc *GroupConsumer) Commit(ctx context.Context) error {
	return gc.commit(ctx, gc.positions(nil, true))
}

// CommitOffsets commits offsets (per partition, the next offset to
// consume) and waits: for an application that has handled only part of
// what Poll returned. Partitions the member no longer owns are left to
// their new owner, and an offset behind the partition's last commit is
// not sent.
func (gc *GroupConsumer) CommitOffsets(ctx context.Context, offsets map[TopicPartition]int64) error {
	pos := make(map[*groupPartition]int64, len(offsets))
	gc.mu.Lock()
	for tp, off := range offsets {
		if gp := gc.parts[tp]; gp != nil {
			pos[gp] = off
		}
	}
	gc.mu.Unlock()
	return gc.commit(ctx, pos)
}

// Position is the offset of the next record Poll returns from an owned
// partition; false when the member does not own it.
func (gc *GroupConsumer) Position(tp TopicPartition) (int64, bool) {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	gp := gc.parts[tp]
	if gp == nil {
		return 0, false
	}
	return gp.returned, true
}

// CommitAsync commits the offsets after every record Poll has returned
// without waiting; onDone, when not nil, gets the outcome. Commits are
// applied in order: a later commit never goes behind an earlier one.
func (gc *GroupConsumer) CommitAsync(onDone func(error)) {
	pos := gc.positions(nil, true)
	gc.wg.Add(1)
	go func() {
		defer gc.wg.Done()
		ctx, cancel := context.WithTimeout(gc.ctx, gc.c.cfg.RequestTimeout)
		defer cancel()
		err := gc.commit(ctx, pos)
		if onDone != nil {
			onDone(err)
		}
	}()
}

// autoCommit commits what the application has had every
// AutoCommitInterval until the consumer closes.
func (gc *GroupConsumer) autoCommit() {
	t := time.NewTicker(gc.o.AutoCommitInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			ctx, cancel := context.WithTimeout(gc.ctx, gc.c.cfg.RequestTimeout)
			err := gc.commit(ctx, gc.positions(nil, false))
			cancel()
			if err != nil && gc.ctx.Err() == nil {
				gc.lg.Warn("auto-commit failed", zap.Error(err))
			}
		case <-gc.leave:
			return
		case <-gc.ctx.Done():
			return
		}
	}
}

// Close leaves the group: it stops consuming, calls OnRevoked with every
// partition, commits every record Poll returned (with auto-commit), and
// ends the session, with a leave for a dynamic member (its partitions
// move at once) and without one for a static member (the coordinator
// keeps them for SessionTimeout). ctx bounds the commit and the leave.
func (gc *GroupConsumer) Close(ctx context.Context) error {
	if gc.closed {
		return nil
	}
	gc.closed = true
	var errs []error
	gc.mu.Lock()
	tps := gc.ownedLocked()
	gc.mu.Unlock()
	gps := gc.partitions(tps)
	for _, gp := range gps {
		gc.stopFetcher(gp)
	}
	if gc.o.OnRevoked != nil && len(tps) > 0 && gc.ctx.Err() == nil {
		gc.o.OnRevoked(ctx, tps)
	}
	if !gc.o.DisableAutoCommit && gc.ctx.Err() == nil {
		if err := gc.commit(ctx, gc.positions(gps, true)); err != nil {
			errs = append(errs, err)
		}
	}
	close(gc.leave)
	gc.joinCancel()
	select {
	case <-gc.sessionDone:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("client: group %q: leave: %w", gc.o.Group, ctx.Err()))
	}
	gc.closeFromClient()
	gc.c.unregister(gc)
	return errors.Join(errs...)
}

// closeFromClient stops everything without committing or leaving, as a
// crash would: the coordinator sees the session end.
func (gc *GroupConsumer) closeFromClient() {
	gc.once.Do(func() {
		gc.joinCancel()
		gc.cancel()
		gc.wg.Wait()
		gc.mu.Lock()
		var cs []*Consumer
		for _, gp := range gc.parts {
			if gp.cs != nil {
				cs = append(cs, gp.cs)
			}
		}
		gc.mu.Unlock()
		for _, c := range cs {
			if err := c.Close(); err != nil {
				gc.lg.Debug("close partition consumer", zap.Error(err))
			}
		}
	})
}

// fail makes err the consumer's sticky error, returned by Poll.
func (gc *GroupConsumer) fail(err error) {
	gc.mu.Lock()
	if gc.failed == nil {
		gc.failed = err
	}
	gc.mu.Unlock()
	signal(gc.wake)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
