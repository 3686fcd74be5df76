package broker

import (
	"testing"

	"google.golang.org/grpc/codes"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestIdempotentBatchSentTwice: a single broker hands out producer ids
// (unique across a restart), answers a batch sent twice with the first
// one's offsets and keeps it once in the log; a gap and an older epoch are
// refused with a ProducerFault detail, and the dedupe state survives a
// restart.
func TestIdempotentBatchSentTwice(t *testing.T) {
	dir := t.TempDir()
	b, c := startBroker(t, testConfig(dir))
	ctx := ctxT(t)
	createTopic(t, c, "idem", nil)

	init, err := c.log.InitProducer(ctx, &stratav1.InitProducerRequest{Topic: "idem"})
	if err != nil {
		t.Fatal(err)
	}
	pid, epoch := init.GetProducerId(), init.GetProducerEpoch()
	if pid <= 0 || epoch != 0 {
		t.Fatalf("InitProducer = %v, want a positive id in epoch 0", init)
	}
	send := func(seq int64, epoch int32, n int) (*stratav1.ProduceResponse, error) {
		return c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "idem", Records: values(n, "v"), Acks: stratav1.Acks_ACKS_ALL,
			ProducerId: pid, ProducerEpoch: epoch, BaseSequence: seq})
	}
	// A plain record first, so the producer's offsets are not its sequences.
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "idem", Records: values(1, "plain")}); err != nil {
		t.Fatal(err)
	}
	first, err := send(0, epoch, 3)
	if err != nil {
		t.Fatal(err)
	}
	again, err := send(0, epoch, 3)
	if err != nil {
		t.Fatal(err)
	}
	if again.GetBaseOffset() != first.GetBaseOffset() || again.GetLastOffset() != first.GetLastOffset() || !again.GetDuplicate() || first.GetDuplicate() {
		t.Fatalf("second send = %v, want the first's offsets %d..%d marked duplicate", again, first.GetBaseOffset(), first.GetLastOffset())
	}
	// A gap: sequence 5 when 3 is next.
	_, err = send(5, epoch, 1)
	st := wantCode(t, err, codes.FailedPrecondition)
	if f := faultOf(st.Details()); f.GetReason() != stratav1.ProducerFault_REASON_OUT_OF_ORDER_SEQUENCE || f.GetExpectedSequence() != 3 {
		t.Fatalf("gap: detail %v, want OUT_OF_ORDER_SEQUENCE expecting 3", f)
	}
	// A newer epoch of the id fences the older one.
	bump, err := c.log.InitProducer(ctx, &stratav1.InitProducerRequest{Topic: "idem", ProducerId: pid, ProducerEpoch: epoch})
	if err != nil || bump.GetProducerEpoch() != epoch+1 || bump.GetProducerId() != pid {
		t.Fatalf("InitProducer bump = %v, %v", bump, err)
	}
	if _, err := send(0, epoch+1, 2); err != nil {
		t.Fatal(err)
	}
	_, err = send(3, epoch, 1)
	st = wantCode(t, err, codes.FailedPrecondition)
	if f := faultOf(st.Details()); f.GetReason() != stratav1.ProducerFault_REASON_PRODUCER_FENCED || f.GetCurrentEpoch() != epoch+1 {
		t.Fatalf("old epoch: detail %v, want PRODUCER_FENCED at epoch %d", f, epoch+1)
	}
	resp, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "idem", Offset: 0, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetRecords()); n != 1+3+2 {
		t.Fatalf("log holds %d records, want 6 (the duplicate once)", n)
	}
	if r := resp.GetRecords()[1]; r.GetProducerId() != pid || r.GetSequence() != 0 {
		t.Fatalf("record 1 = %v, want producer %d sequence 0", r, pid)
	}

	// After a restart: the same duplicate is still recognized, and a new id
	// is not one handed out before.
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	_, c = startBroker(t, testConfig(dir))
	dup, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "idem", Records: values(2, "v"), Acks: stratav1.Acks_ACKS_ALL,
		ProducerId: pid, ProducerEpoch: epoch + 1, BaseSequence: 0})
	if err != nil || !dup.GetDuplicate() || dup.GetBaseOffset() != 4 {
		t.Fatalf("after restart: %v, %v; want the duplicate at offset 4", dup, err)
	}
	next, err := c.log.InitProducer(ctx, &stratav1.InitProducerRequest{Topic: "idem"})
	if err != nil || next.GetProducerId() == pid {
		t.Fatalf("InitProducer after restart = %v, %v; want an id other than %d", next, err, pid)
	}
}

func faultOf(details []any) *stratav1.ProducerFault {
	for _, d := range details {
		if f, ok := d.(*stratav1.ProducerFault); ok {
			return f
		}
	}
	return nil
}

// TestUnissuedProducerIDRefused: a producer id the broker never handed out
// (made up, or above every block allocated) is refused with
// UNKNOWN_PRODUCER_ID, in a batch and in InitProducer, and nothing is
// appended; an issued one still works after it.
func TestUnissuedProducerIDRefused(t *testing.T) {
	_, c := startBroker(t, testConfig(t.TempDir()))
	ctx := ctxT(t)
	createTopic(t, c, "idem", nil)
	init, err := c.log.InitProducer(ctx, &stratav1.InitProducerRequest{Topic: "idem"})
	if err != nil {
		t.Fatal(err)
	}
	made := init.GetProducerId() + 1_000_000 // far past the block the broker allocated
	_, err = c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "idem", Records: values(2, "v"), Acks: stratav1.Acks_ACKS_ALL,
		ProducerId: made, BaseSequence: 0})
	st := wantCode(t, err, codes.FailedPrecondition)
	if f := faultOf(st.Details()); f.GetReason() != stratav1.ProducerFault_REASON_UNKNOWN_PRODUCER_ID || f.GetProducerId() != made {
		t.Fatalf("made-up id: detail %v, want UNKNOWN_PRODUCER_ID for %d", f, made)
	}
	_, err = c.log.InitProducer(ctx, &stratav1.InitProducerRequest{Topic: "idem", ProducerId: made, ProducerEpoch: 0})
	st = wantCode(t, err, codes.FailedPrecondition)
	if f := faultOf(st.Details()); f.GetReason() != stratav1.ProducerFault_REASON_UNKNOWN_PRODUCER_ID {
		t.Fatalf("InitProducer with a made-up id: detail %v, want UNKNOWN_PRODUCER_ID", f)
	}
	if _, err := c.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "idem", Records: values(1, "v"), Acks: stratav1.Acks_ACKS_ALL,
		ProducerId: init.GetProducerId(), BaseSequence: 0}); err != nil {
		t.Fatalf("the issued id after the refusals: %v", err)
	}
	resp, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "idem", Offset: 0, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetRecords()); n != 1 {
		t.Fatalf("log holds %d records, want 1 (nothing of the refused batch)", n)
	}
}
