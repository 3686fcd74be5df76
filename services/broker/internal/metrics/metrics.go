// Package metrics holds the broker's Prometheus collectors on a private
// registry and the gRPC interceptors that feed them; pkg/telemetry serves
// the registry.
package metrics

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PartitionStat is one partition's figures at scrape time.
type PartitionStat struct {
	Topic          string
	Partition      int32
	LogStartOffset int64
	LogEndOffset   int64
	HighWatermark  int64
	// Segments and Bytes are -1 when the log does not report them.
	Segments int
	Bytes    int64
	// Healthy is false when the log failed (it refuses writes until
	// reopened) or reports a corrupt record.
	Healthy bool
	// CorruptRecords (found by recovery or reads) and NoSpaceErrors
	// (writes refused for lack of space) count since the log opened; -1
	// when the log does not report them.
	CorruptRecords int64
	NoSpaceErrors  int64
	// Leader is true when this broker leads the partition; the fields
	// below are reported only then.
	Leader   bool
	Replicas int
	ISR      int
	// MinISR is the topic's min.insync.replicas.
	MinISR int
	// Followers are the leader's view of each follower.
	Followers []FollowerStat
}

// FollowerStat is a leader's view of one follower.
type FollowerStat struct {
	ID int32
	// LagRecords is the leader's log end minus the follower's position
	// (-1 when the follower has not reported in this epoch).
	LagRecords int64
	// LagSeconds is the time since the follower last caught up.
	LagSeconds float64
}

// Metrics are the broker's collectors.
type Metrics struct {
	reg *prometheus.Registry

	producedRecords *prometheus.CounterVec
	producedBytes   *prometheus.CounterVec
	consumedRecords *prometheus.CounterVec
	consumedBytes   *prometheus.CounterVec
	rpcDuration     *prometheus.HistogramVec
	openStreams     *prometheus.GaugeVec
	fsync           prometheus.Histogram
	isrChanges      *prometheus.CounterVec
	leaseEvents     *prometheus.CounterVec
	fetchBytes      *prometheus.CounterVec
	produceBatch    *prometheus.HistogramVec
	produceErrors   *prometheus.CounterVec
	readBatch       *prometheus.HistogramVec
}

// batchBuckets are the per-batch latency buckets: 100 µs to about 26 s.
var batchBuckets = prometheus.ExponentialBuckets(0.0001, 2, 19)

// New registers the collectors on a new private registry. partitions is
// called at every scrape for the per-partition gauges.
func New(partitions func() []PartitionStat) *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	m := &Metrics{reg: reg}
	m.producedRecords = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_produced_records_total", Help: "Records appended by produce RPCs."}, []string{"topic"})).(*prometheus.CounterVec)
	m.producedBytes = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_produced_bytes_total", Help: "Key and value bytes appended by produce RPCs."}, []string{"topic"})).(*prometheus.CounterVec)
	m.consumedRecords = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_consumed_records_total", Help: "Records sent by consume RPCs."}, []string{"topic"})).(*prometheus.CounterVec)
	m.consumedBytes = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_consumed_bytes_total", Help: "Stored record bytes sent by consume RPCs."}, []string{"topic"})).(*prometheus.CounterVec)
	m.rpcDuration = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_broker_rpc_duration_seconds",
		Help:    "gRPC call latency by method and status code (streams: their whole life).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"method", "code"})).(*prometheus.HistogramVec)
	m.openStreams = f(prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "strata_broker_open_streams", Help: "Streaming RPCs open now."}, []string{"method"})).(*prometheus.GaugeVec)
	m.fsync = f(prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "strata_broker_log_fsync_duration_seconds",
		Help:    "Duration of partition log store fsyncs.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 3, 10),
	})).(prometheus.Histogram)
	m.isrChanges = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_isr_changes_total", Help: "ISR changes this broker proposed as a leader, by outcome (shrink, expand, resign: leadership given up for a damaged log, failed)."}, []string{"kind"})).(*prometheus.CounterVec)
	m.leaseEvents = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_leader_lease_events_total", Help: "Partitions this broker leads whose leader lease ran out (expired: produce refused until its replicator confirms the leadership) or came back (renewed)."}, []string{"event"})).(*prometheus.CounterVec)
	m.fetchBytes = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_fetch_bytes_total", Help: "Frame bytes sent to followers by Fetch streams."}, []string{"topic"})).(*prometheus.CounterVec)
	m.produceBatch = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_broker_produce_batch_duration_seconds",
		Help:    "Time to append and acknowledge one produce batch (Produce, each ProduceStream and ProduceBulk batch), from its arrival to its answer; acks=all includes the wait for the high watermark.",
		Buckets: batchBuckets,
	}, []string{"acks"})).(*prometheus.HistogramVec)
	m.produceErrors = f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_broker_produce_batch_errors_total", Help: "Produce batches refused or failed, by gRPC status code."}, []string{"code"})).(*prometheus.CounterVec)
	m.readBatch = f(prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "strata_broker_read_batch_duration_seconds",
		Help:    "Time to read and send one batch of records: consume (Consume, each ConsumeStream batch) or fetch (each response of a follower's Fetch stream); waits for new records are not counted.",
		Buckets: batchBuckets,
	}, []string{"kind"})).(*prometheus.HistogramVec)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if partitions != nil {
		reg.MustRegister(newPartitionCollector(partitions))
	}
	return m
}

// Registry is the private registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Produced counts appended records.
func (m *Metrics) Produced(topic string, records, bytes int) {
	m.producedRecords.WithLabelValues(topic).Add(float64(records))
	m.producedBytes.WithLabelValues(topic).Add(float64(bytes))
}

// Consumed counts sent records.
func (m *Metrics) Consumed(topic string, records, bytes int) {
	m.consumedRecords.WithLabelValues(topic).Add(float64(records))
	m.consumedBytes.WithLabelValues(topic).Add(float64(bytes))
}

// ISRChange counts an ISR proposal or a resignation by outcome.
func (m *Metrics) ISRChange(kind string) { m.isrChanges.WithLabelValues(kind).Inc() }

// LeaderLease counts a leader lease event ("expired", "renewed").
func (m *Metrics) LeaderLease(event string) { m.leaseEvents.WithLabelValues(event).Inc() }

// Fetched counts frame bytes sent to a follower.
func (m *Metrics) Fetched(topic string, bytes int) {
	m.fetchBytes.WithLabelValues(topic).Add(float64(bytes))
}

// ProduceBatch times one produce batch; code is its gRPC status
// (codes.OK when it was appended and acknowledged).
func (m *Metrics) ProduceBatch(acks string, code codes.Code, d time.Duration) {
	m.produceBatch.WithLabelValues(acks).Observe(d.Seconds())
	if code != codes.OK {
		m.produceErrors.WithLabelValues(code.String()).Inc()
	}
}

// ReadBatch times one batch sent to a consumer ("consume") or a follower
// ("fetch").
func (m *Metrics) ReadBatch(kind string, d time.Duration) {
	m.readBatch.WithLabelValues(kind).Observe(d.Seconds())
}

// ObserveFsync is the storage engine's fsync hook.
func (m *Metrics) ObserveFsync(d time.Duration) { m.fsync.Observe(d.Seconds()) }

// UnaryInterceptor times unary calls.
func (m *Metrics) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.rpcDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return resp, err
	}
}

// StreamInterceptor times streams and counts the open ones.
func (m *Metrics) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		g := m.openStreams.WithLabelValues(info.FullMethod)
		g.Inc()
		defer g.Dec()
		err := handler(srv, ss)
		m.rpcDuration.WithLabelValues(info.FullMethod, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return err
	}
}

// partitionCollector reports per-partition gauges read at scrape time.
type partitionCollector struct {
	stats                                     func() []PartitionStat
	logStart, logEnd, hw, segments, bytesDesc *prometheus.Desc
	healthy, corrupt, noSpace                 *prometheus.Desc
	leader, isr, underReplicated, underMinISR *prometheus.Desc
	lagRecords, lagSeconds                    *prometheus.Desc
}

func newPartitionCollector(stats func() []PartitionStat) *partitionCollector {
	labels := []string{"topic", "partition"}
	return &partitionCollector{
		stats:           stats,
		logStart:        prometheus.NewDesc("strata_broker_log_start_offset", "First offset in the partition's log.", labels, nil),
		logEnd:          prometheus.NewDesc("strata_broker_log_end_offset", "Next offset to be assigned in the partition's log.", labels, nil),
		hw:              prometheus.NewDesc("strata_broker_high_watermark", "One past the last offset consumers may read.", labels, nil),
		segments:        prometheus.NewDesc("strata_broker_log_segments", "Segments in the partition's log.", labels, nil),
		bytesDesc:       prometheus.NewDesc("strata_broker_log_bytes", "Bytes of the partition's log stores.", labels, nil),
		healthy:         prometheus.NewDesc("strata_broker_log_healthy", "0 when the partition's log failed (refusing writes until reopened) or holds a corrupt record, else 1.", labels, nil),
		corrupt:         prometheus.NewDesc("strata_broker_log_corrupt_records_total", "Corrupt records found in the partition's log by recovery or reads since it was opened.", labels, nil),
		noSpace:         prometheus.NewDesc("strata_broker_log_no_space_errors_total", "Writes to the partition's log refused for lack of space since it was opened.", labels, nil),
		leader:          prometheus.NewDesc("strata_broker_partition_leader", "1 when this broker leads the partition.", labels, nil),
		isr:             prometheus.NewDesc("strata_broker_isr_size", "In-sync replicas of a partition this broker leads.", labels, nil),
		underReplicated: prometheus.NewDesc("strata_broker_under_replicated", "1 when a partition this broker leads has fewer in-sync replicas than replicas.", labels, nil),
		underMinISR:     prometheus.NewDesc("strata_broker_under_min_isr", "1 when a partition this broker leads has fewer in-sync replicas than its min.insync.replicas (acks=all produce is refused).", labels, nil),
		lagRecords:      prometheus.NewDesc("strata_broker_follower_lag_records", "Leader log end minus the follower's position (-1: not reported yet).", append(labels, "follower"), nil),
		lagSeconds:      prometheus.NewDesc("strata_broker_follower_lag_seconds", "Seconds since the follower last caught up with the leader's log end.", append(labels, "follower"), nil),
	}
}

func (c *partitionCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.logStart, c.logEnd, c.hw, c.segments, c.bytesDesc, c.healthy, c.corrupt, c.noSpace, c.leader, c.isr, c.underReplicated, c.underMinISR, c.lagRecords, c.lagSeconds} {
		ch <- d
	}
}

func (c *partitionCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		labels := []string{s.Topic, strconv.Itoa(int(s.Partition))}
		ch <- prometheus.MustNewConstMetric(c.logStart, prometheus.GaugeValue, float64(s.LogStartOffset), labels...)
		ch <- prometheus.MustNewConstMetric(c.logEnd, prometheus.GaugeValue, float64(s.LogEndOffset), labels...)
		ch <- prometheus.MustNewConstMetric(c.hw, prometheus.GaugeValue, float64(s.HighWatermark), labels...)
		if s.Segments >= 0 {
			ch <- prometheus.MustNewConstMetric(c.segments, prometheus.GaugeValue, float64(s.Segments), labels...)
			ch <- prometheus.MustNewConstMetric(c.bytesDesc, prometheus.GaugeValue, float64(s.Bytes), labels...)
		}
		healthy := 0.0
		if s.Healthy {
			healthy = 1
		}
		ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, healthy, labels...)
		if s.CorruptRecords >= 0 {
			ch <- prometheus.MustNewConstMetric(c.corrupt, prometheus.CounterValue, float64(s.CorruptRecords), labels...)
		}
		if s.NoSpaceErrors >= 0 {
			ch <- prometheus.MustNewConstMetric(c.noSpace, prometheus.CounterValue, float64(s.NoSpaceErrors), labels...)
		}
		if !s.Leader {
			ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, 0, labels...)
			continue
		}
		under := 0.0
		if s.ISR < s.Replicas {
			under = 1
		}
		ch <- prometheus.MustNewConstMetric(c.leader, prometheus.GaugeValue, 1, labels...)
		ch <- prometheus.MustNewConstMetric(c.isr, prometheus.GaugeValue, float64(s.ISR), labels...)
		ch <- prometheus.MustNewConstMetric(c.underReplicated, prometheus.GaugeValue, under, labels...)
		underMin := 0.0
		if s.ISR < s.MinISR {
			underMin = 1
		}
		ch <- prometheus.MustNewConstMetric(c.underMinISR, prometheus.GaugeValue, underMin, labels...)
		for _, f := range s.Followers {
			fl := append(labels[:2:2], strconv.Itoa(int(f.ID)))
			ch <- prometheus.MustNewConstMetric(c.lagRecords, prometheus.GaugeValue, float64(f.LagRecords), fl...)
			ch <- prometheus.MustNewConstMetric(c.lagSeconds, prometheus.GaugeValue, f.LagSeconds, fl...)
		}
	}
}
