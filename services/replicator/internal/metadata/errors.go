package metadata

import "errors"

// Errors returned (wrapped, with details) from FSM.Apply for rejected commands.
var (
	ErrInvalidCommand    = errors.New("metadata: invalid command")
	ErrInvalidAssignment = errors.New("metadata: invalid replica assignment")
	ErrBrokerNotFound    = errors.New("metadata: broker not found")
	ErrTopicExists       = errors.New("metadata: topic already exists")
	ErrTopicNotFound     = errors.New("metadata: topic not found")
	ErrPartitionNotFound = errors.New("metadata: partition not found")
	// ErrStaleEpoch rejects an ElectLeader or ChangeISR based on a leader
	// epoch that is no longer current.
	ErrStaleEpoch = errors.New("metadata: stale leader epoch")
	// ErrNotPartitionLeader rejects a ChangeISR from a broker that does not
	// lead the partition.
	ErrNotPartitionLeader = errors.New("metadata: not the partition leader")
	// ErrIneligibleLeader rejects an election of a replica that is not
	// alive, not assigned, or (for a clean election) not in the ISR.
	ErrIneligibleLeader = errors.New("metadata: ineligible leader")
	ErrClusterIDSet     = errors.New("metadata: cluster id already set")
	// ErrProducerIDConflict rejects an AllocateProducerIDs whose block does
	// not start at the next unallocated id.
	ErrProducerIDConflict = errors.New("metadata: producer id block already taken")
)
