package partition

import (
	"testing"

	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

func TestWireRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		rec     *stratav1.Record
		ts, off int64
		epoch   int32
	}{
		{"empty", &stratav1.Record{}, 0, 0, 0},
		{"key value", &stratav1.Record{Key: []byte("k"), Value: []byte("v")}, 1700000000000, 42, 3},
		{"headers", &stratav1.Record{Value: []byte("v"), Headers: []*stratav1.Header{{Key: "a", Value: []byte("1")}, {Key: "a"}, {Value: []byte("x")}}}, 1, 1 << 40, 0},
		{"producer fields ignored", &stratav1.Record{Value: []byte("v"), TimestampMs: 99, Offset: 7, LeaderEpoch: 9}, 5, 6, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := EncodePayload(nil, tt.rec)
			if len(payload) != PayloadSize(tt.rec) {
				t.Fatalf("PayloadSize = %d, encoded %d bytes", PayloadSize(tt.rec), len(payload))
			}
			want := &stratav1.Record{Key: tt.rec.Key, Value: tt.rec.Value, Headers: tt.rec.Headers}
			got := &stratav1.Record{}
			if err := proto.Unmarshal(payload, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("payload decodes to %v, want %v", got, want)
			}
			wire := AppendWireRecord([]byte("junk"), payload, tt.ts, tt.off, tt.epoch)[4:]
			if len(wire) != WireRecordSize(len(payload), tt.ts, tt.off, tt.epoch) {
				t.Fatalf("WireRecordSize = %d, encoded %d", WireRecordSize(len(payload), tt.ts, tt.off, tt.epoch), len(wire))
			}
			want.TimestampMs, want.Offset, want.LeaderEpoch = tt.ts, tt.off, tt.epoch
			got = &stratav1.Record{}
			if err := proto.Unmarshal(wire, got); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(got, want) {
				t.Fatalf("wire record decodes to %v, want %v", got, want)
			}
			// Byte-identical to the protobuf library's encoding.
			lib, err := proto.MarshalOptions{Deterministic: true}.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if string(lib) != string(wire) {
				t.Errorf("wire bytes differ from proto.Marshal:\n got %x\nwant %x", wire, lib)
			}
		})
	}
}

func TestPayloadKey(t *testing.T) {
	for _, tc := range []struct {
		r         *stratav1.Record
		key       string
		tombstone bool
	}{
		{&stratav1.Record{Key: []byte("k"), Value: []byte("v")}, "k", false},
		{&stratav1.Record{Key: []byte("k")}, "k", true},
		{&stratav1.Record{Value: []byte("v")}, "", false},
		{&stratav1.Record{Key: []byte("k"), Value: []byte("v"), Headers: []*stratav1.Header{{Key: "h", Value: []byte("x")}}}, "k", false},
	} {
		key, tomb, err := PayloadKey(EncodePayload(nil, tc.r))
		if err != nil || string(key) != tc.key || tomb != tc.tombstone {
			t.Errorf("PayloadKey(%v) = %q, %v, %v; want %q, %v", tc.r, key, tomb, err, tc.key, tc.tombstone)
		}
	}
	if _, _, err := PayloadKey([]byte{0x0a, 0x05, 'a'}); err == nil {
		t.Error("a truncated payload decoded")
	}
}
