package acl

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zaptest"
)

func newAuthorizer(tb testing.TB, policy string) *Authorizer {
	tb.Helper()
	a, err := NewAuthorizer(Options{Policy: policy}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatalf("NewAuthorizer: %v", err)
	}
	return a
}

type check struct {
	sub, obj, act string
	want          bool
}

func runMatrix(t *testing.T, a *Authorizer, cases []check) {
	t.Helper()
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%s", c.sub, c.obj, c.act), func(t *testing.T) {
			got, err := a.Allowed(c.sub, c.obj, c.act)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Fatalf("Allowed(%s, %s, %s) = %v, want %v", c.sub, c.obj, c.act, got, c.want)
			}
		})
	}
}

const matrixPolicy = `
# producers write orders and every orders-* topic, but never orders-secret
p, producers, orders, produce, allow
p, producers, orders-*, produce, allow
p, producers, orders-secret, produce, deny
p, auditors, orders*, consume, allow
p, auditors, *, describe, allow
p, readers, payments, consume, allow
p, bob, payments, *, allow
p, bob, payments, delete, deny
g, alice, producers
g, carol, auditors
g, team-a-*, producers
g, seniors, readers
g, dave, seniors
`

func TestACLMatrix(t *testing.T) {
	a := newAuthorizer(t, matrixPolicy)
	runMatrix(t, a, []check{
		// allow through a role
		{"alice", "orders", "produce", true},
		{"alice", "orders-eu", "produce", true},
		// deny overrides allow
		{"alice", "orders-secret", "produce", false},
		{"bob", "payments", "produce", true},
		{"bob", "payments", "delete", false},
		// default deny: other action, other topic, unknown identity
		{"alice", "orders", "consume", false},
		{"alice", "payments", "produce", false},
		{"mallory", "orders", "produce", false},
		// a literal matches only itself: "orders" does not cover orders-x,
		// "orders-*" does not cover ordersx nor orders itself
		{"alice", "ordersx", "produce", false},
		{"alice", "orders.archive", "produce", false},
		{"alice", "xorders", "produce", false},
		{"bob", "payments-archive", "produce", false},
		// "orders*" covers orders, orders-archive and ordersx
		{"carol", "orders", "consume", true},
		{"carol", "orders-archive", "consume", true},
		{"carol", "ordersx", "consume", true},
		{"carol", "order", "consume", false},
		// "*" covers topics but never the cluster object
		{"carol", "anything", "describe", true},
		{"carol", "cluster", "describe", false},
		// identity patterns in bindings
		{"team-a-1", "orders", "produce", true},
		{"team-b-1", "orders", "produce", false},
		{"team-a", "orders", "produce", false},
		// role inheritance two levels deep
		{"dave", "payments", "consume", true},
		{"dave", "payments", "produce", false},
	})
}

func TestDefaultPolicy(t *testing.T) {
	a := newAuthorizer(t, "")
	if text, v := a.Policy(); text != DefaultPolicy || v != 1 {
		t.Fatalf("Policy() = version %d, default=%v", v, text == DefaultPolicy)
	}
	var cases []check
	for _, act := range Actions() {
		cases = append(cases,
			check{"admin", "orders", act, true},
			check{"admin", "cluster", act, true},
			check{"operator", "orders", act, true},
			check{"operator", "cluster", act, true},
			check{"someone", "orders", act, false},
			check{"someone", "cluster", act, false},
		)
		internal := act == ActionReplicate || act == ActionDescribe
		forwarded := act == ActionCreate || act == ActionAlter || act == ActionDelete
		for _, node := range []string{"broker-1", "broker-12", "replicator-3", "broker", "replicator"} {
			cases = append(cases,
				check{node, "orders", act, internal || forwarded},
				check{node, "cluster", act, internal || act == ActionDescribeACL})
		}
		// names close to the node patterns get nothing
		for _, near := range []string{"brokers-1", "xbroker-1", "broker1", "replicator1"} {
			cases = append(cases, check{near, "cluster", act, false})
		}
	}
	runMatrix(t, a, cases)
}

func TestAllowedRefusesPatternsAndEmpty(t *testing.T) {
	a := newAuthorizer(t, "")
	for _, c := range []check{
		{"*", "orders", "produce", false},
		{"broker-*", "cluster", "replicate", false},
		{"admin", "*", "produce", false},
		{"admin", "orders", "*", false},
		{"", "orders", "produce", false},
		{"admin", "", "produce", false},
		{"admin", "orders", "", false},
		{"admin", "orders", "fly", false},
	} {
		ok, err := a.Allowed(c.sub, c.obj, c.act)
		if ok || !errors.Is(err, ErrBadRequest) {
			t.Errorf("Allowed(%q, %q, %q) = %v, %v; want false, ErrBadRequest", c.sub, c.obj, c.act, ok, err)
		}
	}
}

func TestReplaceAtomic(t *testing.T) {
	a := newAuthorizer(t, "p, alice, orders, produce, allow\n")
	bad := "p, alice, orders, produce, allow\np, bob, orders, fly, allow\n"
	err := a.Replace(bad)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Line != 2 || !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Replace(bad) = %v, want a ParseError on line 2", err)
	}
	if text, v := a.Policy(); v != 1 || !strings.Contains(text, "alice") {
		t.Fatalf("policy changed after a refused Replace: v%d %q", v, text)
	}
	if ok, _ := a.Allowed("alice", "orders", "produce"); !ok {
		t.Fatal("old policy no longer enforced")
	}
	if err := a.Replace("p, bob, orders, produce, allow\n"); err != nil {
		t.Fatal(err)
	}
	if _, v := a.Policy(); v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
	runMatrix(t, a, []check{{"alice", "orders", "produce", false}, {"bob", "orders", "produce", true}})

	if err := a.ReplaceAt("p, carol, orders, produce, allow\n", 2); !errors.Is(err, ErrStaleVersion) {
		t.Fatalf("ReplaceAt(stale) = %v", err)
	}
	if err := a.ReplaceAt("p, carol, orders, produce, allow\n", 10); err != nil {
		t.Fatal(err)
	}
	if _, v := a.Policy(); v != 10 {
		t.Fatalf("version %d, want 10", v)
	}
}

// TestConcurrentChecksDuringReplace: 1,000 concurrent checks while the
// policy is replaced over and over. Under -race this proves reloads do not
// race with checks; every answer must be one of the two policies' answers.
func TestConcurrentChecksDuringReplace(t *testing.T) {
	policyA := "p, alice, orders, produce, allow\np, alice, orders, consume, deny\n"
	policyB := "p, alice, orders, consume, allow\np, alice, orders, produce, deny\n"
	a := newAuthorizer(t, policyA)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	replaces := 0
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := policyA
			if i%2 == 0 {
				p = policyB
			}
			if err := a.Replace(p); err != nil {
				t.Error(err)
				return
			}
			replaces++
		}
	}()

	var checks sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		checks.Add(1)
		go func() {
			defer checks.Done()
			for _, act := range []string{ActionProduce, ActionConsume} {
				if _, err := a.Allowed("alice", "orders", act); err != nil {
					errs <- err
					return
				}
			}
			// Both policies deny everyone else, whichever is in force.
			if ok, err := a.Allowed("mallory", "orders", ActionProduce); ok || err != nil {
				errs <- fmt.Errorf("default deny broken: %v, %v", ok, err)
			}
		}()
	}
	checks.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if replaces == 0 {
		t.Fatal("no Replace ran during the checks")
	}
}

// TestGroupObjects: group rules name groups ("group:PATTERN"); a topic
// pattern, even "*", never reaches a group, nor a group pattern a topic.
// The default admin holds every group.
func TestGroupObjects(t *testing.T) {
	a := newAuthorizer(t, DefaultPolicy+`
p, alice, *, consume, allow
p, bob, group:orders-*, consume, allow
p, carol, group:*, describe, allow
`)
	runMatrix(t, a, []check{
		{"alice", "orders", ActionConsume, true},
		{"alice", GroupObject("orders-app"), ActionConsume, false},
		{"bob", GroupObject("orders-app"), ActionConsume, true},
		{"bob", GroupObject("billing"), ActionConsume, false},
		{"bob", "orders-app", ActionConsume, false},
		{"carol", GroupObject("anything"), ActionDescribe, true},
		{"carol", GroupObject("anything"), ActionConsume, false},
		{"operator", GroupObject("anything"), ActionDelete, true},
		{"broker-1", GroupObject("anything"), ActionDescribe, false},
	})
}

// TestCachedDecisionsFollowReplace: a decision cached under one policy is
// not the answer under the next.
func TestCachedDecisionsFollowReplace(t *testing.T) {
	a := newAuthorizer(t, DefaultPolicy)
	for range 2 { // the second answer comes from the cache
		if ok, err := a.Allowed("alice", "orders", ActionProduce); err != nil || ok {
			t.Fatalf("before the grant: %v %v", ok, err)
		}
	}
	if err := a.Replace(DefaultPolicy + "p, alice, orders, produce, allow\n"); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Allowed("alice", "orders", ActionProduce); err != nil || !ok {
		t.Fatalf("after the grant: %v %v", ok, err)
	}
	if err := a.Replace(DefaultPolicy); err != nil {
		t.Fatal(err)
	}
	if ok, _ := a.Allowed("alice", "orders", ActionProduce); ok {
		t.Fatal("after the revoke: still allowed")
	}
}
