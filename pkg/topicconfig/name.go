package topicconfig

import "fmt"

// MaxNameLen is the longest topic name (Kafka's limit).
const MaxNameLen = 249

// ValidateName applies Kafka's topic name rules: 1 to 249 letters, digits,
// '.', '_' and '-', and neither "." nor "..".
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: a topic name is required", ErrInvalidName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: %d characters; at most %d are allowed", ErrInvalidName, len(name), MaxNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("%w %q: \".\" and \"..\" are reserved", ErrInvalidName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("%w %q: character %q at %d; a name is letters, digits, '.', '_' and '-'", ErrInvalidName, name, c, i)
		}
	}
	return nil
}
