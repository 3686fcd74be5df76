package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// streamProducer produces a sequence-numbered stream ("idem-000000",
// "idem-000001", ...) to partition 0 with an idempotent acks=ALL producer,
// streamBurst records every streamTick, from one goroutine, so that the
// order of the Produce calls is the order of the sequence numbers. The
// delivery timeout is longer than the test: every record must be
// acknowledged, whatever the producer retried on the way.
type streamProducer struct {
	p      *client.Producer
	reg    *prometheus.Registry // the producer's metrics
	stop   chan struct{}
	done   chan struct{}
	closed sync.Once

	mu       sync.Mutex
	produced int                     // records handed to the producer
	acks     []client.RecordMetadata // by sequence number; Offset -1 until acked
	errs     []error
}

const (
	streamTick  = 2 * time.Millisecond
	streamBurst = 4
)

func streamValue(seq int) string { return fmt.Sprintf("idem-%06d", seq) }

func startStreamProducer(t *testing.T, cl *client.Client) *streamProducer {
	t.Helper()
	// A short request timeout and backoff: an answer lost with the leader
	// is given up on (and the batch retried) within a second or two, as a
	// real deployment's would be, only sooner.
	m := client.NewMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	p, err := cl.NewProducer(client.ProducerOptions{Acks: client.AcksAll, DeliveryTimeout: 2 * time.Minute,
		RequestTimeout: 2 * time.Second, RetryBackoff: 10 * time.Millisecond, RetryBackoffMax: 200 * time.Millisecond, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	sp := &streamProducer{p: p, reg: reg, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sp.done)
		tick := time.NewTicker(streamTick)
		defer tick.Stop()
		for seq := 0; ; {
			select {
			case <-sp.stop:
				return
			case <-tick.C:
			}
			for range streamBurst {
				v := streamValue(seq)
				sp.mu.Lock()
				sp.acks = append(sp.acks, client.RecordMetadata{Offset: -1})
				sp.produced++
				sp.mu.Unlock()
				i := seq
				p.ProduceCallback(context.Background(), &client.Record{Topic: topic, Partition: 0, ExplicitPartition: true,
					Key: []byte("k"), Value: []byte(v)}, func(md client.RecordMetadata, err error) {
					sp.mu.Lock()
					defer sp.mu.Unlock()
					if err != nil {
						sp.errs = append(sp.errs, fmt.Errorf("%s: %w", v, err))
						return
					}
					sp.acks[i] = md
				})
				seq++
			}
		}
	}()
	t.Cleanup(func() {
		// A test that failed early: outstanding records fail at once.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sp.finish(ctx)
	})
	return sp
}

// finish stops producing and waits (bounded by ctx) for every outcome;
// only the first call does.
func (sp *streamProducer) finish(ctx context.Context) error {
	var err error
	sp.closed.Do(func() {
		close(sp.stop)
		<-sp.done
		err = sp.p.Close(ctx)
	})
	return err
}

// ackedSince counts the records acknowledged after t.
func (sp *streamProducer) ackedSince(t time.Time) int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	n := 0
	for _, a := range sp.acks {
		if a.Offset >= 0 && a.Acked.After(t) {
			n++
		}
	}
	return n
}

// counter is the producer's counter name{labels...} (label pairs), summed
// over the series that match; 0 when there is none.
func (sp *streamProducer) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := sp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// nodeFault takes out the process(es) of the node leading partition 0
// and brings them back.
type nodeFault struct {
	name       string
	down, back func(c *cluster, n *node)
}

// TestIdempotentProducerFailover: an idempotent acks=ALL producer writes a
// sequence-numbered stream to partition 0 (replication factor 3,
// min.insync.replicas 2) while the broker leading it is killed (SIGKILL),
// or its whole node (broker and replicator), and later restarted, or the
// broker is hung (SIGSTOP) and later continued. The
// batches in flight and queued at the kill are retried on the new leader,
// which must recognize any that were already appended (the producer
// state travels with the replicated log); the restarted node rejoins and
// may take the leadership back (preferred leader), under load too. At
// the end every record produced was acknowledged, the producer saw no
// error (its retries are its own), and the partition, read from its
// leader and compared with every replica, is exactly the stream: each
// record once, in the order produced, at the offset acknowledged.
func TestIdempotentProducerFailover(t *testing.T) {
	for _, f := range []nodeFault{
		{name: "broker-killed",
			down: func(c *cluster, n *node) { c.stopBroker(n, syscall.SIGKILL) },
			back: func(c *cluster, n *node) { c.startBroker(n) }},
		{name: "node-killed",
			down: func(c *cluster, n *node) { c.stop(n, syscall.SIGKILL) },
			back: func(c *cluster, n *node) { c.start(n) }},
		// A hung leader may have appended and replicated a batch whose
		// answer never left: the retry must be recognized on the new
		// leader. Continued, it finds itself deposed.
		{name: "broker-hung",
			down: func(c *cluster, n *node) { c.signalBroker(n, syscall.SIGSTOP) },
			back: func(c *cluster, n *node) { c.signalBroker(n, syscall.SIGCONT) }},
	} {
		t.Run(f.name, func(t *testing.T) { testIdempotentFailover(t, f) })
	}
}

func testIdempotentFailover(t *testing.T, f nodeFault) {
	began := time.Now()
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	before := waitFullISR(t, cl, 30*time.Second)[0]
	victim := before.GetLeaderId()
	vn := c.nodes[victim-1]
	// Leaders and ISRs from a replicator that stays up.
	meta := c.metadata(c.nodes[victim%3])
	t.Logf("cluster up, topic created in %s; partition 0 led by node %d in epoch %d", time.Since(began).Round(10*time.Millisecond),
		victim, before.GetLeaderEpoch())

	sp := startStreamProducer(t, cl)
	// Load before the fault: the producer has a producer id and the
	// leader a producer state that the followers replicated.
	waitFor(t, 20*time.Second, func() error {
		if n := sp.ackedSince(time.Time{}); n < 1000 {
			return fmt.Errorf("%d records acknowledged so far", n)
		}
		return nil
	})

	f.down(c, vn) // a kill returns once the process(es) exited
	killed := time.Now()
	sp.mu.Lock()
	producedAtKill := sp.produced
	sp.mu.Unlock()
	moved := waitFor(t, 30*time.Second, func() error {
		ps, err := metaPartitions(ctx, meta)
		if err != nil {
			return err
		}
		p := ps[0]
		if p.GetLeaderId() == victim || p.GetLeaderId() < 0 || p.GetLeaderEpoch() <= before.GetLeaderEpoch() {
			return fmt.Errorf("partition 0: leader %d epoch %d (was %d in %d)", p.GetLeaderId(), p.GetLeaderEpoch(), victim, before.GetLeaderEpoch())
		}
		return nil
	})
	// Produce on the new leader for a while, then bring the node back.
	resumed := waitFor(t, 30*time.Second, func() error {
		if n := sp.ackedSince(moved); n < 500 {
			return fmt.Errorf("%d records acknowledged since the leadership moved", n)
		}
		return nil
	})
	t.Logf("node %d's %s: leadership moved in %s, 500 records acknowledged by the new leader %s later",
		victim, f.name, moved.Sub(killed).Round(10*time.Millisecond), resumed.Sub(moved).Round(10*time.Millisecond))
	f.back(c, vn)
	back := time.Now()
	full := waitFor(t, 40*time.Second, func() error {
		ps, err := metaPartitions(ctx, meta)
		if err != nil {
			return err
		}
		if p := ps[0]; p.GetLeaderId() < 0 || len(p.GetIsr()) != 3 {
			return fmt.Errorf("partition 0: leader %d, ISR %v", p.GetLeaderId(), p.GetIsr())
		}
		return nil
	})
	t.Logf("node %d back: ISR full %s after the restart (or SIGCONT)", victim, full.Sub(back).Round(10*time.Millisecond))
	// A little more load with every replica back (the preferred leader
	// may take the partition back meanwhile).
	waitFor(t, 20*time.Second, func() error {
		if n := sp.ackedSince(full); n < 500 {
			return fmt.Errorf("%d records acknowledged since the ISR was full", n)
		}
		return nil
	})
	fctx, fcancel := context.WithTimeout(ctx, 30*time.Second)
	defer fcancel()
	if err := sp.finish(fctx); err != nil {
		t.Fatalf("producer close: %v", err)
	}

	sp.mu.Lock()
	acks, produced, errs := slices.Clone(sp.acks), sp.produced, slices.Clone(sp.errs)
	sp.mu.Unlock()
	if len(errs) > 0 {
		t.Fatalf("the producer failed %d of %d records; first: %v", len(errs), produced, errs[0])
	}
	// Records produced before the fault and acknowledged after it were in
	// flight or queued at the fault: the new leader acknowledged them
	// (how many depends on the instant; logged). What is certain is that
	// attempts failed and were retried: every send to the old leader
	// after the fault fails or times out.
	crossed := 0
	for i, a := range acks {
		if a.Offset < 0 {
			t.Fatalf("record %d (%s) never answered", i, streamValue(i))
		}
		if i < producedAtKill && a.Acked.After(killed) {
			crossed++
		}
	}
	retries := sp.counter(t, "strata_client_produce_retries_total")
	if retries == 0 {
		t.Fatalf("the producer retried nothing: the fault caught nothing in flight")
	}
	if failed := sp.counter(t, "strata_client_produce_batches_total", "result", "error"); failed > 0 {
		t.Fatalf("%v batches failed", failed)
	}

	// The leader's copy is exactly the stream.
	var leader int32 = -1
	eventually(t, 10*time.Second, func() error {
		ps, err := metaPartitions(ctx, meta)
		if err != nil {
			return err
		}
		if leader = ps[0].GetLeaderId(); leader < 0 {
			return errors.New("partition 0 has no leader")
		}
		return nil
	})
	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	recs, last, err := readAll(rctx, c.replica(c.nodes[leader-1]), topic, 0)
	if err != nil {
		t.Fatalf("read partition 0 from its leader %d: %v", leader, err)
	}
	checkStream(t, recs, acks)
	t.Logf("%d records produced, all acknowledged (%v batches, %v attempts retried; %d records produced before the fault acknowledged after it); leader %d's log (end %d) holds each once, in order",
		produced, sp.counter(t, "strata_client_produce_batches_total"), retries, crossed, leader, last.GetLogEndOffset())

	// Every replica holds the same (no divergence), the acknowledged
	// offsets included.
	all := make([]acked, len(acks))
	for i, a := range acks {
		all[i] = acked{0, a.Offset, streamValue(i)}
	}
	c.checkReplicas(t, all, 1)
	t.Logf("done in %s", time.Since(began).Round(10*time.Millisecond))
}

// checkStream asserts that recs (a partition's whole copy) is exactly the
// stream acks acknowledged: record i is the value of sequence i, at the
// offset its ack gave. A duplicate, a gap, a reorder or a foreign record
// each fails, with the first place it shows.
func checkStream(t *testing.T, recs []*stratav1.Record, acks []client.RecordMetadata) {
	t.Helper()
	seen := make(map[string]int64, len(recs))
	var dups, misplaced []string
	for _, r := range recs {
		v := string(r.GetValue())
		if first, ok := seen[v]; ok {
			dups = append(dups, fmt.Sprintf("%s at %d and %d", v, first, r.GetOffset()))
			continue
		}
		seen[v] = r.GetOffset()
	}
	for i, a := range acks {
		v := streamValue(i)
		if off, ok := seen[v]; !ok || off != a.Offset {
			misplaced = append(misplaced, fmt.Sprintf("%s acked at %d, stored at %d (present %v)", v, a.Offset, off, ok))
		}
	}
	// In order: the stored values, read by offset, are the sequence
	// numbers 0, 1, 2, ... (and nothing else).
	reordered := ""
	for i, r := range recs {
		if want := streamValue(i); string(r.GetValue()) != want {
			reordered = fmt.Sprintf("the record at index %d (offset %d) is %q, want %q", i, r.GetOffset(), r.GetValue(), want)
			break
		}
	}
	if len(dups) > 0 || len(misplaced) > 0 || reordered != "" || len(recs) != len(acks) {
		t.Fatalf("partition 0 holds %d records for %d produced: %d duplicates (first %v), %d acknowledged records not at their offset (first %v); order: %s",
			len(recs), len(acks), len(dups), firstOf(dups), len(misplaced), firstOf(misplaced), reordered)
	}
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return s[0]
}
