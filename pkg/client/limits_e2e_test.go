package client

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc/codes"
)

// TestE2ELargestRecord: a record of the largest max.record.bytes a topic
// may have goes through a real broker with its default gRPC limits and
// back (the broker's 16 MiB limit refused a 50 MB record with
// "ResourceExhausted: grpc: received message larger than max"); a record
// above its topic's max.record.bytes is refused naming the setting and
// how to raise it; one above any topic's limit is refused before it is
// sent.
func TestE2ELargestRecord(t *testing.T) {
	b := startRealBroker(t)
	cl := dialTest(t, b.addr)
	ctx := testCtx(t)
	if _, err := cl.CreateTopic(ctx, "big", &TopicConfig{Partitions: 1, ReplicationFactor: 1, Fsync: "never",
		MaxRecordBytes: stratav1.MaxRecordBytes}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateTopic(ctx, "small", &TopicConfig{Partitions: 1, ReplicationFactor: 1, Fsync: "never"}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, cl, ProducerOptions{})

	// The broker counts a record's encoded fields: a value of n bytes is
	// 1 (tag) + 4 (length, n >= 2^21) + n.
	value := bytes.Repeat([]byte{'v'}, stratav1.MaxRecordBytes-5)
	m, err := p.ProduceSync(ctx, &Record{Topic: "big", Value: value})
	if err != nil {
		t.Fatalf("produce a record of the largest max.record.bytes: %v", err)
	}
	cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "big", Start: AtOffset(m.Offset)})
	r, err := cs.Next(ctx)
	if err != nil {
		t.Fatalf("consume it: %v", err)
	}
	if !bytes.Equal(r.Value, value) {
		t.Fatalf("consumed %d bytes, want the %d produced", len(r.Value), len(value))
	}

	_, err = p.ProduceSync(ctx, &Record{Topic: "small", Value: value[:2<<20]})
	if Code(err) != codes.InvalidArgument {
		t.Fatalf("a record above its topic's max.record.bytes: %v, want InvalidArgument", err)
	}
	for _, w := range []string{"max.record.bytes", "strata topic alter small --config max.record.bytes="} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%q lacks %q", err, w)
		}
	}

	_, err = p.ProduceSync(ctx, &Record{Topic: "big", Value: append(value, make([]byte, 6)...)})
	var tl *RecordTooLargeError
	if !errors.As(err, &tl) || tl.Max != stratav1.MaxRecordBytes {
		t.Fatalf("a record above any topic's limit: %v, want a *RecordTooLargeError", err)
	}
}
