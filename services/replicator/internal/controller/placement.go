package controller

import (
	"fmt"
	"hash/fnv"
	"slices"
)

// Place assigns replicas for a new topic across the live brokers, round
// robin: partition p's preferred leader is brokers[(start+p) % n] and its
// followers are the next rf-1 brokers in id order. start is derived from the
// topic name so that leaders of different topics do not all begin on the
// lowest id. Every broker leads either ⌊P/n⌋ or ⌈P/n⌉ partitions and holds
// either ⌊P·rf/n⌋ or ⌈P·rf/n⌉ replicas.
func Place(topic string, partitions, rf int32, live []int32) ([][]int32, error) {
	brokers := slices.Clone(live)
	slices.Sort(brokers)
	brokers = slices.Compact(brokers)
	n := int32(len(brokers))
	if partitions < 1 || rf < 1 {
		return nil, fmt.Errorf("%w: partitions and replication factor must be >= 1", ErrInvalidRequest)
	}
	if rf > n {
		return nil, fmt.Errorf("%w: replication factor %d exceeds the %d live brokers", ErrNotEnoughBrokers, rf, n)
	}
	h := fnv.New32a()
	h.Write([]byte(topic))
	start := int32(h.Sum32() % uint32(n))
	out := make([][]int32, partitions)
	for p := range partitions {
		replicas := make([]int32, rf)
		for r := range rf {
			replicas[r] = brokers[(start+p+r)%n]
		}
		out[p] = replicas
	}
	return out, nil
}
