package verify

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// copyOf is a replica holding values at offsets [start, start+len(values)),
// with high watermark hw. An empty value leaves its offset out (a gap).
func copyOf(broker int32, start, hw int64, values ...string) Replica {
	r := Replica{Broker: broker, LogStart: start, LogEnd: start + int64(len(values)), HW: hw}
	for i, v := range values {
		if v != "" {
			r.Records = append(r.Records, Record{Offset: start + int64(i), Value: v})
		}
	}
	return r
}

func ack(partition int32, offset int64, value string) Outcome {
	return Outcome{Kind: KindAck, Value: value, Partition: partition, Offset: offset}
}

func indefinite(partition int32, value string) Outcome {
	return Outcome{Kind: KindIndefinite, Value: value, Partition: partition, Offset: -1, Error: "deadline exceeded"}
}

func failed(value string) Outcome {
	return Outcome{Kind: KindFailed, Value: value, Partition: -1, Offset: -1, Error: "permission denied"}
}

// healthy is partition 0 led by broker 1 with brokers 1, 2, 3 in sync,
// every copy the same.
func healthy(values ...string) Partition {
	n := int64(len(values))
	return Partition{ID: 0, Leader: 1, ISR: []int32{1, 2, 3}, Replicas: []Replica{
		copyOf(1, 0, n, values...), copyOf(2, 0, n, values...), copyOf(3, 0, n, values...),
	}}
}

func TestCheck(t *testing.T) {
	acks3 := []Outcome{ack(0, 0, "a"), ack(0, 1, "b"), ack(0, 2, "c")}
	tests := []struct {
		name       string
		in         Input
		want       Counts // only the fields the case is about are compared, see below
		findings   []FindingKind
		detail     string // a substring of the first finding's detail
		wantFailed bool
	}{
		{
			name: "clean history passes",
			in:   Input{Outcomes: acks3, Partitions: []Partition{healthy("a", "b", "c")}},
			want: Counts{Records: 3, Acked: 3},
		},
		{
			name: "lost ack: the leader's log ends before it",
			in: Input{Outcomes: acks3, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1, 2, 3}, Replicas: []Replica{
				copyOf(1, 0, 2, "a", "b"), copyOf(2, 0, 2, "a", "b"), copyOf(3, 0, 2, "a", "b"),
			}}}},
			want:       Counts{Records: 2, Acked: 3, Lost: 1},
			findings:   []FindingKind{FindingLost},
			detail:     "past the log end 2",
			wantFailed: true,
		},
		{
			name: "ack at a different offset: another value at the acked one",
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), ack(0, 1, "b"), indefinite(0, "x")},
				Partitions: []Partition{healthy("a", "x", "b")}},
			want: Counts{Records: 3, Acked: 2, Lost: 1, Indefinite: 1, IndefiniteFound: 1},
			// Once per copy that should hold it: the leader and both followers.
			findings:   []FindingKind{FindingLost, FindingLost, FindingLost},
			detail:     `offset holds "x"; the value is stored at [0@2]`,
			wantFailed: true,
		},
		{
			name: "lost on an in-sync follower below its HW while the leader has it",
			in: Input{Outcomes: acks3, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1, 2}, Replicas: []Replica{
				copyOf(1, 0, 3, "a", "b", "c"), copyOf(2, 0, 3, "a", "", "c"),
			}}}},
			want: Counts{Records: 3, Acked: 3, Lost: 1, Divergent: 1, Gaps: 1},
			// Sorted by kind: the follower's gap shows up as all three.
			findings:   []FindingKind{FindingDivergent, FindingGap, FindingLost},
			wantFailed: true,
		},
		{
			name: "value mismatch between replicas below HW",
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), indefinite(0, "b")}, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1, 2, 3}, Replicas: []Replica{
				copyOf(1, 0, 2, "a", "b"), copyOf(2, 0, 2, "a", "b"), copyOf(3, 0, 2, "a", "B"),
			}}}},
			want: Counts{Records: 2, Acked: 1, Indefinite: 1, IndefiniteFound: 1, Divergent: 1},
			// One offset, two pairs disagreeing: 1 with 3 and 2 with 3.
			findings:   []FindingKind{FindingDivergent, FindingDivergent},
			detail:     `below HW 2: broker 1 has "b", broker 3 has "B"`,
			wantFailed: true,
		},
		{
			name: "an out-of-sync replica is compared below the lower HW only",
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), ack(0, 1, "b")}, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1, 2}, Replicas: []Replica{
				copyOf(1, 0, 2, "a", "b"), copyOf(2, 0, 2, "a", "b"), copyOf(3, 0, 1, "c"),
			}}}},
			want:       Counts{Records: 2, Acked: 2, Divergent: 1},
			findings:   []FindingKind{FindingDivergent, FindingDivergent},
			detail:     `below HW 1: broker 1 has "a", broker 3 has "c"`,
			wantFailed: true,
		},
		{
			name: "divergence above the HW is not reported",
			// Broker 3, cut off as the old leader, appended "z" at offset 2
			// that no one acknowledged; the new leader 1 has "c" there but
			// its HW is 2, so neither is committed yet.
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), ack(0, 1, "b"), indefinite(0, "z"), indefinite(0, "c")},
				Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1, 2}, Replicas: []Replica{
					copyOf(1, 0, 2, "a", "b", "c"), copyOf(2, 0, 2, "a", "b"), copyOf(3, 0, 2, "a", "b", "z"),
				}}}},
			want: Counts{Records: 3, Acked: 2, Indefinite: 2, IndefiniteFound: 1, IndefiniteNotFound: 1},
		},
		{
			name: "duplicates of an acked and of an indefinite value are counted apart, and pass",
			in: Input{Outcomes: []Outcome{ack(0, 1, "a"), indefinite(0, "b")},
				Partitions: []Partition{healthy("a", "a", "b", "b")}},
			want:     Counts{Records: 4, Acked: 1, Indefinite: 1, IndefiniteFound: 1, DupAcked: 1, DupIndefinite: 1},
			findings: []FindingKind{FindingDuplicate, FindingDuplicate},
			detail:   "ack record stored 2 times, at [0@0 0@1]",
		},
		{
			name: "a value duplicated across partitions",
			in: Input{Outcomes: []Outcome{indefinite(0, "a")}, Partitions: []Partition{
				healthy("a"), {ID: 1, Leader: 2, ISR: []int32{2}, Replicas: []Replica{copyOf(2, 0, 1, "a")}},
			}},
			want:     Counts{Records: 2, Indefinite: 1, IndefiniteFound: 1, DupIndefinite: 1},
			findings: []FindingKind{FindingDuplicate},
			detail:   "at [0@0 1@0]",
		},
		{
			name: "gap inside the leader's log",
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), ack(0, 2, "c")},
				Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1}, Replicas: []Replica{copyOf(1, 0, 3, "a", "", "c")}}}},
			want:       Counts{Records: 2, Acked: 2, Gaps: 1},
			findings:   []FindingKind{FindingGap},
			detail:     "offsets [1, 2) missing",
			wantFailed: true,
		},
		{
			name: "a repeated offset is a gap finding",
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), ack(0, 1, "b")}, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1},
				Replicas: []Replica{{Broker: 1, LogEnd: 2, HW: 2, Records: []Record{{0, "a"}, {1, "b"}, {1, "b2"}}}}}}},
			want:       Counts{Records: 3, Acked: 2, Gaps: 1, Unknown: 1},
			findings:   []FindingKind{FindingGap, FindingUnknown},
			detail:     "offset 1 read after offset 1",
			wantFailed: true,
		},
		{
			name: "records missing at the end of the log",
			in: Input{Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1},
				Replicas: []Replica{{Broker: 1, LogEnd: 3, HW: 3, Records: []Record{{0, "a"}}}}}}},
			want:       Counts{Records: 1, Gaps: 2, Unknown: 1},
			findings:   []FindingKind{FindingGap, FindingUnknown},
			detail:     "offsets [1, 3) missing before the log end",
			wantFailed: true,
		},
		{
			name: "indefinite outcomes resolved: one found, one not",
			in: Input{Outcomes: []Outcome{ack(0, 0, "a"), indefinite(0, "b"), indefinite(0, "gone")},
				Partitions: []Partition{healthy("a", "b")}},
			want: Counts{Records: 2, Acked: 1, Indefinite: 2, IndefiniteFound: 1, IndefiniteNotFound: 1},
		},
		{
			name: "a failed record found in the log is reported, not failed",
			in:   Input{Outcomes: []Outcome{ack(0, 0, "a"), failed("b"), failed("c")}, Partitions: []Partition{healthy("a", "b")}},
			want: Counts{Records: 2, Acked: 1, Failed: 2, FailedPresent: 1},
			// A failed outcome was never sent: counted in no partition.
			findings: []FindingKind{FindingFailedPresent},
			detail:   "producer was told it failed (permission denied)",
		},
		{
			name: "an unreadable follower makes the check incomplete",
			in: Input{Outcomes: acks3[:1], Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1, 2}, Replicas: []Replica{
				copyOf(1, 0, 1, "a"), {Broker: 2, Err: "connection refused"},
			}}}},
			want:       Counts{Records: 1, Acked: 1, Unreadable: 1},
			findings:   []FindingKind{FindingUnreadable},
			detail:     "connection refused",
			wantFailed: true,
		},
		{
			name: "without a leader acks are checked on in-sync copies below their HW only",
			in: Input{Outcomes: acks3, Partitions: []Partition{{ID: 0, Leader: -1, ISR: []int32{2}, Replicas: []Replica{
				{Broker: 1, Err: "unavailable"}, copyOf(2, 0, 2, "a", "X", "c"),
			}}}},
			want:       Counts{Records: 3, Acked: 3, Lost: 1, Unknown: 1, Unreadable: 2},
			findings:   []FindingKind{FindingLost, FindingUnknown, FindingUnreadable, FindingUnreadable},
			detail:     `in-sync replica below its HW: offset holds "X"`,
			wantFailed: true,
		},
		{
			name: "an ack on a partition the topic lacks is lost",
			in:   Input{Outcomes: []Outcome{ack(7, 0, "a")}, Partitions: []Partition{healthy("a")}},
			// The stored "a" is the same value: not unknown.
			want:       Counts{Records: 1, Acked: 1, Lost: 1},
			findings:   []FindingKind{FindingLost},
			detail:     "a partition the topic does not have",
			wantFailed: true,
		},
		{
			name: "acks below the log start were deleted by retention, not lost",
			in: Input{Outcomes: acks3, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1}, Replicas: []Replica{
				copyOf(1, 2, 3, "c"),
			}}}},
			want: Counts{Records: 1, Acked: 3, AckedExpired: 2},
		},
		{
			name: "MaxExamples caps the findings kept, not the counts",
			in: Input{MaxExamples: 1, Outcomes: acks3, Partitions: []Partition{{ID: 0, Leader: 1, ISR: []int32{1}, Replicas: []Replica{
				copyOf(1, 0, 0),
			}}}},
			want:       Counts{Acked: 3, Lost: 3},
			findings:   []FindingKind{FindingLost},
			wantFailed: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Check(tt.in)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if rep.Total != tt.want {
				t.Errorf("totals:\n got %+v\nwant %+v", rep.Total, tt.want)
			}
			var kinds []FindingKind
			for _, f := range rep.Findings {
				kinds = append(kinds, f.Kind)
			}
			if strings.Join(kindStrings(kinds), ",") != strings.Join(kindStrings(tt.findings), ",") {
				t.Errorf("findings %v, want %v: %+v", kinds, tt.findings, rep.Findings)
			}
			if tt.detail != "" && (len(rep.Findings) == 0 || !strings.Contains(rep.Findings[0].Detail, tt.detail)) {
				t.Errorf("first finding %+v, want detail containing %q", rep.Findings, tt.detail)
			}
			if got := len(rep.Problems()) > 0; got != tt.wantFailed {
				t.Errorf("Problems() = %q, want failing %v", rep.Problems(), tt.wantFailed)
			}
		})
	}
}

func kindStrings(ks []FindingKind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

func TestCheckOmittedAndPartitionCounts(t *testing.T) {
	in := Input{MaxExamples: 1,
		Outcomes: []Outcome{ack(0, 0, "a"), ack(0, 1, "b"), ack(1, 0, "c")},
		Partitions: []Partition{
			{ID: 0, Leader: 1, ISR: []int32{1}, Replicas: []Replica{copyOf(1, 0, 0)}},
			{ID: 1, Leader: 2, ISR: []int32{2}, Replicas: []Replica{copyOf(2, 0, 1, "c")}},
		}}
	rep, err := Check(in)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FindingsOmitted != 1 || len(rep.Findings) != 1 {
		t.Errorf("kept %d findings, omitted %d; want 1 and 1", len(rep.Findings), rep.FindingsOmitted)
	}
	if p0, p1 := rep.Partitions[0], rep.Partitions[1]; p0.Lost != 2 || p0.Acked != 2 || p1.Lost != 0 || p1.Acked != 1 || p1.Records != 1 {
		t.Errorf("per partition: p0 %+v, p1 %+v", p0.Counts, p1.Counts)
	}
	if r := rep.Partitions[1].Replicas[0]; !r.Leader || !r.InISR || r.Records != 1 {
		t.Errorf("replica summary %+v", r)
	}
}

func TestCheckRejectsRepeatedValue(t *testing.T) {
	_, err := Check(Input{Outcomes: []Outcome{ack(0, 0, "a"), indefinite(0, "a")}})
	if !errors.Is(err, ErrDupValue) {
		t.Fatalf("Check = %v, want ErrDupValue", err)
	}
}

// seq gives an outcome its producer's identity: run, producer, sequence,
// and whether that producer was idempotent.
func seq(o Outcome, run string, producer int, s int64, idempotent bool) Outcome {
	o.Run, o.Producer, o.Seq, o.Idempotent = run, producer, s, idempotent
	return o
}

// TestCheckIdempotence: a duplicate or a reorder fails the check when the
// producer was idempotent and is only counted when it was not.
func TestCheckIdempotence(t *testing.T) {
	// Producer 0 of run r sent a (seq 0), b (seq 3), c (seq 6) to
	// partition 0 (its other sequences went to other partitions).
	outs := func(idem bool, kinds ...Kind) []Outcome {
		values := []string{"a", "b", "c"}
		var out []Outcome
		for i, v := range values {
			o := ack(0, int64(i), v)
			if kinds != nil && kinds[i] == KindIndefinite {
				o = indefinite(0, v)
			}
			out = append(out, seq(o, "r", 0, int64(3*i), idem))
		}
		return out
	}
	tests := []struct {
		name     string
		outcomes []Outcome
		stored   []string
		want     Counts
		findings []FindingKind
		detail   string
		failIdem bool // the check fails when the producer was idempotent
	}{
		{
			name:     "in order, once each",
			outcomes: outs(false), stored: []string{"a", "b", "c"},
			want: Counts{Records: 3, Acked: 3},
		},
		{
			name:     "an acked record stored twice (a retried batch appended again)",
			outcomes: outs(false), stored: []string{"a", "b", "c", "c"},
			want:     Counts{Records: 4, Acked: 3, DupAcked: 1},
			findings: []FindingKind{FindingDuplicate},
			detail:   "ack record stored 2 times, at [0@2 0@3]",
			failIdem: true,
		},
		{
			name:     "an indefinite record stored twice",
			outcomes: outs(false, KindAck, KindAck, KindIndefinite), stored: []string{"a", "b", "c", "c"},
			want:     Counts{Records: 4, Acked: 2, Indefinite: 1, IndefiniteFound: 1, DupIndefinite: 1},
			findings: []FindingKind{FindingDuplicate},
			detail:   "indefinite record stored 2 times",
			failIdem: true,
		},
		{
			name:     "reordered: an indefinite record stored after a later acked one",
			outcomes: outs(false, KindAck, KindIndefinite, KindAck),
			// c was acked at offset 2 in this log: put it at 1 and b after.
			stored:   []string{"a", "c", "b"},
			want:     Counts{Records: 3, Acked: 2, Lost: 1, Indefinite: 1, IndefiniteFound: 1, Reordered: 1},
			findings: []FindingKind{FindingLost, FindingLost, FindingLost, FindingReordered},
			failIdem: true,
		},
		{
			name:     "reordered: a batch stored ahead of the one before it counts each record of the earlier",
			outcomes: outs(false, KindIndefinite, KindIndefinite, KindIndefinite), stored: []string{"c", "a", "b"},
			want:     Counts{Records: 3, Indefinite: 3, IndefiniteFound: 3, Reordered: 2},
			findings: []FindingKind{FindingReordered, FindingReordered},
			detail:   `producer 0 of run "r": sequence 3 (indefinite) stored after its sequence 6 at offset 0`,
			failIdem: true,
		},
		{
			name:     "a repeat of an earlier record is a duplicate, not a reorder",
			outcomes: outs(false, KindAck, KindAck, KindIndefinite), stored: []string{"a", "b", "c", "a"},
			want:     Counts{Records: 4, Acked: 2, Indefinite: 1, IndefiniteFound: 1, DupAcked: 1},
			findings: []FindingKind{FindingDuplicate},
			failIdem: true,
		},
	}
	for _, tt := range tests {
		for _, idem := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/idempotent=%t", tt.name, idem), func(t *testing.T) {
				in := Input{Partitions: []Partition{healthy(tt.stored...)}}
				for _, o := range tt.outcomes {
					o.Idempotent = idem
					in.Outcomes = append(in.Outcomes, o)
				}
				rep, err := Check(in)
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				if idem {
					want.DupIdempotent = want.DupAcked + want.DupIndefinite
					want.ReorderedIdempotent = want.Reordered
				}
				if rep.Total != want {
					t.Errorf("totals:\n got %+v\nwant %+v", rep.Total, want)
				}
				var kinds []FindingKind
				for _, f := range rep.Findings {
					kinds = append(kinds, f.Kind)
				}
				if strings.Join(kindStrings(kinds), ",") != strings.Join(kindStrings(tt.findings), ",") {
					t.Errorf("findings %v, want %v: %+v", kinds, tt.findings, rep.Findings)
				}
				if tt.detail != "" && !strings.Contains(rep.Findings[len(rep.Findings)-1].Detail, tt.detail) {
					t.Errorf("last finding %+v, want detail containing %q", rep.Findings[len(rep.Findings)-1], tt.detail)
				}
				lostOnly := tt.want.Lost > 0
				if got, wantFail := len(rep.Problems()) > 0, lostOnly || idem && tt.failIdem; got != wantFail {
					t.Errorf("Problems() = %q, want failing %v", rep.Problems(), wantFail)
				}
				if idem && tt.failIdem && !strings.Contains(strings.Join(rep.Problems(), ";"), "idempotent producers") {
					t.Errorf("Problems() = %q, want one about idempotent producers", rep.Problems())
				}
			})
		}
	}
}

// TestCheckOrderPerProducer: sequences are compared within one run's
// producer only, and a partition's order does not carry to another.
func TestCheckOrderPerProducer(t *testing.T) {
	in := Input{
		Outcomes: []Outcome{
			// Runs r and s each have a producer 0; r's p1 too. Interleaved
			// on partition 0 with lower sequences after higher ones of
			// other producers: in order for each.
			seq(indefinite(0, "r0-5"), "r", 0, 5, true),
			seq(indefinite(0, "s0-1"), "s", 0, 1, true),
			seq(indefinite(0, "r1-2"), "r", 1, 2, true),
			seq(indefinite(0, "r0-7"), "r", 0, 7, true),
			// r's p0 on partition 1 starts lower than on partition 0.
			seq(indefinite(1, "r0-1"), "r", 0, 1, true),
			seq(indefinite(1, "r0-3"), "r", 0, 3, true),
		},
		Partitions: []Partition{
			healthy("r0-5", "s0-1", "r1-2", "r0-7"),
			{ID: 1, Leader: 1, ISR: []int32{1}, Replicas: []Replica{copyOf(1, 0, 2, "r0-1", "r0-3")}},
		},
	}
	rep, err := Check(in)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Reordered != 0 || len(rep.Problems()) > 0 {
		t.Fatalf("reordered %d, problems %q, findings %+v", rep.Total.Reordered, rep.Problems(), rep.Findings)
	}
}
