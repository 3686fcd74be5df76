package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc/codes"
)

// pipelineOptions: batches of 4 records, sealed only when full (so that
// the first window is 5 whole batches), a short answer timeout for the
// stalls, quick retries.
func pipelineOptions() ProducerOptions {
	return ProducerOptions{Linger: time.Hour, MaxBatchRecords: 4, RequestTimeout: 300 * time.Millisecond,
		RetryBackoff: time.Millisecond, RetryBackoffMax: 5 * time.Millisecond}
}

// produceValues produces the values from..to-1 (decimal) to one partition
// and returns each record's result, waiting for all of them.
func produceValues(t *testing.T, ctx context.Context, p *Producer, topic string, part int32, from, to int) []*Result {
	t.Helper()
	var rs []*Result
	for i := from; i < to; i++ {
		rs = append(rs, p.Produce(ctx, &Record{Topic: topic, Partition: part, ExplicitPartition: true, Value: []byte(strconv.Itoa(i))}))
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if _, err := r.Wait(ctx); err != nil && ctx.Err() != nil {
			t.Fatal(err)
		}
	}
	return rs
}

// checkPartitionLog checks one partition's log against the results of
// the values first..first+len(rs)-1 produced to it, in order: no value
// twice, values in increasing order (Produce order), every acknowledged
// record at its offset. It returns the values in the log.
func checkPartitionLog(t *testing.T, fc *fakeCluster, topic string, part int, first int, rs []*Result) []int {
	t.Helper()
	var vals []int
	seen := make(map[int]bool)
	for off, r := range fc.log(topic, part) {
		v, err := strconv.Atoi(string(r.GetValue()))
		if err != nil {
			t.Fatalf("%s/%d offset %d: %q", topic, part, off, r.GetValue())
		}
		if seen[v] {
			t.Fatalf("%s/%d: value %d twice (again at offset %d)", topic, part, v, off)
		}
		if len(vals) > 0 && v < vals[len(vals)-1] {
			t.Fatalf("%s/%d: value %d at offset %d after %d: out of Produce order", topic, part, v, off, vals[len(vals)-1])
		}
		seen[v] = true
		vals = append(vals, v)
	}
	log := fc.log(topic, part)
	for i, r := range rs {
		m, err := r.Get()
		if err != nil {
			continue
		}
		v := first + i
		if m.Offset < 0 || m.Offset >= int64(len(log)) || string(log[m.Offset].GetValue()) != strconv.Itoa(v) {
			t.Fatalf("%s/%d: value %d acknowledged at offset %d, which holds something else", topic, part, v, m.Offset)
		}
	}
	return vals
}

// expectAll checks that every record was acknowledged and the log holds
// exactly the values 0..n-1 in order.
func expectAll(t *testing.T, fc *fakeCluster, rs []*Result) {
	t.Helper()
	for i, r := range rs {
		if _, err := r.Get(); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	if vals := checkPartitionLog(t, fc, "t", 0, 0, rs); len(vals) != len(rs) {
		t.Fatalf("the log holds %d records, want %d: %v", len(vals), len(rs), vals)
	}
}

// firstWindow checks that the first five requests, all received before
// any was appended or answered, were the first five batches.
func firstWindow(t *testing.T, fc *fakeCluster) {
	t.Helper()
	fc.mu.Lock()
	held := fmt.Sprint(fc.pipe.held)
	fc.mu.Unlock()
	if held != "[0 4 8 12 16]" {
		t.Fatalf("the first requests carried sequences %s, want [0 4 8 12 16] (five batches in flight)", held)
	}
}

// TestPipelineFaultAtEveryPosition injects a fault at each position of a
// full window of 5 batches in flight: a refusal (Unavailable), a leader
// change, a stream broken before the batch is appended, a stream broken
// after it is appended (its answer lost), an answer that never comes (the
// client's timeout), and an append followed by a leader change and a
// broken stream. Every time, every record is acknowledged, and the log
// holds each once, in Produce order, at the offset its result says.
func TestPipelineFaultAtEveryPosition(t *testing.T) {
	faults := []fakeFault{faultUnavailable, faultLeaderMove, faultBreakBefore, faultBreakAfter, faultStall, faultAppendThenMove}
	for _, fault := range faults {
		for pos := range 5 {
			t.Run(fmt.Sprintf("%v/%d", fault, pos), func(t *testing.T) {
				fc := newFakeCluster(t, 2)
				fc.addTopic("t", 1)
				fc.holdFirst = 5
				fc.streamFault = func(_ *fakeBroker, _ *stratav1.ProduceRequest, n int) fakeFault {
					if n == pos {
						return fault
					}
					return faultNone
				}
				cl := newTestClient(t, fc)
				p := newTestProducer(t, cl, pipelineOptions())
				rs := produceValues(t, testCtx(t), p, "t", 0, 0, 40)
				expectAll(t, fc, rs)
				firstWindow(t, fc)
			})
		}
	}
}

// TestPipelineFatalAtEveryPosition: a batch refused for good (a
// non-retriable error) at each position of a full window fails alone: the
// ones behind it, refused for the gap it left, are sent again under a new
// producer id, in order, after it.
func TestPipelineFatalAtEveryPosition(t *testing.T) {
	for pos := range 5 {
		t.Run(strconv.Itoa(pos), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			fc.holdFirst = 5
			fc.streamFault = func(_ *fakeBroker, _ *stratav1.ProduceRequest, n int) fakeFault {
				if n == pos {
					return faultFatal
				}
				return faultNone
			}
			cl := newTestClient(t, fc)
			p := newTestProducer(t, cl, pipelineOptions())
			rs := produceValues(t, testCtx(t), p, "t", 0, 0, 40)
			var want []int
			for i, r := range rs {
				_, err := r.Get()
				inFailed := i/4 == pos
				switch {
				case inFailed && Code(err) != codes.InvalidArgument:
					t.Fatalf("record %d (the refused batch): %v, want InvalidArgument", i, err)
				case !inFailed && err != nil:
					t.Fatalf("record %d: %v", i, err)
				case !inFailed:
					want = append(want, i)
				}
			}
			vals := checkPartitionLog(t, fc, "t", 0, 0, rs)
			if fmt.Sprint(vals) != fmt.Sprint(want) {
				t.Fatalf("log %v, want %v", vals, want)
			}
			fc.mu.Lock()
			pids := fc.nextPID
			fc.mu.Unlock()
			if pids != 2 {
				t.Fatalf("%d producer ids asked for, want 2 (the partition starts over after the failed batch)", pids)
			}
		})
	}
}

// TestPipelineUnknownProducerStartsOver: a partition stops knowing the
// producer just before a batch of a full window arrives, either its state
// forgotten (expired: that batch and the ones behind it are refused out of
// order sequence, as a producer it does not know starts at 0) or its id
// unknown to the cluster (a single node whose data directory was replaced:
// refused UNKNOWN_PRODUCER_ID before the append, KIP-360). None of them is
// in the log, so the partition starts over under a new producer id and
// sends them again, in order: every record is acknowledged once.
func TestPipelineUnknownProducerStartsOver(t *testing.T) {
	for _, tc := range []struct {
		fault    fakeFault
		from, to int // the positions in the window it is injected at
	}{
		{faultForget, 1, 4}, // at 0 the partition never knew the id: nothing to forget
		{faultUnknownID, 0, 4},
	} {
		for pos := tc.from; pos <= tc.to; pos++ {
			t.Run(fmt.Sprintf("%v/%d", tc.fault, pos), func(t *testing.T) {
				fc := newFakeCluster(t, 1)
				fc.addTopic("t", 1)
				fc.holdFirst = 5
				fc.streamFault = func(_ *fakeBroker, _ *stratav1.ProduceRequest, n int) fakeFault {
					if n == pos {
						return tc.fault
					}
					return faultNone
				}
				cl := newTestClient(t, fc)
				p := newTestProducer(t, cl, pipelineOptions())
				rs := produceValues(t, testCtx(t), p, "t", 0, 0, 40)
				expectAll(t, fc, rs)
				firstWindow(t, fc)
				fc.mu.Lock()
				pids := fc.nextPID
				fc.mu.Unlock()
				if pids != 2 {
					t.Fatalf("%d producer ids asked for, want 2", pids)
				}
			})
		}
	}
}

// TestPipelinePrecedingBatchFailed: the stream breaks at each position of
// a full window (nothing from there on is appended, but the client cannot
// know), then the resent batch at that position is refused for good. The
// batches behind it, whose first attempts may have been appended, fail
// with ErrPrecedingBatchFailed rather than be sent under a new producer id;
// the ones taken later are appended under the new id, after the others.
func TestPipelinePrecedingBatchFailed(t *testing.T) {
	for pos := range 5 {
		t.Run(strconv.Itoa(pos), func(t *testing.T) {
			fc := newFakeCluster(t, 1)
			fc.addTopic("t", 1)
			fc.holdFirst = 5
			attempts := 0
			fc.streamFault = func(_ *fakeBroker, req *stratav1.ProduceRequest, n int) fakeFault {
				if n == pos {
					return faultBreakBefore
				}
				if req.GetProducerId() == 1 && req.GetBaseSequence() == int64(4*pos) {
					if attempts++; attempts == 1 {
						return faultFatal // its resend
					}
				}
				return faultNone
			}
			cl := newTestClient(t, fc)
			p := newTestProducer(t, cl, pipelineOptions())
			rs := produceValues(t, testCtx(t), p, "t", 0, 0, 40)
			var want []int
			for i, r := range rs {
				_, err := r.Get()
				switch b := i / 4; {
				case b == pos:
					if Code(err) != codes.InvalidArgument {
						t.Fatalf("record %d (the refused batch): %v, want InvalidArgument", i, err)
					}
				case b > pos && b < 5 && (!errors.Is(err, ErrPrecedingBatchFailed) || Code(err) != codes.InvalidArgument):
					t.Fatalf("record %d (behind the refused batch): %v, want ErrPrecedingBatchFailed wrapping InvalidArgument", i, err)
				case b > pos && b < 5:
				case errors.Is(err, ErrPrecedingBatchFailed) && Code(err) == codes.InvalidArgument:
					// Taken into the window, and sent on the stream that broke,
					// after the answers before the break came in.
				case err != nil:
					t.Fatalf("record %d: %v", i, err)
				default:
					want = append(want, i)
				}
			}
			vals := checkPartitionLog(t, fc, "t", 0, 0, rs)
			if fmt.Sprint(vals) != fmt.Sprint(want) {
				t.Fatalf("log %v, want %v", vals, want)
			}
		})
	}
}

// TestPipelineDeliveryTimeoutBehindWindow: the leader refuses everything
// for longer than the delivery timeout; the window's batches fail (the
// first with ErrDeliveryTimeout), and nothing is appended out of order when
// the leader takes batches again.
func TestPipelineDeliveryTimeoutBehindWindow(t *testing.T) {
	fc := newFakeCluster(t, 1)
	fc.addTopic("t", 1)
	refuse := true
	fc.streamFault = func(_ *fakeBroker, _ *stratav1.ProduceRequest, n int) fakeFault {
		if refuse && n >= 3 {
			return faultUnavailable
		}
		return faultNone
	}
	fc.holdFirst = 5
	cl := newTestClient(t, fc)
	o := pipelineOptions()
	o.DeliveryTimeout = 400 * time.Millisecond
	p := newTestProducer(t, cl, o)
	ctx := testCtx(t)
	rs := produceValues(t, ctx, p, "t", 0, 0, 20)
	if _, err := rs[12].Get(); !errors.Is(err, ErrDeliveryTimeout) || Code(err) != codes.Unavailable {
		t.Fatalf("first refused batch: %v, want ErrDeliveryTimeout wrapping Unavailable", err)
	}
	fc.mu.Lock()
	refuse = false
	fc.mu.Unlock()
	more := produceValues(t, ctx, p, "t", 0, 20, 40)
	for i, r := range more {
		if _, err := r.Get(); err != nil {
			t.Fatalf("record %d after the outage: %v", 20+i, err)
		}
	}
	vals := checkPartitionLog(t, fc, "t", 0, 0, append(rs, more...))
	for i := range 12 {
		if vals[i] != i {
			t.Fatalf("log %v: the first three batches are not first", vals)
		}
	}
}

// TestPipelineRandomFaults: several partitions, faults of every retriable
// kind at random requests, leaders moving among three brokers: every
// record is acknowledged once, in order, in every partition.
func TestPipelineRandomFaults(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 15))
			fc := newFakeCluster(t, 3)
			const parts, perPart = 4, 600
			fc.addTopic("t", parts)
			kinds := []fakeFault{faultUnavailable, faultLeaderMove, faultBreakBefore, faultBreakAfter, faultStall, faultAppendThenMove}
			faults := 0
			fc.streamFault = func(_ *fakeBroker, _ *stratav1.ProduceRequest, n int) fakeFault {
				if rng.IntN(100) < 4 {
					faults++
					return kinds[rng.IntN(len(kinds))]
				}
				return faultNone
			}
			cl := newTestClient(t, fc)
			o := pipelineOptions()
			o.Linger = time.Millisecond
			o.MaxBatchRecords = 1 + int(seed)*3
			o.RequestTimeout = 200 * time.Millisecond
			p := newTestProducer(t, cl, o)
			ctx := testCtx(t)
			var rs [parts][]*Result
			for i := range perPart {
				for k := range parts {
					rs[k] = append(rs[k], p.Produce(ctx, &Record{Topic: "t", Partition: int32(k), ExplicitPartition: true, Value: []byte(strconv.Itoa(i))}))
				}
			}
			if err := p.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for k := range parts {
				for i, r := range rs[k] {
					if _, err := r.Wait(ctx); err != nil {
						t.Fatalf("partition %d record %d: %v", k, i, err)
					}
				}
				if vals := checkPartitionLog(t, fc, "t", k, 0, rs[k]); len(vals) != perPart {
					t.Fatalf("partition %d holds %d records, want %d", k, len(vals), perPart)
				}
			}
			fc.mu.Lock()
			t.Logf("%d faults in %d requests", faults, fc.pipe.processed)
			fc.mu.Unlock()
		})
	}
}
