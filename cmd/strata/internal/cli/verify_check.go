package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/cmd/strata/internal/verify"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// checkOpts are the flags of verify check (and verify run).
type checkOpts struct {
	topic       string
	logs        multiFlag
	maxExamples int
	waitISR     time.Duration
	rpcTimeout  time.Duration
}

func (o *checkOpts) register(fs *flag.FlagSet, standalone bool, waitISR time.Duration) {
	if standalone {
		fs.StringVar(&o.topic, "topic", "", "`topic` to check (required)")
		fs.Var(&o.logs, "log", "outcome log `file` written by verify produce (repeatable; at least one)")
	}
	fs.IntVar(&o.maxExamples, "max-examples", 20, "findings shown per partition and kind (-1: all)")
	fs.DurationVar(&o.waitISR, "wait-isr", waitISR, "first wait up to this long until every broker agrees that every partition has a leader and a full ISR (0: don't)")
	fs.DurationVar(&o.rpcTimeout, "rpc-timeout", 30*time.Second, "bound on each call to a broker (metadata, ReadReplica)")
}

// checkResult is the --json output of verify check.
type checkResult struct {
	Topic     string   `json:"topic"`
	Logs      []string `json:"logs"`
	Truncated []string `json:"truncated_logs,omitempty"`
	// IdempotentLogs counts the logs whose producers were idempotent:
	// duplicates and reorders of their records fail the check.
	IdempotentLogs int      `json:"idempotent_logs"`
	Passed         bool     `json:"passed"`
	Problems       []string `json:"problems"`
	*verify.Report
	maxExamples int
}

func runVerifyCheck(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var o checkOpts
	o.register(fs, true, 0)
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if o.topic == "" || len(o.logs) == 0 {
		return usagef("verify check: --topic and at least one --log are required")
	}
	return verifyCheck(ctx, e, &o)
}

// verifyCheck reads the logs and every replica and reports; it fails when
// the report has problems (lost acks, divergence, gaps, unreadable
// replicas, and for logs of idempotent producers any duplicate or
// reorder).
func verifyCheck(ctx context.Context, e *env, o *checkOpts) (err error) {
	res := &checkResult{Topic: o.topic, Logs: o.logs, maxExamples: o.maxExamples}
	var outcomes []verify.Outcome
	for _, path := range o.logs {
		l, err := readOutcomeLog(path)
		if err != nil {
			return err
		}
		if l.Header.Topic != o.topic {
			return usagef("verify check: %s records topic %q, not %q", path, l.Header.Topic, o.topic)
		}
		if l.Truncated {
			res.Truncated = append(res.Truncated, path)
		}
		if l.Header.Idempotent {
			res.IdempotentLogs++
		}
		outcomes = append(outcomes, l.Outcomes...)
	}

	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	bc, addrs, err := e.newBrokerConns()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bc.close()) }()
	if o.waitISR > 0 {
		if err := waitConverged(ctx, bc, addrs, o.topic, o.waitISR, o.rpcTimeout); err != nil {
			fmt.Fprintf(e.io.Err, "verify check: %v; checking anyway\n", err)
		}
	}
	in := verify.Input{Outcomes: outcomes, MaxExamples: o.maxExamples}
	if in.Partitions, err = readPartitions(ctx, e, bc, addrs, o.topic, o.rpcTimeout); err != nil {
		return err
	}
	rep, err := verify.Check(in)
	if err != nil {
		return err
	}
	res.Report = rep
	res.Problems = rep.Problems()
	if res.Problems == nil {
		res.Problems = []string{}
	}
	res.Passed = len(res.Problems) == 0
	if e.g.json {
		err = printJSON(e.io.Out, res)
	} else {
		err = printCheck(e, res, len(outcomes))
	}
	if err != nil {
		return err
	}
	if !res.Passed {
		return fmt.Errorf("verify check: FAIL: %s", strings.Join(res.Problems, "; "))
	}
	return nil
}

// producersKind says whether the logs' producers were idempotent.
func (res *checkResult) producersKind() string {
	switch res.IdempotentLogs {
	case 0:
		return "not idempotent (duplicates and reorders counted)"
	case len(res.Logs):
		return "idempotent (a duplicate or a reorder fails)"
	}
	return fmt.Sprintf("idempotent in %d of %d logs (a duplicate or a reorder of theirs fails)", res.IdempotentLogs, len(res.Logs))
}

func readOutcomeLog(path string) (*verify.Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("verify check: %w", err)
	}
	l, err := verify.ReadLog(f)
	if err = errors.Join(err, f.Close()); err != nil {
		return nil, fmt.Errorf("verify check: %s: %w", path, err)
	}
	return l, nil
}

// readAttempts bounds how often readPartitions reads the topic again
// because a leader changed while it read.
const readAttempts = 3

// readPartitions reads every replica of every partition, leader first,
// between two views of the cluster, so that a check can run under load. A
// partition whose leader or epoch differs between the views, or one of
// whose replicas reports a newer leader epoch than the view, was read
// across a leader change, which breaks the leader-first order the checker
// relies on: the topic is read again. A partition's ISR is the brokers in
// both views' ISRs: a follower dropped during the read is not held to the
// leader's high watermark.
func readPartitions(ctx context.Context, e *env, bc *brokerConns, addrs []string, topic string, timeout time.Duration) ([]verify.Partition, error) {
	before, err := bc.view(ctx, addrs, topic, timeout)
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		parts := make([]verify.Partition, 0, len(before.Partitions))
		for _, pm := range before.Partitions {
			p := verify.Partition{ID: pm.GetPartition(), Leader: pm.GetLeaderId(), ISR: pm.GetIsr()}
			if pm.GetOffline() {
				p.Leader = -1
			}
			for _, b := range leaderFirst(pm) {
				p.Replicas = append(p.Replicas, bc.readReplica(ctx, before.addrs[b], topic, pm.GetPartition(), b, timeout))
			}
			parts = append(parts, p)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		after, err := bc.view(ctx, addrs, topic, timeout)
		if err != nil {
			return nil, err
		}
		var moved []string
		for i, pm := range before.Partitions {
			am := after.partition(pm.GetPartition())
			newer := slices.ContainsFunc(parts[i].Replicas, func(r verify.Replica) bool {
				return r.Err == "" && r.LeaderEpoch > pm.GetLeaderEpoch()
			})
			if am == nil || newer || am.GetLeaderId() != pm.GetLeaderId() || am.GetLeaderEpoch() != pm.GetLeaderEpoch() || am.GetOffline() != pm.GetOffline() {
				moved = append(moved, fmt.Sprint(pm.GetPartition()))
			}
			if am != nil {
				parts[i].ISR = slices.DeleteFunc(slices.Clone(pm.GetIsr()), func(b int32) bool { return !slices.Contains(am.GetIsr(), b) })
			}
		}
		if len(moved) == 0 {
			return parts, nil
		}
		if attempt == readAttempts {
			fmt.Fprintf(e.io.Err, "verify check: partitions %s changed leader during each of %d reads; findings there may be artifacts of that\n",
				strings.Join(moved, ","), readAttempts)
			return parts, nil
		}
		fmt.Fprintf(e.io.Err, "verify check: partitions %s changed leader during the read; reading again\n", strings.Join(moved, ","))
		before = after
	}
}

// leaderFirst orders a partition's replicas with its leader first: the
// checker needs the leader's copy read before the followers' (see
// verify.Partition).
func leaderFirst(pm *stratav1.PartitionMetadata) []int32 {
	out := slices.Clone(pm.GetReplicas())
	if i := slices.Index(out, pm.GetLeaderId()); i > 0 {
		out[0], out[i] = out[i], out[0]
	}
	return out
}

// waitConverged waits until every broker agrees that every partition of
// topic has a leader and all its replicas in the ISR, or limit passes.
func waitConverged(ctx context.Context, bc *brokerConns, addrs []string, topic string, limit, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var last string
	for {
		v, err := bc.view(ctx, addrs, topic, timeout)
		switch {
		case err != nil:
			last = err.Error()
		case v.Converged:
			return nil
		default:
			last = strings.Join(v.Why, "; ")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not converged after %s: %s", limit, last)
		case <-t.C:
		}
	}
}

// readReplica pages through one broker's copy from its log start to the
// log end it reported first: the log end, log start and high watermark are
// those of that first answer, so the copy is one consistent snapshot even
// if it grows while it is read. A failure is returned in Replica.Err.
func (bc *brokerConns) readReplica(ctx context.Context, addr, topic string, partition, broker int32, timeout time.Duration) verify.Replica {
	r := verify.Replica{Broker: broker}
	if err := bc.readReplicaInto(ctx, addr, topic, partition, timeout, &r); err != nil {
		return verify.Replica{Broker: broker, Err: err.Error()}
	}
	return r
}

func (bc *brokerConns) readReplicaInto(ctx context.Context, addr, topic string, partition int32, timeout time.Duration, r *verify.Replica) error {
	if addr == "" {
		return fmt.Errorf("broker %d has no address in the metadata", r.Broker)
	}
	cc, err := bc.conn(addr)
	if err != nil {
		return err
	}
	rc := stratav1.NewReplicaToolsClient(cc)
	call := func(off int64) (*stratav1.ReadReplicaResponse, error) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return rc.ReadReplica(cctx, &stratav1.ReadReplicaRequest{Topic: topic, Partition: partition, Offset: off,
			MaxRecords: 20000, MaxBytes: 8 << 20})
	}
	// Offset 0 is below the log start once retention deleted a segment;
	// the OutOfRange answer says where the log starts.
	resp, err := call(0)
	if st, ok := status.FromError(err); ok && err != nil {
		for _, d := range st.Details() {
			if or, ok := d.(*stratav1.OffsetRange); ok && or.GetLogStartOffset() > 0 {
				resp, err = call(or.GetLogStartOffset())
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("ReadReplica from broker %d: %w", r.Broker, err)
	}
	r.Role = strings.ToLower(strings.TrimPrefix(resp.GetRole().String(), "ROLE_"))
	r.LeaderEpoch = resp.GetLeaderEpoch()
	r.LogStart, r.LogEnd, r.HW = resp.GetLogStartOffset(), resp.GetLogEndOffset(), resp.GetHighWatermark()
	for {
		for _, rec := range resp.GetRecords() {
			if rec.GetOffset() < r.LogEnd {
				r.Records = append(r.Records, verify.Record{Offset: rec.GetOffset(), Value: string(rec.GetValue())})
			}
		}
		next := resp.GetNextOffset()
		if next >= r.LogEnd {
			return nil
		}
		if len(resp.GetRecords()) == 0 {
			return fmt.Errorf("ReadReplica from broker %d: no records at offset %d below the log end %d", r.Broker, next, r.LogEnd)
		}
		if resp, err = call(next); err != nil {
			return fmt.Errorf("ReadReplica from broker %d at offset %d: %w", r.Broker, next, err)
		}
	}
}

// printCheck prints the human report: per partition, per replica, the
// findings, and the verdict.
func printCheck(e *env, res *checkResult, outcomes int) error {
	w := e.io.Out
	rep := res.Report
	t := rep.Total
	fmt.Fprintf(w, "verify check: topic=%s logs=%d outcomes=%d (%d acked, %d indefinite, %d failed) producers: %s\n",
		res.Topic, len(res.Logs), outcomes, t.Acked, t.Indefinite, t.Failed, res.producersKind())
	for _, p := range res.Truncated {
		fmt.Fprintf(w, "note: %s ends in a partial line (its writer died); that record is not checked\n", p)
	}
	fmt.Fprintln(w)
	pt := newTable(w, "PARTITION", "LEADER", "ISR", "RECORDS", "ACKED", "LOST", "DIVERGENT", "GAPS",
		"DUP-ACKED", "DUP-INDEF", "REORDERED", "INDEF-FOUND", "INDEF-MISSING", "FAILED-PRESENT", "UNKNOWN")
	row := func(name, leader, isr string, c verify.Counts) {
		pt.row(name, leader, isr, c.Records, c.Acked, c.Lost, c.Divergent, c.Gaps,
			c.DupAcked, c.DupIndefinite, c.Reordered, c.IndefiniteFound, c.IndefiniteNotFound, c.FailedPresent, c.Unknown)
	}
	for _, p := range rep.Partitions {
		leader := fmt.Sprint(p.Leader)
		if p.Leader < 0 {
			leader = "none"
		}
		row(fmt.Sprint(p.Partition), leader, joinInts(p.ISR), p.Counts)
	}
	row("TOTAL", "", "", t)
	if err := pt.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rt := newTable(w, "PARTITION", "BROKER", "ROLE", "EPOCH", "IN-ISR", "LOG-START", "LOG-END", "HW", "RECORDS", "ERROR")
	for _, p := range rep.Partitions {
		for _, r := range p.Replicas {
			rt.row(p.Partition, r.Broker, dash(r.Role), r.LeaderEpoch, r.InISR, r.LogStart, r.LogEnd, r.HW, r.Records, dash(r.Err))
		}
	}
	if err := rt.flush(); err != nil {
		return err
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintf(w, "\nFINDINGS (at most %d per partition and kind", res.maxExamples)
		if rep.FindingsOmitted > 0 {
			fmt.Fprintf(w, "; %d more not shown", rep.FindingsOmitted)
		}
		fmt.Fprintln(w, ")")
		ft := newTable(w, "PARTITION", "KIND", "BROKER", "OFFSET", "VALUE", "DETAIL")
		for _, f := range rep.Findings {
			broker, off := fmt.Sprint(f.Broker), fmt.Sprint(f.Offset)
			if f.Broker < 0 {
				broker = "-"
			}
			if f.Offset < 0 {
				off = "-"
			}
			ft.row(f.Partition, f.Kind, broker, off, dash(f.Value), f.Detail)
		}
		if err := ft.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if res.Passed {
		order := "no duplicates, no reorders (idempotent producers)"
		switch res.IdempotentLogs {
		case 0:
			order = fmt.Sprintf("%d duplicates of acked and %d of indefinite records, %d reordered (counted: producers not idempotent)",
				t.DupAcked, t.DupIndefinite, t.Reordered)
		case len(res.Logs):
		default:
			order = fmt.Sprintf("none of the idempotent producers' records duplicated or reordered; %d duplicates of acked and %d of indefinite records, %d reordered in all",
				t.DupAcked, t.DupIndefinite, t.Reordered)
		}
		_, err := fmt.Fprintf(w, "RESULT: PASS: %d acknowledged records all present on the leaders and in-sync replicas; no divergence below the HW, no gaps; %s; %d of %d indefinite outcomes found\n",
			t.Acked-t.AckedExpired, order, t.IndefiniteFound, t.Indefinite)
		return err
	}
	_, err := fmt.Fprintf(w, "RESULT: FAIL: %s\n", strings.Join(res.Problems, "; "))
	return err
}
