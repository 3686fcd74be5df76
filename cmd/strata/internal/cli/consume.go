package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"sync"

	"github.com/strata-log/strata/pkg/client"
)

func runConsume(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var partition partitionFlag
	fs.Var(&partition, "partition", "consume only this `partition` (default: all)")
	fromS := fs.String("from", "earliest", "start `position`: earliest, latest, N (offset), -N (N before the end), RFC3339 time")
	follow := fs.Bool("follow", false, "keep waiting for new records at the end")
	fs.BoolVar(follow, "f", false, "short for --follow")
	count := fs.Int64("n", 0, "stop after `count` records (0: no limit)")
	group := fs.String("group", "", "consume as a member of consumer `group` G: the partitions its coordinator assigns, from the group's committed offsets, committing what is printed (--from then applies where the group has no commit: earliest or latest)")
	formatS := fs.String("format", DefaultFormat, "output `format`: %t topic, %p partition, %o offset, %k key, %s value, %K/%S key/value length, %T timestamp ms, %h headers, \\n \\t escapes")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	topic := pos[0]
	from, err := parseFrom(*fromS)
	if err != nil {
		return err
	}
	format, err := parseFormat(*formatS)
	if err != nil {
		return usagef("--format: %v", err)
	}
	if *group != "" {
		if partition.set {
			return usagef("--partition with --group: the group's coordinator assigns the partitions")
		}
		return runConsumeGroup(ctx, e, groupConsume{group: *group, topic: topic, from: from, follow: *follow, count: *count, format: format})
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	n, err := cl.Partitions(ctx, topic)
	if err != nil {
		return topicErr(topic, err)
	}
	parts := []int32{}
	if partition.set {
		if partition.v >= n {
			return usagef("--partition %d: topic %q has %d partitions", partition.v, topic, n)
		}
		parts = append(parts, partition.v)
	} else {
		for p := int32(0); p < n; p++ {
			parts = append(parts, p)
		}
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	recs := make(chan client.Record, 1024)
	errc := make(chan error, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		start, end, err := cl.PartitionOffsets(ctx, topic, p)
		if err != nil {
			return topicErr(topic, err)
		}
		startPos := from.position(start, end)
		if !*follow && end <= start {
			continue // empty partition
		}
		if !*follow && from.kind == "latest" {
			continue
		}
		cs, err := cl.NewConsumer(ctx, client.ConsumerOptions{Topic: topic, Partition: p, Start: startPos})
		if err != nil {
			return topicErr(topic, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.Close()
			for {
				r, err := cs.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errc <- err
					}
					return
				}
				if !*follow && r.Offset >= end {
					return
				}
				select {
				case recs <- r:
				case <-ctx.Done():
					return
				}
				if !*follow && r.Offset+1 >= end {
					return
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(recs)
	}()

	w := bufio.NewWriterSize(e.io.Out, 64<<10)
	var buf []byte
	var got int64
	var runErr error
loop:
	for {
		var r client.Record
		var ok bool
		select {
		case r, ok = <-recs:
		default:
			// Nothing waiting: show what we have before blocking.
			if err := w.Flush(); err != nil {
				runErr = err
				break loop
			}
			select {
			case r, ok = <-recs:
			case err := <-errc:
				runErr = topicErr(topic, err)
				break loop
			}
		}
		if !ok {
			break
		}
		buf = buf[:0]
		if e.g.json {
			buf = appendJSONRecord(buf, &r)
		} else {
			buf = format.append(buf, &r)
		}
		if _, err := w.Write(buf); err != nil {
			runErr = err
			break
		}
		got++
		if *count > 0 && got >= *count {
			break
		}
	}
	stop()
	wg.Wait()
	if err := w.Flush(); err != nil && runErr == nil {
		runErr = err
	}
	// Once the -n records asked for are out, a partition's error met after
	// them (a damaged record further on) is no failure of this command.
	if *count <= 0 || got < *count {
		select {
		case err := <-errc:
			if runErr == nil {
				runErr = topicErr(topic, err)
			}
		default:
		}
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return nil
}

type jsonRecord struct {
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	TimestampMs int64             `json:"timestamp_ms"`
	Key         *string           `json:"key"`
	Value       string            `json:"value"`
	Headers     map[string]string `json:"headers,omitempty"`
}

func appendJSONRecord(b []byte, r *client.Record) []byte {
	jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)}
	if !r.Timestamp.IsZero() {
		jr.TimestampMs = r.Timestamp.UnixMilli()
	}
	if r.Key != nil {
		k := string(r.Key)
		jr.Key = &k
	}
	if len(r.Headers) > 0 {
		jr.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			jr.Headers[h.Key] = string(h.Value)
		}
	}
	out, err := json.Marshal(jr)
	if err != nil { // cannot happen for these field types
		return b
	}
	return append(append(b, out...), '\n')
}
