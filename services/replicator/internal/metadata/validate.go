package metadata

import (
	"fmt"
	"slices"
)

// validateReplicaSet checks that ids are distinct registered brokers.
func (s *State) validateReplicaSet(ids []int32) error {
	for i, id := range ids {
		if _, ok := s.Brokers[id]; !ok {
			return fmt.Errorf("%w: broker %d", ErrBrokerNotFound, id)
		}
		if slices.Contains(ids[:i], id) {
			return fmt.Errorf("%w: broker %d listed twice", ErrInvalidAssignment, id)
		}
	}
	return nil
}

// subsetOf reports whether every id of a is in b.
func subsetOf(a, b []int32) bool {
	for _, id := range a {
		if !slices.Contains(b, id) {
			return false
		}
	}
	return true
}

func hasDuplicates(ids []int32) bool {
	for i, id := range ids {
		if slices.Contains(ids[:i], id) {
			return true
		}
	}
	return false
}
