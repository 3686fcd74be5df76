package grpcserver

import (
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
