package metadata

import (
	"errors"
	"testing"
)

// TestAllocateProducerIDs: blocks follow each other from id 1, a block
// proposed from a stale read is refused (ErrProducerIDConflict) and leaves
// the state alone, and the next id survives Clone (snapshots).
func TestAllocateProducerIDs(t *testing.T) {
	s := newState()
	alloc := func(first int64) error {
		return s.apply(Command{Type: CmdAllocateProducerIDs, AllocateProducerIDs: &AllocateProducerIDs{BrokerID: 1, First: first, Count: 1000}})
	}
	if err := alloc(s.NextProducerIDOrFirst()); err != nil || s.NextProducerID != 1001 {
		t.Fatalf("first block: %v, next %d; want next 1001", err, s.NextProducerID)
	}
	if err := alloc(1); !errors.Is(err, ErrProducerIDConflict) || s.NextProducerID != 1001 {
		t.Fatalf("stale block: %v, next %d; want ErrProducerIDConflict and next 1001", err, s.NextProducerID)
	}
	if err := alloc(1001); err != nil || s.Clone().NextProducerID != 2001 {
		t.Fatalf("second block: %v, clone's next %d; want 2001", err, s.Clone().NextProducerID)
	}
	if err := s.apply(Command{Type: CmdAllocateProducerIDs, AllocateProducerIDs: &AllocateProducerIDs{BrokerID: 1, First: 2001}}); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("empty block: %v, want ErrInvalidCommand", err)
	}
}
