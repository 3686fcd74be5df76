package grpcserver

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/strata-log/strata/pkg/logstore"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// ConsumeResponse wire layout, as appendConsumeResponse writes it (protobuf
// allows fields in any order):
//
//	1: string topic
//	2: int32  partition
//	3: Record records      (repeated; tag, length, partition.AppendWireRecord bytes)
//	4: int64  next_offset
//	5: int64  high_watermark
//	6: int64  log_start_offset
//
// Zero scalars are omitted as proto3 does.

// consumeResponseBuilder appends one ConsumeResponse without building its
// Records as Go values.
type consumeResponseBuilder struct {
	b []byte
}

func (w *consumeResponseBuilder) reset(topic string, part int32) {
	w.b = w.b[:0]
	if topic != "" {
		w.b = protowire.AppendTag(w.b, 1, protowire.BytesType)
		w.b = protowire.AppendString(w.b, topic)
	}
	if part != 0 {
		w.b = protowire.AppendTag(w.b, 2, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, uint64(int64(part)))
	}
}

// addRecord appends one record (field 3) from a stored frame.
func (w *consumeResponseBuilder) addRecord(f logstore.Frame, epoch int32) {
	w.b = protowire.AppendTag(w.b, 3, protowire.BytesType)
	w.b = protowire.AppendVarint(w.b, uint64(partition.WireRecordSize(len(f.Payload), f.Timestamp, f.Offset, epoch)))
	w.b = partition.AppendWireRecord(w.b, f.Payload, f.Timestamp, f.Offset, epoch)
}

// finish appends the offsets and returns the message bytes.
func (w *consumeResponseBuilder) finish(next, hw, start int64) []byte {
	for _, f := range []struct {
		num protowire.Number
		v   int64
	}{{4, next}, {5, hw}, {6, start}} {
		if f.v != 0 {
			w.b = protowire.AppendTag(w.b, f.num, protowire.VarintType)
			w.b = protowire.AppendVarint(w.b, uint64(f.v))
		}
	}
	return w.b
}

// FetchResponse wire layout, as fetchResponseBytes writes it: the scalar
// fields 1-4, 6 and 7 (zeros omitted), 8 the trace_parent string when set,
// then 5, the frames, last. The frames are read from the log straight
// after fetchHeadroom bytes of room, and the other fields are written into
// the end of that room, so the message is made without copying the frames.
const fetchHeadroom = 7*(1+binary.MaxVarintLen64) + 2 + maxTraceParent // 7 one-byte tags, 7 varints; tag, length, trace_parent

// maxTraceParent is the length of a W3C traceparent (version 00); a longer
// trace_parent is not sent.
const maxTraceParent = 55

// fetchFields are FetchResponse's fields but the frames.
type fetchFields struct {
	leaderEpoch, recordsEpoch                               int32
	highWatermark, logStartOffset, logEndOffset, baseOffset int64
	traceParent                                             string
}

// fetchResponseBytes returns the FetchResponse whose frames are
// buf[fetchHeadroom:], in wire format, as a suffix of buf.
func fetchResponseBytes(buf []byte, f fetchFields) []byte {
	var h [fetchHeadroom]byte
	b := h[:0]
	for _, v := range []struct {
		num protowire.Number
		v   int64
	}{{1, int64(f.leaderEpoch)}, {2, f.highWatermark}, {3, f.logStartOffset}, {4, f.logEndOffset},
		{6, int64(f.recordsEpoch)}, {7, f.baseOffset}} {
		if v.v != 0 {
			b = protowire.AppendTag(b, v.num, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(v.v))
		}
	}
	if tp := f.traceParent; tp != "" && len(tp) <= maxTraceParent {
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendString(b, tp)
	}
	if n := len(buf) - fetchHeadroom; n > 0 {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
	}
	start := fetchHeadroom - len(b)
	copy(buf[start:], b)
	return buf[start:]
}
