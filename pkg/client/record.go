package client

import (
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Header is one record header. Keys may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Record is one entry of a partition's log.
type Record struct {
	// Topic the record is produced to or was consumed from.
	Topic string
	// Partition is the record's partition. On produce it is used only when
	// ExplicitPartition is set; otherwise the partitioner picks one.
	Partition int32
	// ExplicitPartition makes the producer send the record to Partition.
	ExplicitPartition bool
	Key               []byte
	Value             []byte
	Headers           []Header
	// Timestamp of the record. On produce, zero means broker time.
	Timestamp time.Time
	// Offset is set on consumed records.
	Offset int64
	// LeaderEpoch is set on consumed records.
	LeaderEpoch int32
}

// dataSize is the record's key, value and headers in bytes: at most what
// the broker counts against max.record.bytes.
func (r *Record) dataSize() int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// size is the record's approximate encoded size, used for batch limits.
func (r *Record) size() int {
	n := len(r.Key) + len(r.Value) + 16
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}

func (r *Record) toProto() *stratav1.Record {
	pr := &stratav1.Record{Key: r.Key, Value: r.Value}
	if !r.Timestamp.IsZero() {
		pr.TimestampMs = r.Timestamp.UnixMilli()
	}
	if len(r.Headers) > 0 {
		pr.Headers = make([]*stratav1.Header, len(r.Headers))
		for i, h := range r.Headers {
			pr.Headers[i] = &stratav1.Header{Key: h.Key, Value: h.Value}
		}
	}
	return pr
}

func recordFromProto(topic string, partition int32, pr *stratav1.Record) Record {
	r := Record{
		Topic:       topic,
		Partition:   partition,
		Key:         pr.GetKey(),
		Value:       pr.GetValue(),
		Offset:      pr.GetOffset(),
		LeaderEpoch: pr.GetLeaderEpoch(),
	}
	if ms := pr.GetTimestampMs(); ms != 0 {
		r.Timestamp = time.UnixMilli(ms)
	}
	if hs := pr.GetHeaders(); len(hs) > 0 {
		r.Headers = make([]Header, len(hs))
		for i, h := range hs {
			r.Headers[i] = Header{Key: h.GetKey(), Value: h.GetValue()}
		}
	}
	return r
}

// Acks is the producer's acknowledgement policy.
type Acks int

const (
	// AcksAll (the default, as in Kafka 3) waits until every in-sync
	// replica has the batch.
	AcksAll Acks = iota
	// AcksLeader waits until the leader appended the batch.
	AcksLeader
	// AcksNone does not wait for the append; offsets are unknown (-1).
	AcksNone
)

func (a Acks) proto() stratav1.Acks {
	switch a {
	case AcksNone:
		return stratav1.Acks_ACKS_NONE
	case AcksAll:
		return stratav1.Acks_ACKS_ALL
	default:
		return stratav1.Acks_ACKS_LEADER
	}
}

// String returns none, leader or all.
func (a Acks) String() string {
	switch a {
	case AcksNone:
		return "none"
	case AcksAll:
		return "all"
	default:
		return "leader"
	}
}

// ParseAcks parses none, leader (or 1) and all (or -1).
func ParseAcks(s string) (Acks, error) {
	switch s {
	case "none", "0":
		return AcksNone, nil
	case "leader", "1", "":
		return AcksLeader, nil
	case "all", "-1":
		return AcksAll, nil
	}
	return 0, &ConfigError{Field: "acks", Msg: "must be none, leader or all, got " + quote(s)}
}
