package topicconfig

import "errors"

var (
	// ErrInvalid means a setting is out of its allowed range, is unknown,
	// or a change touches a setting fixed at creation. The message names
	// the setting by its key and says the allowed range.
	ErrInvalid = errors.New("topicconfig: invalid topic config")
	// ErrInvalidName means a topic name breaks the naming rules.
	ErrInvalidName = errors.New("topicconfig: invalid topic name")
)
