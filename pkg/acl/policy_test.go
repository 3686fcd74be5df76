package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicyGood(t *testing.T) {
	p, err := ParsePolicy(DefaultPolicy + "\r\n  # indented comment\n\tp ,  alice ,orders-* , produce,deny  \r\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 20 || len(p.Bindings) != 3 {
		t.Fatalf("%d rules, %d bindings", len(p.Rules), len(p.Bindings))
	}
	if last := p.Rules[19]; last != (Rule{"alice", "orders-*", "produce", "deny"}) {
		t.Fatalf("last rule %+v", last)
	}
	again, err := ParsePolicy(p.String())
	if err != nil || again.String() != p.String() {
		t.Fatalf("canonical text does not round-trip: %v", err)
	}
}

func TestParsePolicyRejects(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		line       int
		why        string
	}{
		{"unknown action", "p, a, t, fly, allow", 1, "unknown action"},
		{"bad effect", "p, a, t, produce, maybe", 1, "effect"},
		{"empty effect", "p, a, t, produce,", 1, "effect"},
		{"empty subject", "p, , t, produce, allow", 1, "empty subject"},
		{"empty object", "p, a, , produce, allow", 1, "empty object"},
		{"empty role", "g, a,", 1, "empty role"},
		{"too few p fields", "p, a, t, produce", 1, "want 5"},
		{"too many p fields", "p, a, t, produce, allow, extra", 1, "want 5"},
		{"too many g fields", "g, a, b, c", 1, "want 3"},
		{"unknown line type", "x, a, b", 1, "unknown line type"},
		{"bare word", "allow", 1, "unknown line type"},
		{"pattern subject", "p, team-*, t, produce, allow", 1, "may not be a pattern"},
		{"pattern role", "g, alice, admin*", 1, "may not be a pattern"},
		{"self binding", "g, broker*, broker", 1, "binds to itself"},
		{"space inside field", "p, a b, t, produce, allow", 1, "space"},
		{"quoted field", `p, "a", t, produce, allow`, 1, "forbidden character"},
		{"non-ascii", "p, ä, t, produce, allow", 1, "non-printable"},
		{"duplicate", "p, a, t, produce, allow\n\np,a,t,produce,allow", 3, "duplicates line 1"},
		{"error on later line", "# ok\np, a, t, produce, allow\ng, a, b\np, a, t, consume, allowed", 4, "effect"},
		{"long line", "p, a, " + strings.Repeat("t", 2000) + ", produce, allow", 1, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy(tc.text)
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("err = %v, want a ParseError", err)
			}
			if pe.Line != tc.line || !strings.Contains(pe.Reason, tc.why) {
				t.Fatalf("err = %v, want line %d and %q", err, tc.line, tc.why)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range []struct {
		name, pattern string
		want          bool
	}{
		{"orders", "orders", true},
		{"orders-x", "orders", false},
		{"orders", "orders-*", false},
		{"orders-", "orders-*", true},
		{"orders-eu-1", "orders-*", true},
		{"orders", "orders*", true},
		{"a-b-c", "a*c", true},
		{"ac", "a*c", true},
		{"a", "a*a", false},
		{"aXbYc", "a*b*c", true},
		{"aXcYb", "a*b*c", false},
		{"anything", "*", true},
		{"", "*", true},
		{"x.orders", "*.orders", true},
	} {
		if got := globMatch(tc.name, tc.pattern); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tc.name, tc.pattern, got, tc.want)
		}
	}
	if objectMatch(ObjectCluster, "*") || objectMatch(ObjectCluster, "c*") || !objectMatch(ObjectCluster, ObjectCluster) {
		t.Error("patterns must not match the cluster object")
	}
}

func TestPolicyNames(t *testing.T) {
	p, err := ParsePolicy(matrixPolicy)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"bob", true},       // subject of a rule
		{"producers", true}, // role with rules
		{"seniors", true},   // role without rules of its own
		{"alice", true},     // bound identity
		{"team-a-7", true},  // matches a binding pattern
		{"team-a-*", true},  // the pattern itself matches: refused, conservatively
		{"team-b-1", false}, // matches nothing
		{"mallory", false},  // named nowhere
		{"orders", false},   // an object is not an identity
		{"orders-secret", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Names(tc.name); got != tc.want {
				t.Fatalf("Names(%q) = %v, want %v", tc.name, got, tc.want)
			}
		})
	}
}
