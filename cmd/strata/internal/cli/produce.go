package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/strata-log/strata/pkg/client"
)

func runProduce(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	keyDelim := fs.String("key-delim", "", "split each line at the first `delim`iter into key and value")
	var partition partitionFlag
	fs.Var(&partition, "partition", "produce to this `partition` (default: by key hash, else round-robin)")
	acksS := fs.String("acks", "all", "acknowledgement `policy`: none, leader, all (default all)")
	noIdem := fs.Bool("no-idempotence", false, "send plain batches: a retried batch may be appended twice (idempotence is on by default, off with --acks none)")
	linger := fs.Duration("linger", 0, "batch records for this long")
	verbose := fs.Bool("v", false, "print each record's partition and offset")
	var headers multiFlag
	fs.Var(&headers, "H", "add a header `key=value` to every record (repeatable)")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	topic := pos[0]
	acks, err := client.ParseAcks(*acksS)
	if err != nil {
		return usagef("--acks %q: want none, leader or all", *acksS)
	}
	var hs []client.Header
	for _, h := range headers {
		k, v, err := parseKV(h)
		if err != nil {
			return usagef("-H %v", err)
		}
		hs = append(hs, client.Header{Key: k, Value: []byte(v)})
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Partitions(ctx, topic); err != nil {
		return topicErr(topic, err)
	}
	p, err := cl.NewProducer(client.ProducerOptions{Acks: acks, Linger: *linger, DisableIdempotence: *noIdem})
	if err != nil {
		return err
	}

	// Results are printed in order by one goroutine while stdin is read.
	results := make(chan *client.Result, 4096)
	printed := make(chan error, 1)
	go func() {
		var first error
		for r := range results {
			m, err := r.Wait(context.Background()) // every result completes: Close fails the rest
			if err != nil {
				if first == nil {
					first = err
				}
				continue
			}
			if *verbose {
				fmt.Fprintf(e.io.Out, "%s/%d@%d\n", m.Topic, m.Partition, m.Offset)
			}
		}
		printed <- first
	}()

	sc := bufio.NewScanner(e.io.In)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	delim := []byte(*keyDelim)
	var readErr error
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		rec := &client.Record{Topic: topic, Value: line, Headers: hs}
		if len(delim) > 0 {
			if k, v, ok := bytes.Cut(line, delim); ok {
				rec.Key, rec.Value = k, v
			}
		}
		if partition.set {
			rec.Partition, rec.ExplicitPartition = partition.v, true
		}
		select {
		case results <- p.Produce(ctx, rec):
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := sc.Err(); err != nil {
		readErr = fmt.Errorf("read stdin: %w", err)
	}
	closeErr := p.Close(ctx)
	close(results)
	perr := <-printed
	if perr != nil {
		return topicErr(topic, perr)
	}
	if err := errors.Join(readErr, closeErr, ctx.Err()); err != nil {
		return err
	}
	return nil
}
