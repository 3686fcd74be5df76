package topicconfig

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"a", "orders", "Orders.v2_x-y", "...", ".a", strings.Repeat("x", MaxNameLen)} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":                                "a topic name is required",
		".":                               `"." and ".." are reserved`,
		"..":                              `"." and ".." are reserved`,
		"a/b":                             `character '/' at 1; a name is letters, digits, '.', '_' and '-'`,
		"é":                               "character",
		strings.Repeat("x", MaxNameLen+1): "250 characters; at most 249 are allowed",
	} {
		err := ValidateName(name)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateName(%.20q) = %v, want %q", name, err, want)
		}
		// The reserved names are refused without claiming '.' is not allowed.
		if (name == "." || name == "..") && strings.Contains(err.Error(), "[a-zA-Z0-9._-]") {
			t.Errorf("ValidateName(%q) = %v: lists '.' as allowed", name, err)
		}
	}
}
