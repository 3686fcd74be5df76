package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseQuotas(t *testing.T) {
	p, err := ParsePolicy("q, alice, produce, 1048576\nq , * , consume , 10\ng, team-*, analysts\nq, analysts, consume, 500\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Quota{{"alice", QuotaProduce, 1 << 20}, {"*", QuotaConsume, 10}, {"analysts", QuotaConsume, 500}}
	if len(p.Quotas) != len(want) {
		t.Fatalf("quotas %+v, want %+v", p.Quotas, want)
	}
	for i := range want {
		if p.Quotas[i] != want[i] {
			t.Fatalf("quota %d = %+v, want %+v", i, p.Quotas[i], want[i])
		}
	}
	again, err := ParsePolicy(p.String())
	if err != nil || again.String() != p.String() {
		t.Fatalf("canonical text does not round-trip: %v\n%s", err, p.String())
	}
	for _, tc := range []struct{ name, text, why string }{
		{"unknown kind", "q, alice, fetch, 10", "want produce or consume"},
		{"zero rate", "q, alice, produce, 0", "rate"},
		{"negative rate", "q, alice, produce, -5", "rate"},
		{"fraction", "q, alice, produce, 1.5", "rate"},
		{"huge rate", "q, alice, produce, 2199023255553", "rate"},
		{"too few fields", "q, alice, produce", "want 4"},
		{"pattern subject", "q, team-*, produce, 10", "may not be a pattern"},
		{"two rates for one subject", "q, alice, produce, 10\nq, alice, produce, 20", "a second produce quota for alice (line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePolicy(tc.text)
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(pe.Reason, tc.why) {
				t.Fatalf("err = %v, want a ParseError with %q", err, tc.why)
			}
		})
	}
}

// TestQuotaFor: the identity's own line beats its roles', the most
// generous role wins, roles are followed transitively and through
// patterns, and "*" applies only when nothing more specific does.
func TestQuotaFor(t *testing.T) {
	p, err := ParsePolicy(`
g, team-*, analysts
g, analysts, readers
g, bob, writers
g, bob, bulk
q, *, produce, 100
q, *, consume, 50
q, alice, produce, 7
q, readers, consume, 300
q, analysts, consume, 200
q, writers, produce, 1000
q, bulk, produce, 5000
`)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, kind string
		want     int64
		ok       bool
	}{
		{"alice", QuotaProduce, 7, true},
		{"alice", QuotaConsume, 50, true},
		{"team-blue", QuotaConsume, 300, true}, // analysts 200, readers (through analysts) 300
		{"team-blue", QuotaProduce, 100, true},
		{"bob", QuotaProduce, 5000, true},
		{"carol", QuotaProduce, 100, true},
	} {
		got, ok := p.QuotaFor(tc.id, tc.kind)
		if got != tc.want || ok != tc.ok {
			t.Errorf("QuotaFor(%s, %s) = %d, %v; want %d, %v", tc.id, tc.kind, got, ok, tc.want, tc.ok)
		}
	}
	none, err := ParsePolicy("q, alice, produce, 7")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := none.QuotaFor("bob", QuotaProduce); ok {
		t.Errorf("QuotaFor(bob) = %d, true without a line for bob or *", got)
	}
}

func TestAuthorizerQuotaFollowsReplace(t *testing.T) {
	a, err := NewAuthorizer(Options{Policy: DefaultPolicy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Quota("alice", QuotaProduce); ok {
		t.Fatal("the default policy limits alice")
	}
	if err := a.Replace(DefaultPolicy + "q, alice, produce, 4096\n"); err != nil {
		t.Fatal(err)
	}
	if got, ok := a.Quota("alice", QuotaProduce); !ok || got != 4096 {
		t.Fatalf("Quota(alice) = %d, %v after Replace; want 4096", got, ok)
	}
}
