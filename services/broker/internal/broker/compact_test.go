package broker

import (
	"fmt"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestCompactedTopic: a topic with cleanup.policy=compact keeps the latest
// record of each key: after the broker's cleaner ran, reading from the
// start returns fewer records, at their original offsets (gaps between
// them), the latest value of every key is there, a key whose latest
// record is a tombstone past delete.retention.ms is gone, and what a
// plain (delete) topic holds is untouched.
func TestCompactedTopic(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.CompactionInterval = 100 * time.Millisecond
	b, c := startBroker(t, cfg)
	_ = b
	createTopic(t, c, "kv", &stratav1.TopicConfig{SegmentBytes: 1024, MaxRecordBytes: 512, CleanupPolicy: "compact", DeleteRetentionMs: 1})
	createTopic(t, c, "plain", &stratav1.TopicConfig{SegmentBytes: 1024, MaxRecordBytes: 512})
	const keys, rounds = 10, 30
	for r := range rounds {
		var recs []*stratav1.Record
		for k := range keys {
			v := []byte(fmt.Sprintf("v%d", r))
			if k == 0 && r == rounds-1 {
				v = nil // the last word on k0 is a tombstone
			}
			recs = append(recs, &stratav1.Record{Key: []byte(fmt.Sprintf("k%d", k)), Value: v})
		}
		for _, topic := range []string{"kv", "plain"} {
			if _, err := c.log.Produce(ctxT(t), &stratav1.ProduceRequest{Topic: topic, Records: recs}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// One more batch rolls the segment holding the last round, so that
	// the round is in a sealed (cleanable) segment.
	filler := []*stratav1.Record{{Key: []byte("filler"), Value: make([]byte, 400)}, {Key: []byte("filler"), Value: make([]byte, 400)}, {Key: []byte("filler"), Value: make([]byte, 400)}}
	if _, err := c.log.Produce(ctxT(t), &stratav1.ProduceRequest{Topic: "kv", Records: filler}); err != nil {
		t.Fatal(err)
	}
	readAll := func(topic string) []*stratav1.Record {
		var out []*stratav1.Record
		for next := int64(0); ; {
			resp, err := c.log.Consume(ctxT(t), &stratav1.ConsumeRequest{Topic: topic, Offset: next, MaxRecords: 1000})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, resp.GetRecords()...)
			if resp.GetNextOffset() >= resp.GetHighWatermark() || len(resp.GetRecords()) == 0 {
				return out
			}
			next = resp.GetNextOffset()
		}
	}
	// Cleans run every 100ms: wait for the one that has seen every round
	// sealed (the tombstone on k0 gone with it).
	var got []*stratav1.Record
	eventually(t, 15*time.Second, func() bool {
		got = readAll("kv")
		for _, r := range got {
			if string(r.GetKey()) == "k0" {
				return false
			}
		}
		return len(got) < keys*rounds/2
	})
	latest := map[string]string{}
	last := int64(-1)
	for _, r := range got {
		if r.GetOffset() <= last {
			t.Fatalf("offsets not rising: %d after %d", r.GetOffset(), last)
		}
		last = r.GetOffset()
		latest[string(r.GetKey())] = string(r.GetValue())
		if string(r.GetKey()) != "filler" {
			want := fmt.Sprintf("v%d", (r.GetOffset())/keys)
			if string(r.GetValue()) != want && len(r.GetValue()) > 0 {
				t.Fatalf("offset %d (%s) holds %q: offsets moved", r.GetOffset(), r.GetKey(), r.GetValue())
			}
		}
	}
	for k := 1; k < keys; k++ {
		if v := latest[fmt.Sprintf("k%d", k)]; v != fmt.Sprintf("v%d", rounds-1) {
			t.Errorf("k%d's latest value is %q, want v%d", k, v, rounds-1)
		}
	}
	if v, ok := latest["k0"]; ok {
		t.Errorf("k0, deleted by a tombstone past its retention, still reads %q", v)
	}
	if n := len(readAll("plain")); n != keys*rounds {
		t.Errorf("the delete-policy topic holds %d records, want all %d", n, keys*rounds)
	}
	t.Logf("compacted topic: %d records of %d left", len(got), keys*rounds+len(filler))
}
