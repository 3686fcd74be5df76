package acl

import (
	"errors"
	"testing"
)

// FuzzParsePolicy: any input either parses into a policy whose canonical
// text parses to the same policy and builds an enforcer, or fails with a
// *ParseError. It never panics.
func FuzzParsePolicy(f *testing.F) {
	f.Add(DefaultPolicy)
	f.Add(matrixPolicy)
	f.Add("p, a, t, produce, allow\np, a, t, produce, allow\n")
	f.Add("g, broker-*, broker\n")
	f.Add("p,,,,\n")
	f.Fuzz(func(t *testing.T, text string) {
		p, err := ParsePolicy(text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error %v is not a ParseError with a line", err)
			}
			return
		}
		canon := p.String()
		again, err := ParsePolicy(canon)
		if err != nil {
			t.Fatalf("canonical text %q does not parse: %v", canon, err)
		}
		if again.String() != canon {
			t.Fatalf("canonical text unstable: %q vs %q", again.String(), canon)
		}
		if _, err := newEnforcer(p); err != nil {
			t.Fatalf("valid policy does not build an enforcer: %v", err)
		}
	})
}
