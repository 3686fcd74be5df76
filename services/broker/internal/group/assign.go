package group

import (
	"cmp"
	"slices"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TP is one partition of one topic.
type TP struct {
	Topic     string
	Partition int32
}

func compareTP(a, b TP) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// Set is a set of partitions.
type Set map[TP]struct{}

// Sorted is the set's partitions in topic, partition order.
func (s Set) Sorted() []TP {
	out := make([]TP, 0, len(s))
	for tp := range s {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

// Equal reports whether s and o hold the same partitions.
func (s Set) Equal(o Set) bool {
	if len(s) != len(o) {
		return false
	}
	for tp := range s {
		if _, ok := o[tp]; !ok {
			return false
		}
	}
	return true
}

func (s Set) clone() Set {
	out := make(Set, len(s))
	for tp := range s {
		out[tp] = struct{}{}
	}
	return out
}

// AssignInput is what an assignor decides from: the members (in a stable
// order: by instance id for static members, else member id), what each
// subscribes to, the partition count of every subscribed topic, and what
// each member holds now (for stickiness).
type AssignInput struct {
	Members    []string
	Topics     map[string][]string // member -> subscribed topics
	Partitions map[string]int32    // topic -> partition count
	Current    map[string]Set      // member -> partitions held now
}

// Assign computes the target assignment with assignor a. Every partition
// of a subscribed topic goes to exactly one member subscribing to it.
func Assign(a stratav1.Assignor, in AssignInput) map[string]Set {
	switch a {
	case stratav1.Assignor_ASSIGNOR_RANGE:
		return assignRange(in)
	case stratav1.Assignor_ASSIGNOR_ROUND_ROBIN:
		return assignRoundRobin(in)
	default:
		return assignSticky(in)
	}
}

func subscribes(in AssignInput, member, topic string) bool {
	return slices.Contains(in.Topics[member], topic)
}

// topicsOf is every subscribed topic that exists, sorted.
func topicsOf(in AssignInput) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range in.Members {
		for _, t := range in.Topics[m] {
			if _, ok := in.Partitions[t]; ok && !seen[t] {
				seen[t] = true
				out = append(out, t)
			}
		}
	}
	slices.Sort(out)
	return out
}

func emptyTarget(in AssignInput) map[string]Set {
	out := make(map[string]Set, len(in.Members))
	for _, m := range in.Members {
		out[m] = Set{}
	}
	return out
}

// assignRange gives each member a contiguous range of each topic it
// subscribes to, the first members one more when it does not divide.
func assignRange(in AssignInput) map[string]Set {
	out := emptyTarget(in)
	for _, t := range topicsOf(in) {
		var ms []string
		for _, m := range in.Members {
			if subscribes(in, m, t) {
				ms = append(ms, m)
			}
		}
		n := in.Partitions[t]
		per, extra := n/int32(len(ms)), n%int32(len(ms))
		p := int32(0)
		for i, m := range ms {
			k := per
			if int32(i) < extra {
				k++
			}
			for range k {
				out[m][TP{t, p}] = struct{}{}
				p++
			}
		}
	}
	return out
}

// assignRoundRobin deals every partition in turn to the next member that
// subscribes to its topic.
func assignRoundRobin(in AssignInput) map[string]Set {
	out := emptyTarget(in)
	next := 0
	for _, t := range topicsOf(in) {
		for p := range in.Partitions[t] {
			for range in.Members {
				m := in.Members[next%len(in.Members)]
				next++
				if subscribes(in, m, t) {
					out[m][TP{t, p}] = struct{}{}
					break
				}
			}
		}
	}
	return out
}

// assignSticky balances partition counts across members while keeping
// every member's current partitions where it can: a member keeps what it
// holds up to its fair share, free partitions go to the least loaded
// member subscribing to them, and partitions then move one at a time from
// the most to the least loaded member only while their counts differ by
// more than one.
func assignSticky(in AssignInput) map[string]Set {
	out := emptyTarget(in)
	var all []TP
	for _, t := range topicsOf(in) {
		for p := range in.Partitions[t] {
			all = append(all, TP{t, p})
		}
	}
	if len(in.Members) == 0 {
		return out
	}
	share := (len(all) + len(in.Members) - 1) / len(in.Members)
	taken := Set{}
	// Keep current holdings up to the fair share, in a stable order.
	for _, m := range in.Members {
		for _, tp := range in.Current[m].Sorted() {
			if _, dup := taken[tp]; dup || len(out[m]) >= share || !subscribes(in, m, tp.Topic) || tp.Partition >= in.Partitions[tp.Topic] {
				continue
			}
			out[m][tp] = struct{}{}
			taken[tp] = struct{}{}
		}
	}
	leastLoaded := func(tp TP, except string) string {
		best := ""
		for _, m := range in.Members {
			if m == except || !subscribes(in, m, tp.Topic) {
				continue
			}
			if best == "" || len(out[m]) < len(out[best]) {
				best = m
			}
		}
		return best
	}
	for _, tp := range all {
		if _, ok := taken[tp]; ok {
			continue
		}
		if m := leastLoaded(tp, ""); m != "" {
			out[m][tp] = struct{}{}
			taken[tp] = struct{}{}
		}
	}
	// Even out what subscriptions allow; each move narrows the gap, so
	// the loop ends.
	for moved := true; moved; {
		moved = false
		for _, from := range in.Members {
			for _, tp := range out[from].Sorted() {
				to := leastLoaded(tp, from)
				if to != "" && len(out[from])-len(out[to]) > 1 {
					delete(out[from], tp)
					out[to][tp] = struct{}{}
					moved = true
				}
			}
		}
	}
	return out
}
