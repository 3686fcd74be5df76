package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/cmd/strata/internal/histogram"
	"github.com/strata-log/strata/pkg/client"
	"github.com/strata-log/strata/pkg/grpctls"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Consumer group benchmarks: bench consume --group (throughput of a group
// reading a filled topic), bench commit (commits/s to one group's
// coordinator) and bench rebalance (how long partitions stop when a
// member dies or joins).

// benchGroupFlags are bench consume's flags for --group.
type benchGroupFlags struct {
	group        string
	consumers    int
	commit       string
	maxPoll      int
	batchRecords int
	batchBytes   int
	assignor     string
}

func (g *benchGroupFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.group, "group", "", "consume as consumer `group` G (GroupConsumers, from the group's committed offsets or the earliest)")
	fs.IntVar(&g.consumers, "consumers", 3, "with --group: group `members`, each with its own connection")
	fs.StringVar(&g.commit, "commit", "poll", "with --group: `when` to commit: poll (CommitAsync after every Poll), interval:<d> (auto-commit only), none")
	fs.IntVar(&g.maxPoll, "max-poll-records", 2000, "with --group: most `records` one Poll returns")
	fs.IntVar(&g.batchRecords, "batch-records", 2000, "with --group: most `records` per broker stream message")
	fs.IntVar(&g.batchBytes, "batch-bytes", 4<<20, "with --group: most `bytes` per broker stream message")
	fs.StringVar(&g.assignor, "assignor", "cooperative-sticky", "with --group: `assignor`: cooperative-sticky, range, round-robin")
}

// commitMode parses --commit: the auto-commit interval, and whether each
// Poll is followed by CommitAsync.
func (g *benchGroupFlags) commitMode() (interval time.Duration, perPoll, disable bool, err error) {
	switch {
	case g.commit == "poll":
		return 0, true, false, nil
	case g.commit == "none":
		return 0, false, true, nil
	case strings.HasPrefix(g.commit, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(g.commit, "interval:"))
		if err != nil || d <= 0 {
			return 0, false, false, usagef("--commit %q: want a positive duration after interval:", g.commit)
		}
		return d, false, false, nil
	}
	return 0, false, false, usagef("--commit %q: want poll, interval:<d> or none", g.commit)
}

// groupBenchSummary is bench consume --group's --json output.
type groupBenchSummary struct {
	Kind       string `json:"kind"`
	Topic      string `json:"topic"`
	Group      string `json:"group"`
	Consumers  int    `json:"consumers"`
	Partitions int    `json:"partitions"`
	Assignor   string `json:"assignor"`
	Commit     string `json:"commit"`
	Records    int64  `json:"records"`
	Size       int    `json:"size_bytes"`
	Fsync      string `json:"fsync"`
	TLS        string `json:"tls"`
	// Seconds runs from the first record any member got to the last
	// one (as nats bench measures); the join is JoinMs before it.
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MiBPerSec     float64 `json:"mib_per_sec"`
	JoinMs        float64 `json:"join_ms"`
	// WithJoin* count from before the members were made.
	WithJoinSeconds       float64 `json:"with_join_seconds"`
	WithJoinRecordsPerSec float64 `json:"with_join_records_per_sec"`
	CloseMs               float64 `json:"close_ms"`
	Commits               int64   `json:"commits"`
	CommitErrors          int64   `json:"commit_errors"`
	// PerMember is the records each member got.
	PerMember []int64 `json:"per_member"`
	// CommittedRecords is how far the group's committed offsets moved,
	// read back after the members closed.
	CommittedRecords int64 `json:"committed_records"`
}

func runBenchConsumeGroup(ctx context.Context, e *env, b *benchFlags, g *benchGroupFlags) error {
	interval, perPoll, disable, err := g.commitMode()
	if err != nil {
		return err
	}
	assignor, err := client.ParseAssignor(g.assignor)
	if err != nil {
		return usagef("--assignor %q: want cooperative-sticky, range or round-robin", g.assignor)
	}
	if g.consumers <= 0 {
		return usagef("--consumers must be positive")
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	admin, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer admin.Close()
	parts, fsync, err := benchTopic(ctx, admin, b)
	if err != nil {
		return err
	}
	from, end, err := groupSpans(ctx, admin, g.group, b.topic, parts)
	if err != nil {
		return err
	}
	var avail int64
	for p := range from {
		avail += end[p] - from[p]
	}
	total := b.records
	if total <= 0 || total > avail {
		total = avail
	}
	if total <= 0 {
		return fmt.Errorf("group %q has nothing to consume in topic %q (committed at its end)", g.group, b.topic)
	}
	clients, err := connectN(ctx, e, g.consumers)
	if err != nil {
		return err
	}
	defer closeAll(clients)

	var got, bytes, commits, commitErrs atomic.Int64
	var firstAt, lastAt atomic.Int64
	var stopBar func()
	if b.showProgress(e.io.Out) {
		stopBar = progressBar(e.io.Out, total, &got)
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	onCommit := func(err error) {
		if err != nil {
			commitErrs.Add(1)
			return
		}
		commits.Add(1)
	}
	start := time.Now()
	members := make([]*client.GroupConsumer, len(clients))
	for i, cl := range clients {
		// Closed below, or by its client's Close on an early return.
		members[i], err = cl.NewGroupConsumer(client.GroupConsumerOptions{Group: g.group, Topics: []string{b.topic},
			ClientID: "strata-bench", Assignor: assignor, AutoCommitInterval: interval, DisableAutoCommit: disable,
			MaxPollRecords: g.maxPoll, MaxBatchRecords: int32(g.batchRecords), MaxBatchBytes: int32(g.batchBytes)})
		if err != nil {
			return err
		}
	}
	errs := make([]error, len(members))
	perMember := make([]atomic.Int64, len(members))
	var wg sync.WaitGroup
	for i, gc := range members {
		wg.Go(func() {
			for {
				recs, err := gc.Poll(pctx)
				if err != nil {
					if pctx.Err() == nil {
						errs[i] = fmt.Errorf("member %d: %w", i, err)
						stop()
					}
					return
				}
				now := time.Now().UnixNano()
				firstAt.CompareAndSwap(0, now)
				var nb int64
				for j := range recs {
					nb += int64(len(recs[j].Value))
				}
				bytes.Add(nb)
				perMember[i].Add(int64(len(recs)))
				if perPoll {
					gc.CommitAsync(onCommit)
				}
				if got.Add(int64(len(recs))) >= total {
					lastAt.Store(now)
					stop()
					return
				}
			}
		})
	}
	wg.Wait()
	if stopBar != nil {
		stopBar()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	closeStart := time.Now()
	closeCtx, closeCancel := context.WithTimeout(ctx, 30*time.Second)
	defer closeCancel()
	for i, gc := range members {
		errs[i] = gc.Close(closeCtx)
	}
	closeTook := time.Since(closeStart)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close members: %w", err)
	}
	after, _, err := groupSpans(ctx, admin, g.group, b.topic, parts)
	if err != nil {
		return err
	}
	s := groupBenchSummary{Kind: "consume-group", Topic: b.topic, Group: g.group, Consumers: g.consumers, Partitions: parts,
		Assignor: assignor.String(), Commit: g.commit, Records: got.Load(), Fsync: fsync, TLS: e.tlsMode(),
		CloseMs: ms(closeTook), Commits: commits.Load(), CommitErrors: commitErrs.Load()}
	for p := range after {
		s.CommittedRecords += after[p] - from[p]
	}
	for i := range perMember {
		s.PerMember = append(s.PerMember, perMember[i].Load())
	}
	if s.Records > 0 {
		s.Size = int(bytes.Load() / s.Records)
	}
	first, last := time.Unix(0, firstAt.Load()), time.Unix(0, lastAt.Load())
	s.JoinMs = ms(first.Sub(start))
	s.Seconds = last.Sub(first).Seconds()
	s.WithJoinSeconds = last.Sub(start).Seconds()
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Records) / s.Seconds
		s.MiBPerSec = float64(bytes.Load()) / s.Seconds / (1 << 20)
	}
	if s.WithJoinSeconds > 0 {
		s.WithJoinRecordsPerSec = float64(s.Records) / s.WithJoinSeconds
	}
	if e.g.json {
		return printJSON(e.io.Out, s)
	}
	fmt.Fprintf(e.io.Out, "bench consume --group: topic=%s group=%s consumers=%d partitions=%d assignor=%s commit=%s avg size=%dB fsync=%s tls=%s\n",
		b.topic, g.group, g.consumers, parts, s.Assignor, g.commit, s.Size, fsync, s.TLS)
	fmt.Fprintf(e.io.Out, "  %d records in %.3fs from the first record: %.0f records/s, %.1f MiB/s\n", s.Records, s.Seconds, s.RecordsPerSec, s.MiBPerSec)
	fmt.Fprintf(e.io.Out, "  join to first record %.1fms; with it %.3fs, %.0f records/s; close (commit, leave) %.1fms\n",
		s.JoinMs, s.WithJoinSeconds, s.WithJoinRecordsPerSec, s.CloseMs)
	_, err = fmt.Fprintf(e.io.Out, "  per member %v records; commits: %d (%d failed); committed offsets moved by %d records\n",
		s.PerMember, s.Commits, s.CommitErrors, s.CommittedRecords)
	return err
}

// groupSpans returns, per partition of topic, where group would start
// (its committed offset, else the log start) and the high watermark.
func groupSpans(ctx context.Context, cl *client.Client, group, topic string, parts int) (from, end []int64, err error) {
	offs, err := cl.FetchGroupOffsets(ctx, group, topic)
	if err != nil && !errors.Is(err, client.ErrGroupNotFound) {
		return nil, nil, fmt.Errorf("group %q: %w", group, err)
	}
	committed := map[int32]int64{}
	for _, o := range offs {
		if o.GetTopic() == topic {
			committed[o.GetPartition()] = o.GetOffset()
		}
	}
	from, end = make([]int64, parts), make([]int64, parts)
	for p := range parts {
		s, hw, err := cl.PartitionOffsets(ctx, topic, int32(p))
		if err != nil {
			return nil, nil, topicErr(topic, err)
		}
		from[p], end[p] = s, hw
		if c, ok := committed[int32(p)]; ok {
			from[p] = c
		}
	}
	return from, end, nil
}

// connectN opens n clients, each with its own connections.
func connectN(ctx context.Context, e *env, n int) ([]*client.Client, error) {
	clients := make([]*client.Client, 0, n)
	for range n {
		cl, err := e.connect(ctx)
		if err != nil {
			closeAll(clients)
			return nil, err
		}
		clients = append(clients, cl)
	}
	return clients, nil
}

// closeAll closes clients. Closing a finished bench's connections has
// nothing to report, as with bench produce's deferred Close.
func closeAll(clients []*client.Client) {
	for _, cl := range clients {
		cl.Close()
	}
}

// --- bench commit -----------------------------------------------------------

type commitBenchSummary struct {
	Kind        string  `json:"kind"`
	Topic       string  `json:"topic"`
	Group       string  `json:"group"`
	Committers  int     `json:"committers"`
	Connections int     `json:"connections"`
	Coordinator string  `json:"coordinator"`
	TLS         string  `json:"tls"`
	Seconds     float64 `json:"seconds"`
	Commits     int64   `json:"commits"`
	Errors      int64   `json:"errors"`
	CommitsPerS float64 `json:"commits_per_sec"`
	LatencyMs   struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
	} `json:"latency_ms"`
	FirstError string `json:"first_error,omitempty"`
}

func runBenchCommit(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	topic := fs.String("topic", "bench-commit", "`topic` whose partitions the committers commit offsets of")
	group := fs.String("group", "bench-commit", "consumer `group` committed to; it must have no members (commits without a member id)")
	committers := fs.Int("committers", 64, "concurrent `committers`, one partition each (the topic needs at least as many)")
	conns := fs.Int("connections", 4, "gRPC `connections` to the coordinator, shared round-robin by the committers")
	duration := fs.Duration("duration", 10*time.Second, "measure for this `long`")
	create := fs.Bool("create", false, "create the topic (one partition per committer) if it does not exist")
	fsync := fs.String("fsync", "", "fsync `policy` of a topic --create makes (the offsets topic keeps its own)")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *committers <= 0 || *conns <= 0 || *duration <= 0 {
		return usagef("--committers, --connections and --duration must be positive")
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	b := benchFlags{topic: *topic, partitions: *committers, create: *create, fsync: *fsync}
	parts, _, err := benchTopic(ctx, cl, &b)
	if err != nil {
		return err
	}
	if parts < *committers {
		return usagef("topic %q has %d partitions, fewer than --committers %d", *topic, parts, *committers)
	}
	// A committer commits offsets 1, 2, ... up to its partition's high
	// watermark, then that offset again: a commit above it is refused.
	hw := make([]int64, *committers)
	for p := range hw {
		if _, hw[p], err = cl.PartitionOffsets(ctx, *topic, int32(p)); err != nil {
			return topicErr(*topic, err)
		}
	}
	fc, err := cl.FindCoordinator(ctx, *group)
	if err != nil {
		return fmt.Errorf("find coordinator of %q: %w", *group, err)
	}
	addr := fc.GetCoordinatorAddress()
	ccs := make([]*grpc.ClientConn, *conns)
	for i := range ccs {
		if ccs[i], err = e.dialBroker(addr); err != nil {
			break
		}
	}
	defer func() {
		for _, cc := range ccs {
			if cc != nil {
				cc.Close() // a finished bench's connections: nothing to report
			}
		}
	}()
	if err != nil {
		return err
	}
	commit := func(ctx context.Context, i int, off int64) error {
		_, err := stratav1.NewGroupsClient(ccs[i%len(ccs)]).CommitOffsets(ctx, &stratav1.CommitOffsetsRequest{Group: *group,
			Offsets: []*stratav1.PartitionOffset{{Topic: *topic, Partition: int32(i), Offset: off}}})
		return err
	}
	// One unmeasured commit each: connections open, the group loaded.
	for i := range *committers {
		if err := commit(ctx, i, 0); err != nil {
			return fmt.Errorf("warmup commit: %w", err)
		}
	}
	hists := make([]histogram.Histogram, *committers)
	var n, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	// Commits started before the end of the run finish and count; the
	// run's time is until the last of them.
	var over atomic.Bool
	end := time.AfterFunc(*duration, func() { over.Store(true) })
	defer end.Stop()
	start := time.Now()
	var wg sync.WaitGroup
	for i := range *committers {
		wg.Go(func() {
			for off := int64(1); !over.Load() && ctx.Err() == nil; off++ {
				t := time.Now()
				err := commit(ctx, i, min(off, hw[i]))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				hists[i].Record(time.Since(t))
				n.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var h histogram.Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	s := commitBenchSummary{Kind: "commit", Topic: *topic, Group: *group, Committers: *committers, Connections: *conns,
		Coordinator: addr, TLS: e.tlsMode(), Seconds: elapsed.Seconds(), Commits: n.Load(), Errors: failed.Load()}
	s.CommitsPerS = float64(s.Commits) / s.Seconds
	s.LatencyMs.P50, s.LatencyMs.P99, s.LatencyMs.P999, s.LatencyMs.Max = ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max())
	if p := firstErr.Load(); p != nil {
		s.FirstError = (*p).Error()
	}
	if e.g.json {
		if err := printJSON(e.io.Out, s); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.io.Out, "bench commit: group=%s topic=%s committers=%d (1 partition each) connections=%d coordinator=%s tls=%s\n",
			*group, *topic, *committers, *conns, addr, s.TLS)
		fmt.Fprintf(e.io.Out, "  %d commits in %.3fs: %.0f commits/s (%d errors)\n", s.Commits, s.Seconds, s.CommitsPerS, s.Errors)
		fmt.Fprintf(e.io.Out, "  latency: p50 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms\n", s.LatencyMs.P50, s.LatencyMs.P99, s.LatencyMs.P999, s.LatencyMs.Max)
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d commits failed; first error: %s", s.Errors, s.FirstError)
	}
	return nil
}

// dialBroker opens a gRPC connection of its own to addr with the
// context's TLS settings, as the client dials.
func (e *env) dialBroker(addr string) (*grpc.ClientConn, error) {
	c, err := e.resolve()
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if tc != nil {
		opts = grpctls.DialOptions(tc)
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return cc, nil
}
