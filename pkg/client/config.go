package client

import (
	"crypto/tls"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Config configures a Client. Zero values mean the documented defaults.
type Config struct {
	// Brokers are bootstrap addresses (host:port); at least one is required.
	Brokers []string
	// TLS is the client's TLS configuration (mutual TLS: set Certificates
	// and RootCAs). Required unless Insecure is set.
	TLS *tls.Config
	// Insecure allows plaintext connections. It must be set explicitly.
	Insecure bool
	// DialTimeout bounds connecting to a broker; default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds one unary request; default 10s.
	RequestTimeout time.Duration
	// MetadataMinInterval is the minimum time between two metadata
	// refreshes triggered by errors; default 100ms.
	MetadataMinInterval time.Duration
	// MaxMessageBytes is the largest gRPC message sent or received;
	// default stratav1.MaxMessageBytes, which holds a record of the
	// largest max.record.bytes a topic may have.
	MaxMessageBytes int
	// Logger receives debug logs; nil means none.
	Logger *zap.Logger
	// DialOptions are appended to the client's own gRPC dial options.
	DialOptions []grpc.DialOption
	// TracerProvider, when set, traces produced records: each gets a
	// Producer.Produce span (a child of the context passed to Produce),
	// ended with the record's answer, and a sampled one carries its trace
	// context to the brokers in the TraceHeader record header. The
	// provider's sampler decides; nil makes no span and costs nothing.
	// No global provider is used.
	TracerProvider trace.TracerProvider
}

func (c *Config) setDefaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MetadataMinInterval <= 0 {
		c.MetadataMinInterval = 100 * time.Millisecond
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = stratav1.MaxMessageBytes
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return &ConfigError{Field: "Brokers", Msg: "at least one broker address is required"}
	}
	for _, b := range c.Brokers {
		if b == "" {
			return &ConfigError{Field: "Brokers", Msg: "empty address"}
		}
	}
	if c.TLS == nil && !c.Insecure {
		return &ConfigError{Field: "TLS", Msg: "a TLS config is required unless Insecure is set"}
	}
	if c.TLS != nil && c.Insecure {
		return &ConfigError{Field: "Insecure", Msg: "set either TLS or Insecure, not both"}
	}
	return nil
}

// maxInFlightIdempotent is the most batches per partition an idempotent
// producer keeps in flight: the partitions' dedupe window (Kafka's 5).
const maxInFlightIdempotent = 5

// ProducerOptions configures a Producer. Zero values mean the defaults.
type ProducerOptions struct {
	// Acks is the acknowledgement policy; default AcksAll.
	Acks Acks
	// DisableIdempotence sends plain batches. By default the producer is
	// idempotent (KIP-98): it gets a producer id from the cluster
	// (InitProducer) and numbers each partition's records, so that a batch
	// retried after a lost answer, a timeout or a leader change is
	// appended once and answered with its original offsets. Idempotence
	// needs Acks other than AcksNone; with AcksNone it is off.
	DisableIdempotence bool
	// Linger is how long a partition's batch waits for more records before
	// it is sent while the partition has room in flight (MaxInFlight); 0
	// sends at once (records still accumulate while the partition's
	// window is full).
	Linger time.Duration
	// MaxBatchBytes closes a batch at about this many bytes; default 1 MiB.
	MaxBatchBytes int
	// MaxBatchRecords closes a batch at this many records; default 10000.
	MaxBatchRecords int
	// MaxInFlight bounds the batches of one partition sent and not yet
	// answered, when the producer is idempotent; default 5, at most 5 (the
	// partitions remember a producer's last 5 batches, which is what lets
	// a retry after a failure of any of them be recognised). 1 sends a
	// partition's next batch only once the previous one is answered.
	// Without idempotence it is always 1: a retried batch could otherwise
	// be appended after the batch sent behind it.
	MaxInFlight int
	// MaxInFlightPerBroker bounds the batches awaiting an answer from one
	// broker, all partitions together; default 64, the most a broker's
	// produce stream takes unanswered by default (ProduceStreamInFlight),
	// so that 12 partitions on one broker each get their 5.
	MaxInFlightPerBroker int
	// MaxBufferedBytes bounds the records waiting to be acknowledged;
	// Produce blocks beyond it. Default 64 MiB.
	MaxBufferedBytes int
	// DeliveryTimeout bounds the time from Produce to the record's result,
	// retries included; default 30s.
	DeliveryTimeout time.Duration
	// RequestTimeout bounds the wait for one batch's answer; default 10s.
	RequestTimeout time.Duration
	// RetryBackoff is the first retry delay, doubled up to RetryBackoffMax;
	// defaults 20ms and 1s.
	RetryBackoff    time.Duration
	RetryBackoffMax time.Duration
	// NoAmbiguousRetry fails a batch whose outcome is unknown (connection
	// lost or deadline passed after it was sent) instead of resending it.
	// Without idempotence resending may duplicate records; failing may
	// lose them. An idempotent producer resends whatever this says: the
	// partition leader answers a batch it has with its original offsets.
	NoAmbiguousRetry bool
	// Partitioner picks partitions; default a HashPartitioner.
	Partitioner Partitioner
	// Metrics, when set, counts this producer's records, batches, retries,
	// batches in flight and latency (see NewMetrics); nil counts nothing.
	Metrics *Metrics
}

func (o *ProducerOptions) setDefaults() {
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 1 << 20
	}
	if o.MaxBatchRecords <= 0 {
		o.MaxBatchRecords = 10000
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = maxInFlightIdempotent
	}
	if o.MaxInFlightPerBroker <= 0 {
		o.MaxInFlightPerBroker = 64
	}
	if o.MaxBufferedBytes <= 0 {
		o.MaxBufferedBytes = 64 << 20
	}
	if o.DeliveryTimeout <= 0 {
		o.DeliveryTimeout = 30 * time.Second
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = 20 * time.Millisecond
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = time.Second
	}
	if o.Partitioner == nil {
		o.Partitioner = &HashPartitioner{}
	}
}
