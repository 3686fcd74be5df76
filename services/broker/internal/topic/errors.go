package topic

import "errors"

// Names and settings that break the rules are refused with
// topicconfig.ErrInvalidName and topicconfig.ErrInvalid.
var (
	// ErrExists means the topic already exists.
	ErrExists = errors.New("topic: already exists")
	// ErrNotFound means the topic does not exist.
	ErrNotFound = errors.New("topic: not found")
	// ErrPartitionNotFound means the topic has no such partition.
	ErrPartitionNotFound = errors.New("topic: partition not found")
	// ErrClosed means the registry was closed.
	ErrClosed = errors.New("topic: registry closed")
)
