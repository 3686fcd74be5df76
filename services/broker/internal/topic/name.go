package topic

import (
	"errors"
	"fmt"
)

// MaxNameLen is Kafka's topic name limit.
const MaxNameLen = 249

// ValidateName applies Kafka's rules: 1 to 249 characters of [a-zA-Z0-9._-],
// and not "." or "..".
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d characters, at most %d allowed", ErrInvalidName, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is reserved", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w: character %q at %d; allowed are [a-zA-Z0-9._-]", ErrInvalidName, c, i)
		}
	}
	return nil
}

var (
	// ErrInvalidName means a topic name breaks the naming rules.
	ErrInvalidName = errors.New("topic: invalid name")
	// ErrInvalidConfig means a topic config is out of range or changes a fixed setting.
	ErrInvalidConfig = errors.New("topic: invalid config")
	// ErrExists means the topic already exists.
	ErrExists = errors.New("topic: already exists")
	// ErrNotFound means the topic does not exist.
	ErrNotFound = errors.New("topic: not found")
	// ErrPartitionNotFound means the topic has no such partition.
	ErrPartitionNotFound = errors.New("topic: partition not found")
	// ErrClosed means the registry was closed.
	ErrClosed = errors.New("topic: registry closed")
)
