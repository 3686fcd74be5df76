package group

import (
	"context"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Commits are written with acks=ALL, so each waits a replication round.
// Concurrent commits to one offsets partition share that round: a write
// queues its records, and one drainer per shard appends everything queued
// as one batch, answers every write of it, and goes again while more
// queued meanwhile (group commit, as the storage engine does for fsync).

// maxWriteBatch bounds the records of one batched append.
const maxWriteBatch = 4096

// writeTimeout bounds one batched append; a caller gives up earlier with
// its own context.
const writeTimeout = 30 * time.Second

// pendingWrite is one caller's records in the shard's queue.
type pendingWrite struct {
	recs []*stratav1.Record
	base int64 // offset of recs[0], once written
	err  error
	done chan struct{}
}

// write appends recs to s's partition acks=ALL, batched with other
// concurrent writes, and returns the offset of recs[0]. When ctx ends
// first the records may still be written (the outcome is unknown, as for
// any produce that times out).
func (c *Coordinator) write(ctx context.Context, s *shard, recs []*stratav1.Record) (int64, error) {
	w := &pendingWrite{recs: recs, done: make(chan struct{})}
	s.wmu.Lock()
	s.queue = append(s.queue, w)
	lead := !s.writing
	s.writing = true
	s.wmu.Unlock()
	if lead {
		c.wg.Add(1)
		go c.drain(s)
	}
	select {
	case <-w.done:
		return w.base, w.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// drain appends s's queued writes until none is left.
func (c *Coordinator) drain(s *shard) {
	defer c.wg.Done()
	for {
		s.wmu.Lock()
		n, size := 0, 0
		for n < len(s.queue) && (n == 0 || size+len(s.queue[n].recs) <= maxWriteBatch) {
			size += len(s.queue[n].recs)
			n++
		}
		batch := s.queue[:n:n]
		s.queue = s.queue[n:]
		if len(batch) == 0 {
			s.writing = false
			s.wmu.Unlock()
			return
		}
		s.wmu.Unlock()
		recs := make([]*stratav1.Record, 0, size)
		for _, w := range batch {
			recs = append(recs, w.recs...)
		}
		ctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
		res, err := s.p.Produce(ctx, recs, stratav1.Acks_ACKS_ALL)
		cancel()
		off := res.Base
		for _, w := range batch {
			w.base, w.err = off, err
			off += int64(len(w.recs))
			close(w.done)
		}
	}
}
