package grpcserver

import (
	"bytes"
	"errors"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// chunks splits b into buffers of n bytes, as gRPC hands a message over
// in its HTTP/2 frames.
func chunks(b []byte, n int) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		out = append(out, mem.Copy(b[:k], mem.DefaultBufferPool()))
		b = b[k:]
	}
	return out
}

// TestRawAppendRequestDecodesAsProto: the AppendStream request decoder
// reads what proto.Unmarshal reads, whatever the chunking and the field
// order, unknown fields skipped, the frames kept after gRPC freed the
// message; and the codec knows every field of AppendRequest.
func TestRawAppendRequestDecodesAsProto(t *testing.T) {
	big := bytes.Repeat([]byte("frame bytes "), 10000)
	for i, want := range []*stratav1.AppendRequest{
		{},
		{Topic: "orders", Partition: 3, LeaderEpoch: 7, RecordsEpoch: 6, LeaderHighWatermark: 1 << 40, RequestId: 1<<64 - 1},
		{Topic: "t", LeaderEpoch: -1, LeaderHighWatermark: -2, Frames: []byte("x"), TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		{Topic: "big", Frames: big, RequestId: 9},
	} {
		wire, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		wire = protowire.AppendTag(wire, 40, protowire.BytesType)
		wire = protowire.AppendBytes(wire, []byte("a field from the future"))
		for _, n := range []int{1, 5, 16384, len(wire) + 1} {
			data := chunks(wire, n)
			r := new(rawAppendRequest)
			if err := newCodec().Unmarshal(data, r); err != nil {
				t.Fatalf("request %d, chunks of %d: %v", i, n, err)
			}
			data.Free()
			got := &stratav1.AppendRequest{Topic: r.topic, Partition: r.partition, LeaderEpoch: r.leaderEpoch,
				RecordsEpoch: r.recordsEpoch, Frames: r.frames, LeaderHighWatermark: r.leaderHW, RequestId: r.requestID,
				TraceParent: r.traceParent}
			if !proto.Equal(got, want) {
				t.Fatalf("request %d, chunks of %d: decoded %v, want %v", i, n, got, want)
			}
			if r.GetRequestId() != want.GetRequestId() || !bytes.Equal(r.GetFrames(), want.GetFrames()) || r.GetTopic() != want.GetTopic() {
				t.Fatal("getters disagree with the fields")
			}
			r.release()
		}
	}
	if n := (&stratav1.AppendRequest{}).ProtoReflect().Descriptor().Fields().Len(); n != 8 {
		t.Fatalf("AppendRequest has %d fields; rawAppendRequest.unmarshal decodes 8: teach it the new ones", n)
	}
}

func TestRawAppendRequestRefusesBadInput(t *testing.T) {
	wrongType := protowire.AppendTag(nil, appendFrames, protowire.VarintType)
	wrongType = protowire.AppendVarint(wrongType, 1)
	badTopic := protowire.AppendTag(nil, appendTopic, protowire.BytesType)
	badTopic = protowire.AppendBytes(badTopic, []byte{0xff})
	good, err := proto.Marshal(&stratav1.AppendRequest{Topic: "t", Frames: []byte("frames")})
	if err != nil {
		t.Fatal(err)
	}
	for name, wire := range map[string][]byte{
		"truncated": good[:len(good)-2], "wrong wire type": wrongType, "bad utf-8": badTopic, "field 0": {0, 0},
	} {
		if err := newCodec().Unmarshal(chunks(wire, 3), new(rawAppendRequest)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// TestAppendErrorKeepsTheStatus: a refused append's AppendError is the
// status the unary Append returns, details and all: the OffsetRange of an
// OutOfRange, the BadRequest of an InvalidArgument; it decodes as a
// google.rpc.Status.
func TestAppendErrorKeepsTheStatus(t *testing.T) {
	for _, err := range []error{
		&logstore.OutOfRangeError{Offset: 50, Start: 0, End: 20},
		&partition.RecordTooLargeError{Index: 2, Size: 10, Max: 5},
		partition.ErrStaleEpoch,
		errors.New("something else"),
	} {
		want := status.Convert(toStatus(err))
		ae := appendError(err)
		wire, merr := proto.Marshal(&stratav1.AppendResponse{RequestId: 4, Error: ae})
		if merr != nil {
			t.Fatal(merr)
		}
		back := new(stratav1.AppendResponse)
		if err := proto.Unmarshal(wire, back); err != nil {
			t.Fatal(err)
		}
		e := back.GetError()
		got := status.New(codes.Code(e.GetCode()), e.GetMessage())
		if got.Code() != want.Code() || got.Message() != want.Message() || len(e.GetDetails()) != len(want.Proto().GetDetails()) {
			t.Fatalf("%v: AppendError %v, want %v", err, e, want.Proto())
		}
		for i, d := range want.Proto().GetDetails() {
			if !proto.Equal(d, e.GetDetails()[i]) {
				t.Fatalf("%v: detail %d is %v, want %v", err, i, e.GetDetails()[i], d)
			}
		}
	}
	ae := appendError(&logstore.OutOfRangeError{Offset: 50, Start: 0, End: 20})
	rng := new(stratav1.OffsetRange)
	if len(ae.GetDetails()) != 1 || ae.GetDetails()[0].UnmarshalTo(rng) != nil || rng.GetEndOffset() != 20 || rng.GetRequested() != 50 {
		t.Fatalf("OutOfRange's AppendError %v: want its OffsetRange", ae)
	}
	if ae.GetCode() != int32(codes.OutOfRange) {
		t.Fatalf("code %s, want OutOfRange", strconv.Itoa(int(ae.GetCode())))
	}
}

// BenchmarkDecodeAppendRequest is the broker's decoding of one append of
// 1 KiB records as gRPC hands it over (16 KiB pooled buffers, freed after
// decoding), until the frames are released: "proto" as Append decodes it
// (proto.Unmarshal, a fresh allocation of the frames' size), "raw" as
// AppendStream does (one pooled buffer for the message, frames aliased).
func BenchmarkDecodeAppendRequest(b *testing.B) {
	for _, records := range []int{16, 64, 1000} {
		wire, err := proto.Marshal(&stratav1.AppendRequest{Topic: "orders", Partition: 1, LeaderEpoch: 3, RecordsEpoch: 3,
			LeaderHighWatermark: 1000, RequestId: 9, Frames: bytes.Repeat([]byte{'r'}, records*(1024+30))})
		if err != nil {
			b.Fatal(err)
		}
		c := newCodec()
		b.Run("proto/"+strconv.Itoa(records), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				data := chunks(wire, 16<<10)
				if err := c.Unmarshal(data, new(stratav1.AppendRequest)); err != nil {
					b.Fatal(err)
				}
				data.Free()
			}
		})
		b.Run("raw/"+strconv.Itoa(records), func(b *testing.B) {
			b.SetBytes(int64(len(wire)))
			b.ReportAllocs()
			for b.Loop() {
				data := chunks(wire, 16<<10)
				r := new(rawAppendRequest)
				if err := c.Unmarshal(data, r); err != nil {
					b.Fatal(err)
				}
				data.Free()
				r.release()
			}
		})
	}
}
