package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// groupConsume is consume --group: the flags that apply to it.
type groupConsume struct {
	group  string
	topic  string
	from   fromSpec
	follow bool
	count  int64
	format recordFormat
}

// groupCommitInterval is how often consume --group commits what it has
// printed while it runs (and it commits on its way out).
const groupCommitInterval = time.Second

// runConsumeGroup consumes topic as a member of a consumer group: the
// partitions the group's coordinator assigns it, from the group's
// committed offsets, printing records as consume does and committing the
// offsets after the records printed (never past them, so a -n cut or an
// interrupt loses nothing). Without --follow it stops once the partitions
// it was assigned are read to their end as of their assignment.
func runConsumeGroup(ctx context.Context, e *env, gf groupConsume) error {
	if err := groupName(gf.group); err != nil {
		return err
	}
	var start client.Position
	switch gf.from.kind {
	case "earliest":
		start = client.Earliest()
	case "latest":
		start = client.Latest()
	default:
		return usagef("--from with --group: earliest or latest (where the group has no committed offset yet; elsewhere it continues from its commit)")
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Partitions(ctx, gf.topic); err != nil {
		return topicErr(gf.topic, err)
	}

	var gc *client.GroupConsumer
	printed := map[client.TopicPartition]int64{} // the offset after the last record printed
	ends := map[client.TopicPartition]int64{}    // high watermarks at assignment; -1 unknown
	pollCancel := func() {}
	done := func() bool {
		if gf.follow || len(ends) == 0 {
			return false
		}
		for tp, end := range ends {
			if p, ok := gc.Position(tp); !ok || end < 0 || p < end {
				return false
			}
		}
		return true
	}
	commit := func(ctx context.Context, tps []client.TopicPartition) {
		offs := map[client.TopicPartition]int64{}
		for _, tp := range tps {
			if o, ok := printed[tp]; ok {
				offs[tp] = o
			}
		}
		if len(offs) == 0 {
			return
		}
		if err := gc.CommitOffsets(ctx, offs); err != nil {
			fmt.Fprintf(e.io.Err, "strata: commit of group %q: %s (the next reader starts from the previous commit)\n", gf.group, message(err))
		}
	}
	gc, err = cl.NewGroupConsumer(client.GroupConsumerOptions{
		Group: gf.group, Topics: []string{gf.topic}, ClientID: "strata-cli", StartFrom: start,
		DisableAutoCommit: true, // it commits what it printed, not what Poll returned
		OnAssigned: func(ctx context.Context, tps []client.TopicPartition) {
			for _, tp := range tps {
				ends[tp] = -1
				if _, hw, err := cl.PartitionOffsets(ctx, tp.Topic, tp.Partition); err == nil {
					ends[tp] = hw
				}
			}
			if done() {
				pollCancel()
			}
		},
		OnRevoked: func(ctx context.Context, tps []client.TopicPartition) {
			commit(ctx, tps)
			for _, tp := range tps {
				delete(printed, tp)
				delete(ends, tp)
			}
		},
	})
	if err != nil {
		return err
	}

	w := bufio.NewWriterSize(e.io.Out, 64<<10)
	var buf []byte
	var got int64
	var runErr error
	lastCommit := time.Now()
loop:
	for !done() {
		// A poll waits at most the commit interval, so that what was
		// printed is committed within it even when the topic goes quiet.
		pctx, pc := context.WithTimeout(ctx, groupCommitInterval)
		pollCancel = pc
		recs, err := gc.Poll(pctx)
		pc()
		switch {
		case err != nil && ctx.Err() != nil:
			break loop // interrupted, or --timeout: an end like consume's
		case err != nil && errors.Is(pctx.Err(), context.DeadlineExceeded):
			recs = nil // quiet: commit below
		case err != nil && pctx.Err() != nil:
			continue // done: cancelled by OnAssigned
		case err != nil:
			runErr = topicErr(gf.topic, err)
			break loop
		}
		for i := range recs {
			r := &recs[i]
			buf = buf[:0]
			if e.g.json {
				buf = appendJSONRecord(buf, r)
			} else {
				buf = gf.format.append(buf, r)
			}
			if _, err := w.Write(buf); err != nil {
				runErr = err
				break loop
			}
			printed[client.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
			got++
			if gf.count > 0 && got >= gf.count {
				break loop
			}
		}
		if err := w.Flush(); err != nil {
			runErr = err
			break
		}
		if time.Since(lastCommit) >= groupCommitInterval {
			commit(ctx, gc.Assignment())
			lastCommit = time.Now()
		}
	}
	if err := w.Flush(); err != nil && runErr == nil {
		runErr = err
	}
	// Close commits what was printed (OnRevoked) and leaves, even after
	// an interrupt or --timeout.
	cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer ccancel()
	if err := gc.Close(cctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("leave group %q: %w", gf.group, err)
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}
