package partition

import (
	"google.golang.org/protobuf/encoding/protowire"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// Stored payload and wire record layout.
//
// The log payload of a record is the protobuf encoding of a strata.v1.Record
// holding only what the producer owns:
//
//	1: bytes key        (omitted when empty)
//	2: bytes value      (omitted when empty)
//	3: Header headers   (repeated; Header = 1: string key, 2: bytes value)
//	7: int64 producer_id, 8: int32 producer_epoch, 9: int64 sequence
//	                    (only in records of an idempotent batch: producers.go)
//
// Timestamp, offset and leader epoch live in the log frame and the epoch
// file. Protobuf merges concatenated fields, so the full Record a consumer
// receives is the payload followed by
//
//	4: int64 timestamp_ms, 5: int64 offset, 6: int32 leader_epoch
//
// which AppendWireRecord writes without decoding the payload.

// Stored payload field numbers of the producer fields (strata.v1.Record).
const (
	fieldProducerID    = 7
	fieldProducerEpoch = 8
	fieldSequence      = 9
)

// ProducerFieldsSize is the number of bytes AppendProducerFields writes.
func ProducerFieldsSize(id int64, epoch int32, seq int64) int {
	return 3 + protowire.SizeVarint(uint64(id)) + protowire.SizeVarint(uint64(int64(epoch))) + protowire.SizeVarint(uint64(seq))
}

// AppendProducerFields appends a record's producer id, epoch and sequence
// to its stored payload (every field written, zeros included, so that a
// record of an idempotent batch is always recognized).
func AppendProducerFields(dst []byte, id int64, epoch int32, seq int64) []byte {
	dst = protowire.AppendTag(dst, fieldProducerID, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(id))
	dst = protowire.AppendTag(dst, fieldProducerEpoch, protowire.VarintType)
	dst = protowire.AppendVarint(dst, uint64(int64(epoch)))
	dst = protowire.AppendTag(dst, fieldSequence, protowire.VarintType)
	return protowire.AppendVarint(dst, uint64(seq))
}

// PayloadSize is the number of bytes EncodePayload writes for r.
func PayloadSize(r *stratav1.Record) int {
	n := 0
	if len(r.GetKey()) > 0 {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(r.Key))
	}
	if len(r.GetValue()) > 0 {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(r.Value))
	}
	for _, h := range r.GetHeaders() {
		n += protowire.SizeTag(3) + protowire.SizeBytes(headerSize(h))
	}
	return n
}

func headerSize(h *stratav1.Header) int {
	n := 0
	if len(h.GetKey()) > 0 {
		n += protowire.SizeTag(1) + protowire.SizeBytes(len(h.Key))
	}
	if len(h.GetValue()) > 0 {
		n += protowire.SizeTag(2) + protowire.SizeBytes(len(h.Value))
	}
	return n
}

// EncodePayload appends the stored payload of r (key, value, headers) to dst.
func EncodePayload(dst []byte, r *stratav1.Record) []byte {
	if len(r.GetKey()) > 0 {
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.Key)
	}
	if len(r.GetValue()) > 0 {
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendBytes(dst, r.Value)
	}
	for _, h := range r.GetHeaders() {
		dst = protowire.AppendTag(dst, 3, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(headerSize(h)))
		if len(h.GetKey()) > 0 {
			dst = protowire.AppendTag(dst, 1, protowire.BytesType)
			dst = protowire.AppendString(dst, h.Key)
		}
		if len(h.GetValue()) > 0 {
			dst = protowire.AppendTag(dst, 2, protowire.BytesType)
			dst = protowire.AppendBytes(dst, h.Value)
		}
	}
	return dst
}

// WireRecordSize is the size of the encoded Record AppendWireRecord writes.
func WireRecordSize(payloadLen int, timestamp, offset int64, epoch int32) int {
	n := payloadLen
	if timestamp != 0 {
		n += protowire.SizeTag(4) + protowire.SizeVarint(uint64(timestamp))
	}
	if offset != 0 {
		n += protowire.SizeTag(5) + protowire.SizeVarint(uint64(offset))
	}
	if epoch != 0 {
		n += protowire.SizeTag(6) + protowire.SizeVarint(uint64(int64(epoch)))
	}
	return n
}

// AppendWireRecord appends the encoded strata.v1.Record for a stored payload
// with its timestamp, offset and leader epoch (zero fields are omitted, as
// proto3 does).
func AppendWireRecord(dst, payload []byte, timestamp, offset int64, epoch int32) []byte {
	dst = append(dst, payload...)
	if timestamp != 0 {
		dst = protowire.AppendTag(dst, 4, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(timestamp))
	}
	if offset != 0 {
		dst = protowire.AppendTag(dst, 5, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(offset))
	}
	if epoch != 0 {
		dst = protowire.AppendTag(dst, 6, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(epoch)))
	}
	return dst
}

// PayloadKey reads a stored payload's key and whether it is a tombstone
// (no value: under cleanup.policy=compact a record with an empty value
// deletes its key), for compaction. It scans the fields without decoding
// the record.
func PayloadKey(payload []byte) (key []byte, tombstone bool, err error) {
	tombstone = true
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		payload = payload[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, payload)
			if n < 0 {
				return nil, false, protowire.ParseError(n)
			}
			payload = payload[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(payload)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		payload = payload[n:]
		switch num {
		case 1:
			key = v
		case 2:
			tombstone = len(v) == 0
		}
	}
	return key, tombstone, nil
}
