package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/pkg/client"
	"google.golang.org/grpc"
)

// bench rebalance: a producer writes to every partition at a steady rate
// while a group of members tails the topic. Each round kills one member
// and then starts a new one. --kill close closes the member's client
// without a commit or a leave (a crashed process: the coordinator sees its
// session stream end); --kill freeze makes its connections go silent
// without closing (a hung host or a network partition: only the session
// timeout, or the transport's keepalive, can tell). Every Poll's
// records are logged per partition with the time and the member; the
// figures come from that log afterwards:
//   - kill: per partition the dead member owned, the time from the kill
//     to its first record delivered by another member;
//   - join: per partition that moved to the new member, the gap between
//     the last record its old owner delivered and the first the new one
//     did; per partition that did not move, the longest gap between two
//     deliveries around the rebalance, next to the same gaps in the
//     steady state before it.

// delivery is the records of one partition one Poll returned.
type delivery struct {
	at          time.Time
	member      int
	partition   int32
	first, last int64
}

// deliveryLog is every delivery of a run, appended by the members.
type deliveryLog struct {
	mu  sync.Mutex
	ds  []delivery
	ch  chan struct{} // signalled on every append
	off map[int32]int64
	// Records skipped (an offset after the next expected one) and
	// delivered again, per the whole run.
	skipped, again int64
}

func (l *deliveryLog) add(member int, at time.Time, recs []client.Record) {
	l.mu.Lock()
	for i := 0; i < len(recs); {
		j := i
		for j+1 < len(recs) && recs[j+1].Partition == recs[i].Partition {
			j++
		}
		p := recs[i].Partition
		d := delivery{at: at, member: member, partition: p, first: recs[i].Offset, last: recs[j].Offset}
		if next, ok := l.off[p]; ok {
			switch {
			case d.first > next:
				l.skipped += d.first - next
			case d.first < next:
				l.again += min(next, d.last+1) - d.first
			}
		}
		l.off[p] = max(l.off[p], d.last+1)
		l.ds = append(l.ds, d)
		i = j + 1
	}
	l.mu.Unlock()
	notify(l.ch)
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// since returns the deliveries at or after t.
func (l *deliveryLog) since(t time.Time) []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, _ := slices.BinarySearchFunc(l.ds, t, func(d delivery, t time.Time) int { return d.at.Compare(t) })
	return slices.Clone(l.ds[i:])
}

func (l *deliveryLog) all() []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ds)
}

// member is one group member of the bench, with its own client.
type member struct {
	id     int
	cl     *client.Client
	gc     *client.GroupConsumer
	freeze func() // makes the member's connections silent
	done   chan struct{}
	err    error // set before done closes
	dead   atomic.Bool
}

type rebalanceRound struct {
	Round int `json:"round"`
	// Kill: the partitions of the dead member and how long each took to
	// be consumed again by another member, from the kill.
	KilledPartitions []int32   `json:"killed_partitions"`
	ResumeMs         []float64 `json:"resume_ms"`
	ResumeMaxMs      float64   `json:"resume_max_ms"`
	// The longest gap between two deliveries of a partition the dead
	// member did not own, from the kill to a second after the last resume.
	KillUnmovedMaxGapMs float64 `json:"kill_unmoved_max_gap_ms"`
	// Join: the partitions that moved to the new member and, for each,
	// the gap between its old owner's last delivery and the new one's
	// first; the join's time to its last first delivery.
	MovedPartitions     []int32   `json:"moved_partitions"`
	MovedGapMs          []float64 `json:"moved_gap_ms"`
	MovedGapMaxMs       float64   `json:"moved_gap_max_ms"`
	JoinSettledMs       float64   `json:"join_settled_ms"`
	JoinUnmovedMaxGapMs float64   `json:"join_unmoved_max_gap_ms"`
	// The steady state before the kill: the longest gap between two
	// deliveries of any partition, and the 99th percentile.
	SteadyMaxGapMs float64 `json:"steady_max_gap_ms"`
	SteadyP99GapMs float64 `json:"steady_p99_gap_ms"`
}

type rebalanceSummary struct {
	Kind           string           `json:"kind"`
	Kill           string           `json:"kill"`
	Topic          string           `json:"topic"`
	Group          string           `json:"group"`
	Partitions     int              `json:"partitions"`
	Members        int              `json:"members"`
	Assignor       string           `json:"assignor"`
	Rate           float64          `json:"rate"`
	Size           int              `json:"size_bytes"`
	SessionTimeout string           `json:"session_timeout"`
	Fsync          string           `json:"fsync"`
	TLS            string           `json:"tls"`
	Rounds         []rebalanceRound `json:"rounds"`
	Skipped        int64            `json:"skipped_records"`
	Redelivered    int64            `json:"redelivered_records"`
	ProduceErrors  int64            `json:"produce_errors"`
}

func runBenchRebalance(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var b benchFlags
	fs.StringVar(&b.topic, "topic", "bench-rebalance", "`topic` to use")
	fs.IntVar(&b.partitions, "partitions", 6, "`partitions` of the topic when --create makes it")
	fs.BoolVar(&b.create, "create", false, "create the topic if it does not exist")
	fs.StringVar(&b.fsync, "fsync", "", "fsync `policy` of a topic --create makes: always, never, interval:<d> (default: broker's)")
	group := fs.String("group", "", "consumer `group` (default: bench-rebalance-<unix time>, a new one)")
	members := fs.Int("consumers", 3, "group `members`, each with its own connection")
	rate := fs.Float64("rate", 6000, "records/s the producer writes, spread evenly over the partitions")
	size := fs.Int("size", 1024, "record value size in `bytes`")
	rounds := fs.Int("rounds", 3, "kill-then-join `rounds`")
	steady := fs.Duration("steady", 3*time.Second, "steady consumption before each kill and join")
	sessionTimeout := fs.Duration("session-timeout", 10*time.Second, "the members' session `timeout`")
	assignorS := fs.String("assignor", "cooperative-sticky", "`assignor`: cooperative-sticky, range, round-robin")
	kill := fs.String("kill", "close", "how a member dies: close (its client closes: the session stream ends) or freeze (its connections go silent)")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	assignor, err := client.ParseAssignor(*assignorS)
	if err != nil {
		return usagef("--assignor %q: want cooperative-sticky, range or round-robin", *assignorS)
	}
	if *kill != "close" && *kill != "freeze" {
		return usagef("--kill %q: want close or freeze", *kill)
	}
	if *members < 2 || *rate <= 0 || *rounds <= 0 || *size < 0 {
		return usagef("--consumers must be at least 2, --rate and --rounds positive")
	}
	if *group == "" {
		*group = fmt.Sprintf("bench-rebalance-%d", time.Now().Unix())
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	admin, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer admin.Close()
	parts, fsync, err := benchTopic(ctx, admin, &b)
	if err != nil {
		return err
	}

	// The group starts at the partitions' ends, committed: a member that
	// dies before its first commit hands over a committed offset, not
	// Latest (which would skip what was produced meanwhile), so a skip
	// counted below is a real one.
	_, ends, err := groupSpans(ctx, admin, *group, b.topic, parts)
	if err != nil {
		return err
	}
	offs := make([]*client.PartitionOffset, parts)
	for p := range offs {
		offs[p] = &client.PartitionOffset{Topic: b.topic, Partition: int32(p), Offset: ends[p]}
	}
	if err := admin.ResetGroupOffsets(ctx, *group, offs, false); err != nil {
		return fmt.Errorf("group %q: set the start offsets: %w", *group, err)
	}

	// The producer.
	pcl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer pcl.Close()
	producer, err := pcl.NewProducer(client.ProducerOptions{Acks: client.AcksLeader})
	if err != nil {
		return err
	}
	var produceErrs atomic.Int64
	pctx, stopProducing := context.WithCancel(ctx)
	defer stopProducing()
	producerDone := make(chan error, 1)
	go func() {
		producerDone <- steadyProduce(pctx, producer, b.topic, parts, *rate, *size, &produceErrs)
	}()

	log := &deliveryLog{ch: make(chan struct{}, 1), off: map[int32]int64{}}
	opts := client.GroupConsumerOptions{Group: *group, Topics: []string{b.topic}, ClientID: "strata-bench", Assignor: assignor,
		SessionTimeout: *sessionTimeout, StartFrom: client.Latest()}
	var all []*member
	start := func() error {
		m := &member{id: len(all), done: make(chan struct{})}
		if m.cl, m.freeze, err = e.connectFreezable(ctx); err != nil {
			return err
		}
		if m.gc, err = m.cl.NewGroupConsumer(opts); err != nil {
			m.cl.Close()
			return err
		}
		all = append(all, m)
		go func() {
			defer close(m.done)
			for {
				recs, err := m.gc.Poll(ctx)
				if err != nil {
					if !m.dead.Load() && ctx.Err() == nil {
						m.err = err
					}
					return
				}
				log.add(m.id, time.Now(), recs)
			}
		}()
		return nil
	}
	live := func() []*member {
		var out []*member
		for _, m := range all {
			if !m.dead.Load() {
				out = append(out, m)
			}
		}
		return out
	}
	defer func() {
		for _, m := range all {
			m.dead.Store(true)
			m.cl.Close()
			<-m.done
		}
	}()
	for range *members {
		if err := start(); err != nil {
			return err
		}
	}
	// Settled: every partition delivered by the member that owns it now,
	// and each member owning its share.
	wait := func(what string, limit time.Duration, done func() bool) error {
		deadline := time.NewTimer(limit)
		defer deadline.Stop()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for !done() {
			select {
			case <-deadline.C:
				return fmt.Errorf("%s: not within %v", what, limit)
			case <-ctx.Done():
				return ctx.Err()
			case <-log.ch:
			case <-tick.C:
			}
			for _, m := range all {
				select {
				case <-m.done:
					if m.err != nil {
						return fmt.Errorf("member %d: %w", m.id, m.err)
					}
				default:
				}
			}
		}
		return nil
	}
	limit := *sessionTimeout + 20*time.Second
	settled := func(since time.Time) func() bool {
		return func() bool {
			owner := map[int32]int{}
			ms := live()
			for _, m := range ms {
				a := m.gc.Assignment()
				if len(a) < parts/len(ms) {
					return false
				}
				for _, tp := range a {
					owner[tp.Partition] = m.id
				}
			}
			if len(owner) < parts {
				return false
			}
			seen := map[int32]bool{}
			for _, d := range log.since(since) {
				if owner[d.partition] == d.member {
					seen[d.partition] = true
				}
			}
			return len(seen) == parts
		}
	}
	if err := wait("group of "+fmt.Sprint(*members)+" consuming every partition", limit, settled(time.Now())); err != nil {
		return err
	}

	var out []rebalanceRound
	sleep := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for r := 1; r <= *rounds; r++ {
		rr := rebalanceRound{Round: r}
		steadyFrom := time.Now()
		if err := sleep(*steady); err != nil {
			return err
		}
		gaps := partitionGaps(log.since(steadyFrom), time.Time{}, time.Now())
		slices.Sort(gaps)
		if len(gaps) > 0 {
			rr.SteadyMaxGapMs = ms(gaps[len(gaps)-1])
			rr.SteadyP99GapMs = ms(gaps[len(gaps)*99/100])
		}

		// Kill the oldest live member.
		victim := live()[0]
		for _, tp := range victim.gc.Assignment() {
			rr.KilledPartitions = append(rr.KilledPartitions, tp.Partition)
		}
		killAt := time.Now()
		victim.dead.Store(true)
		if *kill == "freeze" {
			victim.freeze() // its Poll waits on; the deferred Close ends it
		} else {
			victim.cl.Close()
			<-victim.done
		}
		resumed := func() bool {
			got := map[int32]bool{}
			for _, d := range log.since(killAt) {
				if d.member != victim.id {
					got[d.partition] = true
				}
			}
			for _, p := range rr.KilledPartitions {
				if !got[p] {
					return false
				}
			}
			return true
		}
		if err := wait(fmt.Sprintf("round %d: the dead member's partitions consumed again", r), limit, resumed); err != nil {
			return err
		}
		if err := wait(fmt.Sprintf("round %d: group settled after the kill", r), limit, settled(killAt)); err != nil {
			return err
		}
		var last time.Time
		ds := log.since(killAt)
		for _, p := range rr.KilledPartitions {
			for _, d := range ds {
				if d.partition == p && d.member != victim.id {
					rr.ResumeMs = append(rr.ResumeMs, ms(d.at.Sub(killAt)))
					rr.ResumeMaxMs = max(rr.ResumeMaxMs, ms(d.at.Sub(killAt)))
					if d.at.After(last) {
						last = d.at
					}
					break
				}
			}
		}
		if err := sleep(time.Second); err != nil {
			return err
		}
		unmoved := partitionGaps(excluding(log.all(), rr.KilledPartitions), killAt, last.Add(time.Second))
		if len(unmoved) > 0 {
			rr.KillUnmovedMaxGapMs = ms(slices.Max(unmoved))
		}
		if err := sleep(*steady); err != nil {
			return err
		}

		// A new member joins.
		joinAt := time.Now()
		owners := lastOwners(log.all(), joinAt)
		if err := start(); err != nil {
			return err
		}
		joiner := all[len(all)-1]
		if err := wait(fmt.Sprintf("round %d: group settled after the join", r), limit, settled(joinAt)); err != nil {
			return err
		}
		settledAt := joinAt
		ds = log.since(joinAt)
		for _, tp := range joiner.gc.Assignment() {
			p := tp.Partition
			rr.MovedPartitions = append(rr.MovedPartitions, p)
			var oldLast, newFirst time.Time
			for _, d := range ds {
				switch {
				case d.partition != p:
				case d.member == owners[p] && newFirst.IsZero():
					oldLast = d.at
				case d.member == joiner.id && newFirst.IsZero():
					newFirst = d.at
				}
			}
			if oldLast.IsZero() {
				oldLast = lastBefore(log.all(), p, joinAt)
			}
			gap := ms(newFirst.Sub(oldLast))
			rr.MovedGapMs = append(rr.MovedGapMs, gap)
			rr.MovedGapMaxMs = max(rr.MovedGapMaxMs, gap)
			if newFirst.After(settledAt) {
				settledAt = newFirst
			}
		}
		rr.JoinSettledMs = ms(settledAt.Sub(joinAt))
		if err := sleep(time.Second); err != nil {
			return err
		}
		unmoved = partitionGaps(excluding(log.all(), rr.MovedPartitions), joinAt, settledAt.Add(time.Second))
		if len(unmoved) > 0 {
			rr.JoinUnmovedMaxGapMs = ms(slices.Max(unmoved))
		}
		out = append(out, rr)
		if !e.g.json {
			printRebalanceRound(e, rr)
		}
	}
	stopProducing()
	if err := <-producerDone; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("producer: %w", err)
	}
	log.mu.Lock()
	s := rebalanceSummary{Kind: "rebalance", Kill: *kill, Topic: b.topic, Group: *group, Partitions: parts, Members: *members,
		Assignor: assignor.String(), Rate: *rate, Size: *size, SessionTimeout: sessionTimeout.String(), Fsync: fsync, TLS: e.tlsMode(),
		Rounds: out, Skipped: log.skipped, Redelivered: log.again, ProduceErrors: produceErrs.Load()}
	log.mu.Unlock()
	if e.g.json {
		return printJSON(e.io.Out, s)
	}
	fmt.Fprintf(e.io.Out, "bench rebalance: kill=%s topic=%s group=%s partitions=%d members=%d assignor=%s rate=%.0f rec/s size=%dB session timeout=%s fsync=%s tls=%s\n",
		s.Kill, s.Topic, s.Group, parts, *members, s.Assignor, *rate, *size, s.SessionTimeout, fsync, s.TLS)
	med := func(f func(rebalanceRound) float64) float64 {
		v := make([]float64, len(out))
		for i, r := range out {
			v[i] = f(r)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	fmt.Fprintf(e.io.Out, "  medians of %d rounds: kill: partitions consumed again after %.1fms (max of the dead member's), unmoved max gap %.1fms;"+
		" join: moved partitions' gap %.1fms (max), settled after %.1fms, unmoved max gap %.1fms; steady max gap %.1fms, p99 %.1fms\n",
		len(out), med(func(r rebalanceRound) float64 { return r.ResumeMaxMs }), med(func(r rebalanceRound) float64 { return r.KillUnmovedMaxGapMs }),
		med(func(r rebalanceRound) float64 { return r.MovedGapMaxMs }), med(func(r rebalanceRound) float64 { return r.JoinSettledMs }),
		med(func(r rebalanceRound) float64 { return r.JoinUnmovedMaxGapMs }), med(func(r rebalanceRound) float64 { return r.SteadyMaxGapMs }),
		med(func(r rebalanceRound) float64 { return r.SteadyP99GapMs }))
	_, err = fmt.Fprintf(e.io.Out, "  records skipped %d, delivered again %d (a dead member's uncommitted records), produce errors %d\n",
		s.Skipped, s.Redelivered, s.ProduceErrors)
	return err
}

func printRebalanceRound(e *env, r rebalanceRound) {
	fmt.Fprintf(e.io.Out, "round %d: kill: partitions %v consumed again after %v ms; unmoved max gap %.1f ms\n",
		r.Round, r.KilledPartitions, fmtMs(r.ResumeMs), r.KillUnmovedMaxGapMs)
	fmt.Fprintf(e.io.Out, "         join: partitions %v moved, gap %v ms, settled after %.1f ms; unmoved max gap %.1f ms (steady: max %.1f, p99 %.1f ms)\n",
		r.MovedPartitions, fmtMs(r.MovedGapMs), r.JoinSettledMs, r.JoinUnmovedMaxGapMs, r.SteadyMaxGapMs, r.SteadyP99GapMs)
}

func fmtMs(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.1f", x)
	}
	return fmt.Sprint(s)
}

// partitionGaps returns the gaps between consecutive deliveries of each
// partition whose later delivery falls in [from, to) (from zero: all).
func partitionGaps(ds []delivery, from, to time.Time) []time.Duration {
	last := map[int32]time.Time{}
	var gaps []time.Duration
	for _, d := range ds {
		if prev, ok := last[d.partition]; ok && !d.at.Before(from) && d.at.Before(to) {
			gaps = append(gaps, d.at.Sub(prev))
		}
		last[d.partition] = d.at
	}
	return gaps
}

func excluding(ds []delivery, parts []int32) []delivery {
	return slices.DeleteFunc(ds, func(d delivery) bool { return slices.Contains(parts, d.partition) })
}

// lastOwners is, per partition, the member of its last delivery before t.
func lastOwners(ds []delivery, t time.Time) map[int32]int {
	out := map[int32]int{}
	for _, d := range ds {
		if d.at.Before(t) {
			out[d.partition] = d.member
		}
	}
	return out
}

func lastBefore(ds []delivery, p int32, t time.Time) time.Time {
	var out time.Time
	for _, d := range ds {
		if d.partition == p && d.at.Before(t) {
			out = d.at
		}
	}
	return out
}

// steadyProduce writes rate records/s, round-robin over the partitions,
// until ctx ends.
func steadyProduce(ctx context.Context, p *client.Producer, topic string, parts int, rate float64, size int, failed *atomic.Int64) error {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	cb := func(_ client.RecordMetadata, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	tick := time.NewTicker(paceStep)
	defer tick.Stop()
	start := time.Now()
	var sent int64
	for {
		select {
		case <-ctx.Done():
			closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return p.Close(closeCtx)
		case now := <-tick.C:
			due := int64(now.Sub(start).Seconds() * rate)
			for ; sent < due; sent++ {
				p.ProduceCallback(ctx, &client.Record{Topic: topic, Partition: int32(sent % int64(parts)), ExplicitPartition: true, Value: payload}, cb)
			}
		}
	}
}

// connectFreezable is connect with connections that freeze() makes
// silent: nothing more is read or sent, and nothing is closed.
func (e *env) connectFreezable(ctx context.Context) (*client.Client, func(), error) {
	c, err := e.resolve()
	if err != nil {
		return nil, nil, err
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, nil, err
	}
	frozen := make(chan struct{})
	var once sync.Once
	dial := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return &freezeConn{Conn: conn, frozen: frozen, closed: make(chan struct{})}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := client.New(cctx, client.Config{Brokers: c.Brokers, TLS: tc, Insecure: tc == nil,
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(dial)}})
	if err != nil {
		return nil, nil, err
	}
	return cl, func() { once.Do(func() { close(frozen) }) }, nil
}

// freezeConn is a connection that, once frozen is closed, drops what it
// reads and writes and reads nothing more until it is closed.
type freezeConn struct {
	net.Conn
	frozen    <-chan struct{}
	closed    chan struct{}
	closeOnce sync.Once
}

func (c *freezeConn) isFrozen() bool {
	select {
	case <-c.frozen:
		return true
	default:
		return false
	}
}

func (c *freezeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.isFrozen() {
		<-c.closed
		return 0, net.ErrClosed
	}
	return n, err
}

func (c *freezeConn) Write(b []byte) (int, error) {
	if c.isFrozen() {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *freezeConn) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	return c.Conn.Close()
}
