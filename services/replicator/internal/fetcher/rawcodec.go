package fetcher

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec wrapped below
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
)

// The replicator passes fetched frames on to its broker as raw bytes: a
// Fetch response is decoded by rawCodec into a rawFetchResponse whose
// frames are views of the buffers gRPC received them in (no copy, no
// allocation of their size), and the AppendStream request made of them
// is encoded as a few header bytes followed by those same views, which
// gRPC writes to the connection as they are. Every other message goes
// through the ordinary proto codec; the broker sees ordinary protobuf.

// rawCodec is the proto codec that also decodes *rawFetchResponse and
// encodes *rawAppendRequest without copying frames. Its name is "proto":
// on the wire nothing changes.
type rawCodec struct{ proto encoding.CodecV2 }

var codec = rawCodec{proto: encoding.GetCodecV2("proto")}

// rawCallOption makes a call use rawCodec.
var rawCallOption = grpc.ForceCodecV2(codec)

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawAppendRequest); ok {
		return m.marshal(), nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(*rawFetchResponse); ok {
		return m.unmarshal(data)
	}
	return c.proto.Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// rawFetchResponse is a strata.v1.FetchResponse whose frames stay in the
// buffers they were received in (views holding a reference each) until
// release. The getters are the generated FetchResponse's.
type rawFetchResponse struct {
	leaderEpoch, recordsEpoch                               int32
	highWatermark, logStartOffset, logEndOffset, baseOffset int64
	traceParent                                             string
	frames                                                  mem.BufferSlice
}

func (r *rawFetchResponse) GetLeaderEpoch() int32    { return r.leaderEpoch }
func (r *rawFetchResponse) GetRecordsEpoch() int32   { return r.recordsEpoch }
func (r *rawFetchResponse) GetHighWatermark() int64  { return r.highWatermark }
func (r *rawFetchResponse) GetLogStartOffset() int64 { return r.logStartOffset }
func (r *rawFetchResponse) GetLogEndOffset() int64   { return r.logEndOffset }
func (r *rawFetchResponse) GetBaseOffset() int64     { return r.baseOffset }
func (r *rawFetchResponse) GetTraceParent() string   { return r.traceParent }

// framesLen is the frames' size in bytes.
func (r *rawFetchResponse) framesLen() int { return r.frames.Len() }

// release drops the frames' references: the buffers may go back to
// gRPC's pool (once whatever else holds them, a send, is done).
func (r *rawFetchResponse) release() {
	r.frames.Free()
	r.frames = nil
}

// FetchResponse field numbers (replica_fetch.proto).
const (
	fetchLeaderEpoch    protowire.Number = 1
	fetchHighWatermark  protowire.Number = 2
	fetchLogStartOffset protowire.Number = 3
	fetchLogEndOffset   protowire.Number = 4
	fetchFrames         protowire.Number = 5
	fetchRecordsEpoch   protowire.Number = 6
	fetchBaseOffset     protowire.Number = 7
	fetchTraceParent    protowire.Number = 8
)

// unmarshal decodes a FetchResponse as proto.Unmarshal would (fields in
// any order, the last of a repeated field winning, unknown fields
// skipped), the frames as views of data.
func (r *rawFetchResponse) unmarshal(data mem.BufferSlice) (err error) {
	r.release()
	*r = rawFetchResponse{}
	defer func() {
		if err != nil {
			r.release()
		}
	}()
	rd := sliceReader{bufs: data}
	for !rd.done() {
		num, typ, err := rd.tag()
		if err != nil {
			return fmt.Errorf("FetchResponse: %w", err)
		}
		switch {
		case typ == protowire.BytesType && (num == fetchFrames || num == fetchTraceParent):
			n, err := rd.length()
			if err != nil {
				return fmt.Errorf("FetchResponse field %d: %w", num, err)
			}
			if num == fetchTraceParent {
				b, err := rd.copyN(n)
				if err != nil {
					return fmt.Errorf("FetchResponse field %d: %w", num, err)
				}
				if !utf8.Valid(b) {
					return errors.New("FetchResponse: trace_parent is not valid UTF-8")
				}
				r.traceParent = string(b)
				continue
			}
			views, err := rd.views(n)
			if err != nil {
				return fmt.Errorf("FetchResponse field %d: %w", num, err)
			}
			r.frames.Free() // a repeated field: the last one wins
			r.frames = views
		case typ == protowire.VarintType && num >= fetchLeaderEpoch && num <= fetchBaseOffset && num != fetchFrames:
			v, err := rd.varint()
			if err != nil {
				return fmt.Errorf("FetchResponse field %d: %w", num, err)
			}
			switch num {
			case fetchLeaderEpoch:
				r.leaderEpoch = int32(v)
			case fetchHighWatermark:
				r.highWatermark = int64(v)
			case fetchLogStartOffset:
				r.logStartOffset = int64(v)
			case fetchLogEndOffset:
				r.logEndOffset = int64(v)
			case fetchRecordsEpoch:
				r.recordsEpoch = int32(v)
			case fetchBaseOffset:
				r.baseOffset = int64(v)
			}
		case num >= fetchLeaderEpoch && num <= fetchTraceParent:
			return fmt.Errorf("FetchResponse field %d: wrong wire type %d", num, typ)
		default:
			if err := rd.skipField(num, typ); err != nil {
				return fmt.Errorf("FetchResponse field %d: %w", num, err)
			}
		}
	}
	return nil
}

// rawAppendRequest is a strata.v1.AppendRequest whose frames are views of
// a fetched response's buffers; rawCodec encodes it without copying them.
type rawAppendRequest struct {
	topic                     string
	partition                 int32
	leaderEpoch, recordsEpoch int32
	leaderHW                  int64
	requestID                 uint64
	traceParent               string
	frames                    mem.BufferSlice
}

// AppendRequest field numbers (local_replica.proto).
const (
	appendTopic            protowire.Number = 1
	appendPartition        protowire.Number = 2
	appendLeaderEpoch      protowire.Number = 3
	appendRecordsEpoch     protowire.Number = 4
	appendFrames           protowire.Number = 5
	appendLeaderHW         protowire.Number = 6
	appendRequestID        protowire.Number = 7
	appendTraceParentField protowire.Number = 8
)

// marshal returns the request in wire format: its other fields (zeros
// omitted, as proto3 does), then the frames, last, each view with a
// reference of its own for gRPC to free once written.
func (r *rawAppendRequest) marshal() mem.BufferSlice {
	n := r.frames.Len()
	h := make([]byte, 0, 64+len(r.topic)+len(r.traceParent))
	if r.topic != "" {
		h = protowire.AppendTag(h, appendTopic, protowire.BytesType)
		h = protowire.AppendString(h, r.topic)
	}
	for _, f := range []struct {
		num protowire.Number
		v   uint64
	}{{appendPartition, uint64(int64(r.partition))}, {appendLeaderEpoch, uint64(int64(r.leaderEpoch))},
		{appendRecordsEpoch, uint64(int64(r.recordsEpoch))}, {appendLeaderHW, uint64(r.leaderHW)}, {appendRequestID, r.requestID}} {
		if f.v != 0 {
			h = protowire.AppendTag(h, f.num, protowire.VarintType)
			h = protowire.AppendVarint(h, f.v)
		}
	}
	if r.traceParent != "" {
		h = protowire.AppendTag(h, appendTraceParentField, protowire.BytesType)
		h = protowire.AppendString(h, r.traceParent)
	}
	if n > 0 {
		h = protowire.AppendTag(h, appendFrames, protowire.BytesType)
		h = protowire.AppendVarint(h, uint64(n))
	}
	out := make(mem.BufferSlice, 0, 1+len(r.frames))
	out = append(out, mem.SliceBuffer(h))
	for _, b := range r.frames {
		if b.Len() == 0 {
			continue
		}
		b.Ref()
		out = append(out, b)
	}
	return out
}

// sliceReader reads a mem.BufferSlice as one sequence of bytes.
type sliceReader struct {
	bufs mem.BufferSlice
	i    int // the buffer being read
	off  int // the position in it
}

// next skips exhausted buffers; false at the end.
func (r *sliceReader) next() bool {
	for r.i < len(r.bufs) && r.off >= r.bufs[r.i].Len() {
		r.i, r.off = r.i+1, 0
	}
	return r.i < len(r.bufs)
}

func (r *sliceReader) done() bool { return !r.next() }

// remaining counts the bytes left.
func (r *sliceReader) remaining() int {
	n := 0
	for i := r.i; i < len(r.bufs); i++ {
		n += r.bufs[i].Len()
	}
	return n - r.off
}

var errTruncated = errors.New("message truncated")

func (r *sliceReader) varint() (uint64, error) {
	if !r.next() {
		return 0, errTruncated
	}
	if b := r.bufs[r.i].ReadOnlyData()[r.off:]; len(b) >= binaryMaxVarintLen || isVarintEnd(b) {
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return 0, protowire.ParseError(n)
		}
		r.off += n
		return v, nil
	}
	// The varint spans buffers: gather its bytes.
	var tmp [binaryMaxVarintLen]byte
	k := 0
	for k < len(tmp) {
		if !r.next() {
			return 0, errTruncated
		}
		c := r.bufs[r.i].ReadOnlyData()[r.off]
		r.off++
		tmp[k] = c
		k++
		if c < 0x80 {
			break
		}
	}
	v, n := protowire.ConsumeVarint(tmp[:k])
	if n < 0 {
		return 0, protowire.ParseError(n)
	}
	return v, nil
}

const binaryMaxVarintLen = 10

// isVarintEnd reports whether b holds a whole varint.
func isVarintEnd(b []byte) bool {
	for _, c := range b {
		if c < 0x80 {
			return true
		}
	}
	return false
}

func (r *sliceReader) tag() (protowire.Number, protowire.Type, error) {
	v, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < protowire.MinValidNumber {
		return 0, 0, errors.New("invalid field number 0")
	}
	return num, typ, nil
}

// length reads a length prefix that must fit in what is left.
func (r *sliceReader) length() (int, error) {
	v, err := r.varint()
	if err != nil {
		return 0, err
	}
	if v > uint64(r.remaining()) {
		return 0, errTruncated
	}
	return int(v), nil
}

// copyN returns a copy of the next n bytes.
func (r *sliceReader) copyN(n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for len(out) < n {
		if !r.next() {
			return nil, errTruncated
		}
		b := r.bufs[r.i].ReadOnlyData()[r.off:]
		k := min(len(b), n-len(out))
		out = append(out, b[:k]...)
		r.off += k
	}
	return out, nil
}

// views returns the next n bytes as views of the buffers holding them,
// each with a reference of its own.
func (r *sliceReader) views(n int) (mem.BufferSlice, error) {
	var out mem.BufferSlice
	for n > 0 {
		if !r.next() {
			out.Free()
			return nil, errTruncated
		}
		b := r.bufs[r.i]
		k := min(b.Len()-r.off, n)
		out = append(out, b.Slice(r.off, r.off+k))
		r.off += k
		n -= k
	}
	return out, nil
}

func (r *sliceReader) skip(n int) error {
	for n > 0 {
		if !r.next() {
			return errTruncated
		}
		k := min(r.bufs[r.i].Len()-r.off, n)
		r.off += k
		n -= k
	}
	return nil
}

// skipField skips an unknown field's value.
func (r *sliceReader) skipField(num protowire.Number, typ protowire.Type) error {
	switch typ {
	case protowire.VarintType:
		_, err := r.varint()
		return err
	case protowire.Fixed32Type:
		return r.skip(4)
	case protowire.Fixed64Type:
		return r.skip(8)
	case protowire.BytesType:
		n, err := r.length()
		if err != nil {
			return err
		}
		return r.skip(n)
	case protowire.StartGroupType:
		for {
			if !r.next() {
				return errTruncated
			}
			n, t, err := r.tag()
			if err != nil {
				return err
			}
			if t == protowire.EndGroupType {
				if n != num {
					return errors.New("mismatched end group")
				}
				return nil
			}
			if err := r.skipField(n, t); err != nil {
				return err
			}
		}
	}
	return fmt.Errorf("unknown wire type %d", typ)
}
