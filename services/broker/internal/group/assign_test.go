package group

import (
	"fmt"
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// checkComplete fails unless every partition of every subscribed topic is
// assigned to exactly one member that subscribes to it.
func checkComplete(t *testing.T, in AssignInput, out map[string]Set) {
	t.Helper()
	owner := map[TP]string{}
	for m, s := range out {
		for tp := range s {
			if prev, dup := owner[tp]; dup {
				t.Fatalf("%v assigned to %s and %s", tp, prev, m)
			}
			if !subscribes(in, m, tp.Topic) {
				t.Fatalf("%v assigned to %s, which does not subscribe to it", tp, m)
			}
			owner[tp] = m
		}
	}
	for _, topic := range topicsOf(in) {
		for p := range in.Partitions[topic] {
			if _, ok := owner[TP{topic, p}]; !ok {
				t.Fatalf("%s/%d unassigned: %v", topic, p, out)
			}
		}
	}
}

func spread(out map[string]Set) (lo, hi int) {
	lo = 1 << 30
	for _, s := range out {
		lo, hi = min(lo, len(s)), max(hi, len(s))
	}
	return lo, hi
}

func TestAssignorsCompleteAndBalanced(t *testing.T) {
	for _, a := range []stratav1.Assignor{stratav1.Assignor_ASSIGNOR_RANGE, stratav1.Assignor_ASSIGNOR_ROUND_ROBIN, stratav1.Assignor_ASSIGNOR_COOPERATIVE_STICKY} {
		for members := 1; members <= 7; members++ {
			for parts := int32(0); parts <= 12; parts++ {
				in := AssignInput{Topics: map[string][]string{}, Partitions: map[string]int32{"a": parts, "b": 3}}
				for i := range members {
					m := fmt.Sprintf("m%d", i)
					in.Members = append(in.Members, m)
					in.Topics[m] = []string{"a", "b"}
				}
				out := Assign(a, in)
				checkComplete(t, in, out)
				if a != stratav1.Assignor_ASSIGNOR_RANGE { // range balances per topic, not overall
					if lo, hi := spread(out); hi-lo > 1 {
						t.Fatalf("%v, %d members, %d+3 partitions: counts %d..%d", a, members, parts, lo, hi)
					}
				}
			}
		}
	}
}

func TestRangeAndRoundRobinLayouts(t *testing.T) {
	in := AssignInput{Members: []string{"m1", "m2"}, Topics: map[string][]string{"m1": {"t"}, "m2": {"t"}}, Partitions: map[string]int32{"t": 5}}
	r := Assign(stratav1.Assignor_ASSIGNOR_RANGE, in)
	if want := (Set{{"t", 0}: {}, {"t", 1}: {}, {"t", 2}: {}}); !r["m1"].Equal(want) {
		t.Fatalf("range m1 = %v", r["m1"].Sorted())
	}
	rr := Assign(stratav1.Assignor_ASSIGNOR_ROUND_ROBIN, in)
	if want := (Set{{"t", 0}: {}, {"t", 2}: {}, {"t", 4}: {}}); !rr["m1"].Equal(want) {
		t.Fatalf("round robin m1 = %v", rr["m1"].Sorted())
	}
}

// TestStickyMovesLittle: a member joining takes only its share from the
// others; a member leaving gives only its partitions away; nobody else's
// partitions move.
func TestStickyMovesLittle(t *testing.T) {
	in := AssignInput{Topics: map[string][]string{}, Partitions: map[string]int32{"t": 12}}
	for _, m := range []string{"m1", "m2", "m3"} {
		in.Members = append(in.Members, m)
		in.Topics[m] = []string{"t"}
	}
	first := Assign(stratav1.Assignor_ASSIGNOR_COOPERATIVE_STICKY, in)
	checkComplete(t, in, first)

	in.Members = append(in.Members, "m4")
	in.Topics["m4"] = []string{"t"}
	in.Current = first
	second := Assign(stratav1.Assignor_ASSIGNOR_COOPERATIVE_STICKY, in)
	checkComplete(t, in, second)
	moved := 0
	for _, m := range []string{"m1", "m2", "m3"} {
		for tp := range first[m] {
			if _, kept := second[m][tp]; !kept {
				moved++
			}
		}
	}
	if moved != 3 || len(second["m4"]) != 3 {
		t.Fatalf("joining a 4th member moved %d partitions (m4 got %d), want 3", moved, len(second["m4"]))
	}

	in.Members = []string{"m1", "m3", "m4"}
	in.Current = second
	delete(in.Current, "m2")
	third := Assign(stratav1.Assignor_ASSIGNOR_COOPERATIVE_STICKY, in)
	checkComplete(t, in, third)
	for _, m := range in.Members {
		for tp := range second[m] {
			if _, kept := third[m][tp]; !kept {
				t.Fatalf("%s lost %v when m2 left", m, tp)
			}
		}
	}
}

// TestStickyRespectsSubscriptions: members subscribing to different
// topics get only what they subscribe to, and balance within that.
func TestStickyRespectsSubscriptions(t *testing.T) {
	in := AssignInput{
		Members:    []string{"a", "b", "c"},
		Topics:     map[string][]string{"a": {"x"}, "b": {"x", "y"}, "c": {"y"}},
		Partitions: map[string]int32{"x": 4, "y": 4, "z": 9},
	}
	out := Assign(stratav1.Assignor_ASSIGNOR_COOPERATIVE_STICKY, in)
	checkComplete(t, in, out)
	if lo, hi := spread(out); hi-lo > 1 {
		t.Fatalf("counts %d..%d: %v", lo, hi, out)
	}
}
