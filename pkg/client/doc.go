// Package client is the Go client library for Strata.
//
// A Client bootstraps from one or more broker addresses, caches the cluster
// metadata (Metadata RPC) and keeps one gRPC connection per broker address,
// dialled lazily and reused. On top of it:
//
//   - Producer: an asynchronous, batching producer. Records are routed to the
//     leader of their partition: an explicit partition when the record names
//     one, else the murmur2 hash of the key (the same function and mapping as
//     Kafka's default partitioner: murmur2(key) & 0x7fffffff % partitions),
//     else round-robin over the topic's partitions. Batches travel on one
//     ProduceStream per broker. The producer is idempotent by default, with
//     up to ProducerOptions.MaxInFlight (5) batches per partition in flight;
//     a failed batch is resent with the ones after it, in order, so retries
//     never reorder nor duplicate the records of a partition (see Producer).
//     Without idempotence one batch per partition is in flight.
//   - Consumer: reads one partition from a position with ConsumeStream and
//     resumes after a stream break or a broker restart from the next offset
//     it has not delivered, without skipping or repeating records.
//   - GroupConsumer: a member of a consumer group. The group's coordinator
//     assigns it partitions (incrementally: a partition moves only after
//     its owner gave it up, committing first), it reads them from the
//     group's committed offsets and commits what the application has had:
//     at least once, no record skipped across rebalances or crashes.
//   - Admin helpers for the Topics, Metadata and Groups services.
//
// Retries: a produce that failed with Unavailable, a lost connection, or
// FailedPrecondition "not the leader" (after a metadata refresh) is retried
// with bounded exponential backoff until ProducerOptions.DeliveryTimeout.
// A batch whose outcome is unknown (the connection broke or the deadline
// passed after it was sent) may already be in the log: an idempotent
// producer's retry is then answered with its original offsets; without
// idempotence retrying it can duplicate records. Set ProducerOptions.NoAmbiguousRetry to fail such
// batches instead. With AcksNone nothing is known after sending, so such
// batches are never retried.
//
// Security: Config.TLS is a *tls.Config (for mutual TLS, e.g. from
// pkg/pki's loader). Plaintext is used only when Config.Insecure is set.
package client
