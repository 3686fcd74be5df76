package fetcher

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// poisonPool hands out buffers and, when one comes back, overwrites it
// and counts it: a frame read after its buffer went back shows as 0xEE.
type poisonPool struct{ puts atomic.Int32 }

func (p *poisonPool) Get(n int) *[]byte { b := make([]byte, n); return &b }

func (p *poisonPool) Put(b *[]byte) {
	for i := range *b {
		(*b)[i] = 0xEE
	}
	p.puts.Add(1)
}

// chunked splits b into pooled buffers of size n (the last shorter), as
// gRPC hands a message over in its HTTP/2 frames.
func chunked(b []byte, n int, pool mem.BufferPool) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 0 {
		k := min(n, len(b))
		buf := make([]byte, k, max(k, 2048)) // above gRPC's pooling threshold: refcounted
		copy(buf, b[:k])
		out = append(out, mem.NewBuffer(&buf, pool))
		b = b[k:]
	}
	return out
}

func fetchResponses() []*stratav1.FetchResponse {
	big := bytes.Repeat([]byte("0123456789abcdef"), 5000) // 80 KB: many chunks
	return []*stratav1.FetchResponse{
		{},
		{LeaderEpoch: 3, HighWatermark: 10, LogStartOffset: 2, LogEndOffset: 12, RecordsEpoch: 3, BaseOffset: 9},
		{LeaderEpoch: -1, HighWatermark: -5, BaseOffset: 1 << 40, Frames: []byte("x")},
		{LeaderEpoch: 7, HighWatermark: 1 << 33, LogEndOffset: 1<<33 + 5, RecordsEpoch: 6, BaseOffset: 1 << 33, Frames: big,
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
}

// TestRawFetchResponseDecodesAsProto: whatever the chunking, a decoded
// response reads as proto.Unmarshal reads it, unknown fields skipped;
// its frames stay valid after gRPC freed the message, and every buffer
// goes back to the pool once the response is released.
func TestRawFetchResponseDecodesAsProto(t *testing.T) {
	for i, want := range fetchResponses() {
		wire, err := proto.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		// A field of a newer leader this follower does not know.
		wire = protowire.AppendTag(wire, 30, protowire.BytesType)
		wire = protowire.AppendBytes(wire, []byte("future"))
		wire = protowire.AppendTag(wire, 31, protowire.VarintType)
		wire = protowire.AppendVarint(wire, 1<<50)
		for _, n := range []int{1, 2, 3, 7, 64, 16384, len(wire) + 1} {
			pool := &poisonPool{}
			data := chunked(wire, n, pool)
			r := new(rawFetchResponse)
			if err := codec.Unmarshal(data, r); err != nil {
				t.Fatalf("response %d, chunks of %d: %v", i, n, err)
			}
			data.Free() // as gRPC does once Unmarshal returned
			got := &stratav1.FetchResponse{LeaderEpoch: r.GetLeaderEpoch(), HighWatermark: r.GetHighWatermark(),
				LogStartOffset: r.GetLogStartOffset(), LogEndOffset: r.GetLogEndOffset(), RecordsEpoch: r.GetRecordsEpoch(),
				BaseOffset: r.GetBaseOffset(), TraceParent: r.GetTraceParent(), Frames: materialize(r.frames)}
			if !proto.Equal(got, want) {
				t.Fatalf("response %d, chunks of %d: decoded %v, want %v", i, n, got, want)
			}
			if r.framesLen() != len(want.GetFrames()) {
				t.Fatalf("framesLen %d, want %d", r.framesLen(), len(want.GetFrames()))
			}
			r.release()
			if p := int(pool.puts.Load()); p != len(data) {
				t.Fatalf("response %d, chunks of %d: %d of %d buffers back in the pool after release", i, n, p, len(data))
			}
		}
	}
}

func TestRawFetchResponseRefusesBadInput(t *testing.T) {
	good, err := proto.Marshal(fetchResponses()[3])
	if err != nil {
		t.Fatal(err)
	}
	wrongType := protowire.AppendTag(nil, fetchBaseOffset, protowire.BytesType)
	wrongType = protowire.AppendBytes(wrongType, []byte("x"))
	badUTF8 := protowire.AppendTag(nil, fetchTraceParent, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, []byte{0xff, 0xfe})
	for name, wire := range map[string][]byte{
		"truncated":       good[:len(good)-1],
		"cut in a varint": {byte(fetchBaseOffset<<3) | byte(protowire.VarintType), 0x80},
		"field 0":         {0x00, 0x01},
		"wrong wire type": wrongType,
		"bad utf-8":       badUTF8,
	} {
		pool := &poisonPool{}
		data := chunked(wire, 5, pool)
		r := new(rawFetchResponse)
		if err := codec.Unmarshal(data, r); err == nil {
			t.Errorf("%s: decoded", name)
		}
		data.Free()
		if p := int(pool.puts.Load()); p != len(data) {
			t.Errorf("%s: %d of %d buffers back after the refusal", name, p, len(data))
		}
	}
}

// TestRawAppendRequestEncodesAsProto: the request made of a fetched
// response's views is the AppendRequest proto.Unmarshal reads, and gRPC
// freeing what Marshal returned leaves the caller's references alone.
func TestRawAppendRequestEncodesAsProto(t *testing.T) {
	for i, resp := range fetchResponses() {
		wire, err := proto.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		pool := &poisonPool{}
		data := chunked(wire, 1000, pool)
		r := new(rawFetchResponse)
		if err := codec.Unmarshal(data, r); err != nil {
			t.Fatal(err)
		}
		data.Free()
		req := &rawAppendRequest{topic: "orders", partition: int32(i), leaderEpoch: r.GetLeaderEpoch(), recordsEpoch: r.GetRecordsEpoch(),
			leaderHW: r.GetHighWatermark(), requestID: uint64(i) << 40, traceParent: r.GetTraceParent(), frames: r.frames}
		out, err := codec.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got := new(stratav1.AppendRequest)
		if err := proto.Unmarshal(out.Materialize(), got); err != nil {
			t.Fatal(err)
		}
		out.Free() // as gRPC does once written
		want := &stratav1.AppendRequest{Topic: "orders", Partition: int32(i), LeaderEpoch: resp.GetLeaderEpoch(),
			RecordsEpoch: resp.GetRecordsEpoch(), LeaderHighWatermark: resp.GetHighWatermark(), RequestId: uint64(i) << 40,
			TraceParent: resp.GetTraceParent(), Frames: resp.GetFrames()}
		if !proto.Equal(got, want) {
			t.Fatalf("request %d: encoded %v, want %v", i, got, want)
		}
		if f := materialize(r.frames); !bytes.Equal(f, resp.GetFrames()) {
			t.Fatalf("request %d: the response's frames changed after the send", i)
		}
		r.release()
		if p := int(pool.puts.Load()); p != len(data) {
			t.Fatalf("request %d: %d of %d buffers back in the pool", i, p, len(data))
		}
	}
}

// TestRawCodecsKnowEveryField: the raw codecs name each field of
// FetchResponse and AppendRequest; a field added to the .proto must be
// added to them too (rawcodec.go), or it would be dropped on the way.
func TestRawCodecsKnowEveryField(t *testing.T) {
	for _, tc := range []struct {
		msg  proto.Message
		want []string
	}{
		{&stratav1.FetchResponse{}, []string{"1 leader_epoch", "2 high_watermark", "3 log_start_offset", "4 log_end_offset",
			"5 frames", "6 records_epoch", "7 base_offset", "8 trace_parent"}},
		{&stratav1.AppendRequest{}, []string{"1 topic", "2 partition", "3 leader_epoch", "4 records_epoch", "5 frames",
			"6 leader_high_watermark", "7 request_id", "8 trace_parent"}},
	} {
		fields := tc.msg.ProtoReflect().Descriptor().Fields()
		var got []string
		for i := range fields.Len() {
			f := fields.Get(i)
			got = append(got, strings.Join([]string{strconv.Itoa(int(f.Number())), string(f.Name())}, " "))
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s fields %v, the raw codec knows %v", tc.msg.ProtoReflect().Descriptor().FullName(), got, tc.want)
		}
	}
}
