package controller

import (
	"errors"
	"slices"
	"testing"
)

func TestPlaceSpreadsEvenly(t *testing.T) {
	tests := []struct {
		name          string
		partitions    int32
		rf            int32
		live          []int32
		minLead, maxL int
	}{
		{"6x3 on 3", 6, 3, []int32{1, 2, 3}, 2, 2},
		{"7x2 on 3", 7, 2, []int32{3, 1, 2}, 2, 3},
		{"10x3 on 5", 10, 3, []int32{1, 2, 3, 4, 5}, 2, 2},
		{"1x1 on 4", 1, 1, []int32{1, 2, 3, 4}, 0, 1},
		{"5x1 on 2 sparse ids", 5, 1, []int32{7, 42}, 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Place("topic-"+tc.name, tc.partitions, tc.rf, tc.live)
			if err != nil {
				t.Fatal(err)
			}
			if len(a) != int(tc.partitions) {
				t.Fatalf("%d assignments", len(a))
			}
			leads, holds := map[int32]int{}, map[int32]int{}
			for _, r := range a {
				if len(r) != int(tc.rf) {
					t.Fatalf("replicas %v", r)
				}
				for i, id := range r {
					if !slices.Contains(tc.live, id) || slices.Contains(r[:i], id) {
						t.Fatalf("bad replica set %v", r)
					}
					holds[id]++
				}
				leads[r[0]]++
			}
			n := len(tc.live)
			total := int(tc.partitions * tc.rf)
			for _, id := range tc.live {
				if leads[id] < tc.minLead || leads[id] > tc.maxL {
					t.Fatalf("broker %d leads %d (all: %v)", id, leads[id], leads)
				}
				if holds[id] < total/n || holds[id] > (total+n-1)/n {
					t.Fatalf("broker %d holds %d replicas (all: %v)", id, holds[id], holds)
				}
			}
		})
	}
}

func TestPlaceRefusesReplicationAboveLiveBrokers(t *testing.T) {
	if _, err := Place("t", 3, 3, []int32{1, 2}); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("got %v, want ErrNotEnoughBrokers", err)
	}
	if _, err := Place("t", 1, 1, nil); !errors.Is(err, ErrNotEnoughBrokers) {
		t.Fatalf("no brokers: got %v", err)
	}
	if _, err := Place("t", 0, 1, []int32{1}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("0 partitions: got %v", err)
	}
}

func TestPlaceStartsTopicsOnDifferentBrokers(t *testing.T) {
	starts := map[int32]bool{}
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		a, err := Place(name, 1, 1, []int32{1, 2, 3})
		if err != nil {
			t.Fatal(err)
		}
		starts[a[0][0]] = true
	}
	if len(starts) < 2 {
		t.Fatalf("every single-partition topic led by the same broker: %v", starts)
	}
}
