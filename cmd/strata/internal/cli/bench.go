package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-log/strata/cmd/strata/internal/histogram"
	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// benchFlags are shared by bench produce and bench consume.
type benchFlags struct {
	topic      string
	records    int64
	size       int
	producers  int
	partitions int
	acks       string
	batchBytes int
	linger     time.Duration
	inFlight   int
	maxInFl    int
	noIdem     bool
	rate       float64
	warmup     int64
	create     bool
	fsync      string
	progress   string
	cpuProfile string
}

func (b *benchFlags) register(fs *flag.FlagSet, produce bool) {
	fs.StringVar(&b.topic, "topic", "bench", "`topic` to use")
	defRecords := int64(100000)
	if !produce {
		defRecords = 0
	}
	fs.Int64Var(&b.records, "records", defRecords, "number of `records` (consume: 0 means up to the end at start)")
	fs.IntVar(&b.partitions, "partitions", 1, "`partitions` of the topic when --create makes it")
	fs.BoolVar(&b.create, "create", false, "create the topic if it does not exist")
	fs.BoolVar(&b.noIdem, "no-idempotence", false, "plain batches instead of the idempotent producer's")
	fs.StringVar(&b.fsync, "fsync", "", "fsync `policy` of a topic --create makes: always, never, interval:<d> (default: broker's)")
	fs.StringVar(&b.progress, "progress", "auto", "progress bar: auto (when stdout is a terminal), always, never")
	fs.StringVar(&b.cpuProfile, "cpuprofile", "", "write this client's CPU profile to `file` (go tool pprof)")
	if produce {
		fs.IntVar(&b.size, "size", 1024, "record value size in `bytes`")
		fs.IntVar(&b.producers, "producers", 1, "concurrent `producers`, each with its own connection")
		fs.StringVar(&b.acks, "acks", "all", "`acks`: none, leader, all (all is the default, as in Kafka 3)")
		fs.IntVar(&b.batchBytes, "batch-bytes", 1<<20, "max batch size in `bytes`")
		fs.DurationVar(&b.linger, "linger", 0, "batch linger `duration`")
		fs.IntVar(&b.inFlight, "in-flight", 64, "max batches in flight per broker per producer")
		fs.IntVar(&b.maxInFl, "max-in-flight", 5, "max batches in flight per partition (idempotent producer; 1 to 5)")
		fs.Float64Var(&b.rate, "rate", 0, "cap the total rate at this many `records/s` (0: unlimited)")
		fs.Int64Var(&b.warmup, "warmup-records", 0, "produce this many `records` first, unmeasured (connections open, a new topic's followers fetching)")
	}
}

// benchSummary is the --json output.
type benchSummary struct {
	Kind          string  `json:"kind"`
	Topic         string  `json:"topic"`
	Records       int64   `json:"records"`
	Errors        int64   `json:"errors"`
	Size          int     `json:"size_bytes"`
	Producers     int     `json:"producers,omitempty"`
	Partitions    int     `json:"partitions"`
	Acks          string  `json:"acks,omitempty"`
	BatchBytes    int     `json:"batch_bytes,omitempty"`
	Linger        string  `json:"linger,omitempty"`
	MaxInFlight   int     `json:"max_in_flight,omitempty"`
	Rate          float64 `json:"rate_limit,omitempty"`
	Warmup        int64   `json:"warmup_records,omitempty"`
	Fsync         string  `json:"fsync"`
	TLS           string  `json:"tls"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_sec"`
	MiBPerSec     float64 `json:"mib_per_sec"`
	LatencyMs     *struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
	} `json:"latency_ms,omitempty"`
	FirstError string `json:"first_error,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchTopic makes sure the topic exists and returns its partitions and
// fsync policy.
func benchTopic(ctx context.Context, cl *client.Client, b *benchFlags) (int, string, error) {
	tm, err := cl.DescribeTopic(ctx, b.topic)
	if err != nil && errors.Is(err, client.ErrTopicNotFound) && b.create {
		tm, err = cl.CreateTopic(ctx, b.topic, &stratav1.TopicConfig{Partitions: int32(b.partitions), ReplicationFactor: 1, Fsync: b.fsync})
	}
	if err != nil {
		return 0, "", topicErr(b.topic, err)
	}
	if err := cl.RefreshMetadata(ctx); err != nil {
		return 0, "", err
	}
	fsync := tm.GetConfig().GetFsync()
	if fsync == "" {
		fsync = "broker default"
	}
	return len(tm.GetPartitions()), fsync, nil
}

func (e *env) tlsMode() string {
	c, err := e.resolve()
	if err != nil || c.Insecure {
		return "plaintext"
	}
	return "mTLS 1.3"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar redraws a one-line bar until stop is called.
func progressBar(w io.Writer, total int64, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-quit:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
				n := done.Load()
				frac := float64(n) / float64(max(total, 1))
				bar := strings.Repeat("=", int(frac*40)) + strings.Repeat(" ", 40-int(frac*40))
				fmt.Fprintf(w, "\r[%s] %5.1f%% %d/%d %.0f rec/s", bar, 100*frac, n, total, float64(n)/time.Since(start).Seconds())
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
}

func (b *benchFlags) showProgress(w io.Writer) bool {
	switch b.progress {
	case "always":
		return true
	case "never":
		return false
	}
	return isTerminal(w)
}

func runBenchProduce(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var b benchFlags
	b.register(fs, true)
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(b.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	acks, err := client.ParseAcks(b.acks)
	if err != nil {
		return usagef("--acks %q: want none, leader or all", b.acks)
	}
	if b.records <= 0 || b.size < 0 || b.producers <= 0 {
		return usagef("--records and --producers must be positive, --size not negative")
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

	clients := make([]*client.Client, b.producers)
	for i := range clients {
		if clients[i], err = e.connect(ctx); err != nil {
			for _, c := range clients[:i] {
				c.Close()
			}
			return err
		}
	}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	payload := make([]byte, b.size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	var acked, failed atomic.Int64
	var firstErr atomic.Pointer[error]
	hists := make([]histogram.Histogram, b.producers)
	var lastAck atomic.Int64

	producers := make([]*client.Producer, b.producers)
	for i, cl := range clients {
		// Closed by benchProducer, or by Close of its client on an early return.
		producers[i], err = cl.NewProducer(client.ProducerOptions{Acks: acks, Linger: b.linger, MaxBatchBytes: b.batchBytes, MaxInFlightPerBroker: b.inFlight, MaxInFlight: b.maxInFl, DisableIdempotence: b.noIdem})
		if err != nil {
			return err
		}
	}
	if err := benchWarmup(ctx, producers, b.topic, payload, b.warmup); err != nil {
		return fmt.Errorf("warmup: %w", err)
	}

	var stopBar func()
	if b.showProgress(e.io.Out) {
		stopBar = progressBar(e.io.Out, b.records, &acked)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, b.producers)
	for i := 0; i < b.producers; i++ {
		n := b.records / int64(b.producers)
		if int64(i) < b.records%int64(b.producers) {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = benchProducer(ctx, producers[i], &b, payload, n, &hists[i], &acked, &failed, &firstErr, &lastAck, start)
		}()
	}
	wg.Wait()
	if stopBar != nil {
		stopBar()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	end := time.Unix(0, lastAck.Load())
	var h histogram.Histogram
	for i := range hists {
		h.Merge(&hists[i])
	}
	s := benchSummary{Kind: "produce", Topic: b.topic, Records: acked.Load(), Errors: failed.Load(), Size: b.size,
		Producers: b.producers, Partitions: parts, Acks: acks.String(), BatchBytes: b.batchBytes, Linger: b.linger.String(), MaxInFlight: b.maxInFl,
		Rate: b.rate, Warmup: b.warmup, Fsync: fsync, TLS: e.tlsMode()}
	s.Seconds = end.Sub(start).Seconds()
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Records) / s.Seconds
		s.MiBPerSec = s.RecordsPerSec * float64(b.size) / (1 << 20)
	}
	s.LatencyMs = &struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
	}{ms(h.Quantile(0.5)), ms(h.Quantile(0.99)), ms(h.Quantile(0.999)), ms(h.Max())}
	if p := firstErr.Load(); p != nil {
		s.FirstError = (*p).Error()
	}
	if e.g.json {
		if err := printJSON(e.io.Out, s); err != nil {
			return err
		}
	} else {
		rate := "unlimited"
		if b.rate > 0 {
			rate = fmt.Sprintf("%.0f rec/s", b.rate)
		}
		fmt.Fprintf(e.io.Out, "bench produce: topic=%s partitions=%d size=%dB producers=%d acks=%s batch=%dB linger=%s rate=%s fsync=%s tls=%s\n",
			b.topic, parts, b.size, b.producers, acks, b.batchBytes, b.linger, rate, fsync, s.TLS)
		fmt.Fprintf(e.io.Out, "  %d records in %.3fs: %.0f records/s, %.1f MiB/s (%d errors)\n", s.Records, s.Seconds, s.RecordsPerSec, s.MiBPerSec, s.Errors)
		fmt.Fprintf(e.io.Out, "  latency: p50 %.3fms  p99 %.3fms  p99.9 %.3fms  max %.3fms\n", s.LatencyMs.P50, s.LatencyMs.P99, s.LatencyMs.P999, s.LatencyMs.Max)
	}
	if s.Errors > 0 {
		return fmt.Errorf("%d records failed; first error: %s", s.Errors, s.FirstError)
	}
	return nil
}

// paceStep is the shortest sleep of a rate-limited bench producer.
const paceStep = time.Millisecond

// benchWarmup produces n records spread over the producers and waits for
// them all, before anything is measured.
func benchWarmup(ctx context.Context, producers []*client.Producer, topic string, payload []byte, n int64) error {
	if n <= 0 {
		return nil
	}
	results := make([]*client.Result, 0, n)
	for i := int64(0); i < n; i++ {
		results = append(results, producers[i%int64(len(producers))].Produce(ctx, &client.Record{Topic: topic, Value: payload}))
	}
	for _, r := range results {
		if _, err := r.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

func benchProducer(ctx context.Context, p *client.Producer, b *benchFlags, payload []byte, n int64,
	h *histogram.Histogram, acked, failed *atomic.Int64, firstErr *atomic.Pointer[error], lastAck *atomic.Int64, start time.Time) error {
	var mu sync.Mutex
	cb := func(m client.RecordMetadata, err error) {
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		mu.Lock()
		h.Record(m.Acked.Sub(m.Produced))
		mu.Unlock()
		acked.Add(1)
		for t := m.Acked.UnixNano(); ; {
			cur := lastAck.Load()
			if t <= cur || lastAck.CompareAndSwap(cur, t) {
				break
			}
		}
	}
	var interval time.Duration
	if b.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(b.producers) / b.rate)
	}
	pace := time.NewTimer(0)
	defer pace.Stop()
	for i := int64(0); i < n && ctx.Err() == nil; i++ {
		if interval > 0 {
			// Sleeping at least paceStep spares a timer wakeup per record at
			// high rates (they share the machine with the brokers): the
			// records that fall due meanwhile go out together. Each latency
			// still starts when its record is handed to the producer.
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				pace.Reset(max(wait, paceStep))
				select {
				case <-pace.C:
				case <-ctx.Done():
				}
			}
		}
		p.ProduceCallback(ctx, &client.Record{Topic: b.topic, Value: payload}, cb)
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(p.Close(closeCtx), ctx.Err())
}

func runBenchConsume(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var b benchFlags
	b.register(fs, false)
	var g benchGroupFlags
	g.register(fs)
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(b.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	if g.group != "" {
		return runBenchConsumeGroup(ctx, e, &b, &g)
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	parts, fsync, err := benchTopic(ctx, cl, &b)
	if err != nil {
		return err
	}
	// Each partition is read from its start to its end at start.
	type span struct{ start, end int64 }
	spans := make([]span, parts)
	var avail int64
	for p := range spans {
		s, hw, err := cl.PartitionOffsets(ctx, b.topic, int32(p))
		if err != nil {
			return topicErr(b.topic, err)
		}
		spans[p] = span{s, hw}
		avail += hw - s
	}
	total := b.records
	if total <= 0 || total > avail {
		total = avail
	}
	var got, bytes atomic.Int64
	var stopBar func()
	if b.showProgress(e.io.Out) {
		stopBar = progressBar(e.io.Out, total, &got)
	}
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, parts)
	for p := range spans {
		if spans[p].end <= spans[p].start {
			continue
		}
		cs, err := cl.NewConsumer(ctx, client.ConsumerOptions{Topic: b.topic, Partition: int32(p), Start: client.AtOffset(spans[p].start), MaxBatchRecords: 2000, MaxBatchBytes: 4 << 20})
		if err != nil {
			return topicErr(b.topic, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cs.Close()
			for {
				recs, err := cs.Poll(cctx)
				if err != nil {
					if cctx.Err() == nil {
						errs[p] = err
					}
					return
				}
				var nb int64
				for i := range recs {
					nb += int64(len(recs[i].Value))
				}
				bytes.Add(nb)
				if got.Add(int64(len(recs))) >= total {
					stop()
					return
				}
				if recs[len(recs)-1].Offset+1 >= spans[p].end {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if stopBar != nil {
		stopBar()
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	s := benchSummary{Kind: "consume", Topic: b.topic, Records: got.Load(), Partitions: parts, Fsync: fsync, TLS: e.tlsMode(), Seconds: elapsed.Seconds()}
	if s.Records > 0 {
		s.Size = int(bytes.Load() / s.Records)
	}
	if s.Seconds > 0 {
		s.RecordsPerSec = float64(s.Records) / s.Seconds
		s.MiBPerSec = float64(bytes.Load()) / s.Seconds / (1 << 20)
	}
	if e.g.json {
		return printJSON(e.io.Out, s)
	}
	fmt.Fprintf(e.io.Out, "bench consume: topic=%s partitions=%d avg size=%dB fsync=%s tls=%s\n", b.topic, parts, s.Size, fsync, s.TLS)
	_, err = fmt.Fprintf(e.io.Out, "  %d records in %.3fs: %.0f records/s, %.1f MiB/s\n", s.Records, s.Seconds, s.RecordsPerSec, s.MiBPerSec)
	return err
}

// startCPUProfile profiles this process into path until the returned stop
// is called; an empty path profiles nothing.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close() // the profile is advisory: a close error is not the bench's
	}, nil
}
