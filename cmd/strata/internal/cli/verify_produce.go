package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/strata-log/strata/cmd/strata/internal/verify"
	"github.com/strata-log/strata/pkg/client"
)

// produceOpts are the flags of verify produce (and verify run).
type produceOpts struct {
	topic           string
	producers       int
	duration        time.Duration
	perProducer     int64
	rate            float64
	out             string
	run             string
	acks            string
	idempotent      bool
	drain           time.Duration
	deliveryTimeout time.Duration
	progress        time.Duration
}

func (o *produceOpts) register(fs *flag.FlagSet) {
	fs.StringVar(&o.topic, "topic", "", "`topic` to produce to (required; every partition gets records)")
	fs.IntVar(&o.producers, "producers", 4, "concurrent `producers`, each with its own connections")
	fs.DurationVar(&o.duration, "duration", 0, "produce for this long")
	fs.Int64Var(&o.perProducer, "records-per-producer", 0, "stop each producer after this many `records`")
	fs.Float64Var(&o.rate, "rate", 0, "cap the total rate at this many `records/s` (0: unlimited)")
	fs.StringVar(&o.out, "out", "", "JSONL `file` recording every record's outcome (required)")
	fs.StringVar(&o.run, "run", "", "run `id` in every value, unique across logs checked together (default: random)")
	fs.StringVar(&o.acks, "acks", "all", "`acks`: all or leader (none gives no offsets to check)")
	fs.BoolVar(&o.idempotent, "idempotent", true, "idempotent producers (producer ids and sequences: a retried batch is stored once, in order); recorded in the log, "+
		"so that verify check fails on a duplicate or a reorder; --idempotent=false only counts them")
	fs.DurationVar(&o.drain, "drain-timeout", 45*time.Second, "after stopping, wait this long for outstanding records' outcomes")
	fs.DurationVar(&o.deliveryTimeout, "delivery-timeout", 30*time.Second, "give up on a record (indefinite) after this long, retries included")
	fs.DurationVar(&o.progress, "progress", 0, "print counts to stderr at this `interval` (0: never)")
}

func (o *produceOpts) validate() (client.Acks, error) {
	if o.topic == "" || o.out == "" {
		return 0, usagef("verify produce: --topic and --out are required")
	}
	if o.producers <= 0 || o.perProducer < 0 || o.duration < 0 || o.rate < 0 {
		return 0, usagef("verify produce: --producers must be positive; --records-per-producer, --duration and --rate not negative")
	}
	if o.duration == 0 && o.perProducer == 0 {
		return 0, usagef("verify produce: give --duration or --records-per-producer (or both)")
	}
	acks, err := client.ParseAcks(o.acks)
	if err != nil || acks == client.AcksNone {
		return 0, usagef("verify produce: --acks %q: want all or leader", o.acks)
	}
	if o.run == "" {
		b := make([]byte, 3)
		if _, err := rand.Read(b); err != nil {
			return 0, fmt.Errorf("verify produce: run id: %w", err)
		}
		o.run = hex.EncodeToString(b)
	}
	return acks, nil
}

// produceSummary is the outcome of verify produce (its --json output).
type produceSummary struct {
	Topic       string  `json:"topic"`
	Run         string  `json:"run"`
	Out         string  `json:"out"`
	Producers   int     `json:"producers"`
	Idempotent  bool    `json:"idempotent"`
	Partitions  int32   `json:"partitions"`
	Acked       int64   `json:"acked"`
	Indefinite  int64   `json:"indefinite"`
	Failed      int64   `json:"failed"`
	Seconds     float64 `json:"seconds"`
	AckedPerSec float64 `json:"acked_per_sec"`
	Interrupted bool    `json:"interrupted"`
}

func runVerifyProduce(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var o produceOpts
	o.register(fs)
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	s, err := verifyProduce(ctx, e, &o)
	if err != nil {
		return err
	}
	return printProduceSummary(e, s)
}

func printProduceSummary(e *env, s *produceSummary) error {
	if e.g.json {
		return printJSON(e.io.Out, s)
	}
	note := ""
	if s.Interrupted {
		note = " (interrupted)"
	}
	_, err := fmt.Fprintf(e.io.Out, "verify produce: topic=%s run=%s producers=%d idempotent=%t partitions=%d: %d acked, %d indefinite, %d failed in %.1fs (%.0f acked/s)%s -> %s\n",
		s.Topic, s.Run, s.Producers, s.Idempotent, s.Partitions, s.Acked, s.Indefinite, s.Failed, s.Seconds, s.AckedPerSec, note, s.Out)
	return err
}

// verifyProduce produces until the duration or count is reached or ctx
// ends, then waits (bounded by --drain-timeout) for every record's outcome,
// so that the log holds one line per record produced.
func verifyProduce(ctx context.Context, e *env, o *produceOpts) (*produceSummary, error) {
	acks, err := o.validate()
	if err != nil {
		return nil, err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	admin, err := e.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	parts, err := admin.Partitions(ctx, o.topic)
	if err != nil {
		return nil, topicErr(o.topic, err)
	}
	clients := make([]*client.Client, o.producers)
	for i := range clients {
		if clients[i], err = e.connect(ctx); err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return nil, err
		}
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()

	f, err := os.OpenFile(o.out, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("verify produce: %w", err)
	}
	start := time.Now()
	w := newOutcomeWriter(f)
	if err := verify.EncodeHeader(w.bw, verify.Header{Run: o.run, Topic: o.topic, Producers: o.producers, Idempotent: o.idempotent, StartedMs: start.UnixMilli()}); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	writerDone := make(chan struct{})
	stopWriter := make(chan struct{})
	go func() {
		defer close(writerDone)
		w.run(stopWriter)
	}()

	// The producing stops at the deadline or on ctx (SIGINT); the outcomes
	// of what was sent are still awaited after that, for --drain-timeout,
	// on a context that SIGINT does not end.
	pctx := ctx
	if o.duration > 0 {
		var pcancel context.CancelFunc
		pctx, pcancel = context.WithTimeout(ctx, o.duration)
		defer pcancel()
	}
	drainCtx := context.WithoutCancel(ctx)

	stopProgress := func() {}
	if o.progress > 0 {
		stopProgress = w.reportProgress(e.io.Err, o.progress)
	}
	var wg sync.WaitGroup
	errs := make([]error, o.producers)
	for i := range o.producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = verifyProducer(pctx, drainCtx, o, clients[i], i, parts, acks, w)
		}()
	}
	wg.Wait()
	stopProgress()
	close(stopWriter)
	<-writerDone
	elapsed := time.Since(start)
	// The log is the evidence: it must be on disk before anyone checks it.
	werr := w.err
	if werr == nil {
		werr = f.Sync()
	}
	if err := errors.Join(errors.Join(errs...), werr, f.Close()); err != nil {
		return nil, fmt.Errorf("verify produce: %w", err)
	}
	s := &produceSummary{Topic: o.topic, Run: o.run, Out: o.out, Producers: o.producers, Idempotent: o.idempotent, Partitions: parts,
		Acked: w.acked.Load(), Indefinite: w.indefinite.Load(), Failed: w.failed.Load(), Seconds: elapsed.Seconds(),
		Interrupted: ctx.Err() != nil}
	if s.Seconds > 0 {
		s.AckedPerSec = float64(s.Acked) / s.Seconds
	}
	return s, nil
}

// verifyProducer produces producer id's records: value "<run>-p<id>-<seq>",
// key "p<id>", partitions in turn (offset by id so that producers start on
// different partitions), in increasing seq, so that each partition gets a
// producer's records in increasing seq too: verify check holds the log to
// that order.
func verifyProducer(ctx, drainCtx context.Context, o *produceOpts, cl *client.Client, id int, parts int32,
	acks client.Acks, w *outcomeWriter) error {
	p, err := cl.NewProducer(client.ProducerOptions{Acks: acks, DeliveryTimeout: o.deliveryTimeout, DisableIdempotence: !o.idempotent})
	if err != nil {
		return err
	}
	var interval time.Duration
	if o.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(o.producers) / o.rate)
	}
	key := fmt.Appendf(nil, "p%d", id)
	start := time.Now()
	for seq := int64(0); o.perProducer == 0 || seq < o.perProducer; seq++ {
		if interval > 0 && !sleepUntil(ctx, start.Add(time.Duration(seq)*interval)) {
			break
		}
		if ctx.Err() != nil {
			break
		}
		value := fmt.Sprintf("%s-p%d-%d", o.run, id, seq)
		rec := &client.Record{Topic: o.topic, Key: key, Value: []byte(value),
			Partition: int32((seq + int64(id)) % int64(parts)), ExplicitPartition: true}
		p.ProduceCallback(ctx, rec, func(m client.RecordMetadata, err error) {
			w.add(outcomeOf(id, seq, value, m, err))
		})
	}
	// Close fails what is still unanswered at the drain deadline (those
	// records are indefinite) and returns only after every callback ran.
	closeCtx, cancel := context.WithTimeout(drainCtx, o.drain)
	defer cancel()
	if err := p.Close(closeCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("producer %d: close: %w", id, err)
	}
	return nil
}

// sleepUntil waits for t or ctx; false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// outcomeOf classifies what the producer learned about one record.
//
// A record the producer refused before queueing it (partition -1: its
// context ended while the buffer was full, or the producer was closed) was
// never sent: failed. A broker refusal that no retry can change
// (InvalidArgument, PermissionDenied, Unauthenticated, NotFound) is taken as
// failed too, although an earlier attempt of the same batch may have been
// lost in flight; the checker reports such a record if it turns up
// (failed-present) rather than treating it as an error. Everything else
// (deadlines, Unavailable until the delivery timeout, lost connections,
// ErrClosed at the drain deadline) leaves the record's fate unknown.
func outcomeOf(producer int, seq int64, value string, m client.RecordMetadata, err error) verify.Outcome {
	o := verify.Outcome{Kind: verify.KindAck, Value: value, Producer: producer, Seq: seq, Partition: m.Partition,
		Offset: m.Offset, ProducedMs: m.Produced.UnixMilli(), TimeMs: m.Acked.UnixMilli()}
	if err == nil {
		return o
	}
	o.Offset, o.Error = -1, err.Error()
	switch {
	case m.Partition < 0:
		o.Kind = verify.KindFailed
	case client.Code(err) == codes.InvalidArgument, client.Code(err) == codes.PermissionDenied,
		client.Code(err) == codes.Unauthenticated, client.Code(err) == codes.NotFound:
		o.Kind = verify.KindFailed
	default:
		o.Kind = verify.KindIndefinite
	}
	return o
}

// outcomeWriter appends outcomes to the log from one goroutine. Producer
// callbacks must not block, so add only queues under a mutex and nudges
// the writer.
type outcomeWriter struct {
	bw *bufio.Writer

	mu      sync.Mutex
	pending []verify.Outcome
	notify  chan struct{} // capacity 1: "pending is not empty"

	acked, indefinite, failed atomic.Int64
	err                       error // the first write error; read after run returns
}

func newOutcomeWriter(w io.Writer) *outcomeWriter {
	return &outcomeWriter{bw: bufio.NewWriterSize(w, 1<<20), notify: make(chan struct{}, 1)}
}

func (w *outcomeWriter) add(o verify.Outcome) {
	switch o.Kind {
	case verify.KindAck:
		w.acked.Add(1)
	case verify.KindIndefinite:
		w.indefinite.Add(1)
	default:
		w.failed.Add(1)
	}
	w.mu.Lock()
	w.pending = append(w.pending, o)
	w.mu.Unlock()
	select {
	case w.notify <- struct{}{}:
	default: // a nudge is already waiting
	}
}

// run writes queued outcomes until stop is closed, then writes the rest.
// Each batch is flushed, so the file grows while the run goes on (a chaos
// script counts acks in it) and a crash loses at most a batch.
func (w *outcomeWriter) run(stop <-chan struct{}) {
	var batch []verify.Outcome
	for {
		stopping := false
		select {
		case <-w.notify:
		case <-stop:
			stopping = true
		}
		w.mu.Lock()
		batch, w.pending = w.pending, batch[:0]
		w.mu.Unlock()
		for _, o := range batch {
			if w.err == nil {
				w.err = verify.EncodeOutcome(w.bw, o)
			}
		}
		if w.err == nil {
			w.err = w.bw.Flush()
		}
		if stopping {
			return
		}
	}
}

// reportProgress prints the counts every interval until the returned stop
// is called.
func (w *outcomeWriter) reportProgress(out io.Writer, every time.Duration) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				fmt.Fprintf(out, "verify produce: %.0fs: %d acked, %d indefinite, %d failed\n",
					time.Since(start).Seconds(), w.acked.Load(), w.indefinite.Load(), w.failed.Load())
			}
		}
	}()
	return func() { close(quit); <-done }
}
