package grpcserver

import (
	"bytes"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestFetchResponseBytesDecodes(t *testing.T) {
	frames := bytes.Repeat([]byte{0xab}, 300) // a length needing a 2-byte varint
	for _, tc := range []struct {
		name   string
		f      fetchFields
		frames []byte
	}{
		{"heartbeat, all zero", fetchFields{}, nil},
		{"frames", fetchFields{leaderEpoch: 3, highWatermark: 10, logStartOffset: 2, logEndOffset: 12, recordsEpoch: 3, baseOffset: 10}, frames},
		{"negative and extreme values", fetchFields{leaderEpoch: -1, highWatermark: -1, logStartOffset: math.MaxInt64,
			logEndOffset: math.MinInt64, recordsEpoch: math.MinInt32, baseOffset: -5}, frames[:1]},
		{"trace parent, every field at its widest", fetchFields{leaderEpoch: math.MinInt32, highWatermark: math.MinInt64,
			logStartOffset: math.MinInt64, logEndOffset: math.MinInt64, recordsEpoch: math.MinInt32, baseOffset: math.MinInt64,
			traceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, frames},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := append(make([]byte, fetchHeadroom), tc.frames...)
			got := &stratav1.FetchResponse{}
			if err := proto.Unmarshal(fetchResponseBytes(buf, tc.f), got); err != nil {
				t.Fatal(err)
			}
			want := &stratav1.FetchResponse{LeaderEpoch: tc.f.leaderEpoch, HighWatermark: tc.f.highWatermark,
				LogStartOffset: tc.f.logStartOffset, LogEndOffset: tc.f.logEndOffset, Frames: tc.frames,
				RecordsEpoch: tc.f.recordsEpoch, BaseOffset: tc.f.baseOffset, TraceParent: tc.f.traceParent}
			if !proto.Equal(got, want) {
				t.Fatalf("decoded %v, want %v", got, want)
			}
		})
	}
}
