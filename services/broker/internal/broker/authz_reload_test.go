package broker

import (
	"fmt"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
)

// TestConcurrentCallsDuringPolicyReloads: 1,000 concurrent calls through
// the real mTLS listener and interceptors while the policy is replaced
// over and over. Both policies let alice produce (one directly, one
// through a role) and neither lets bob, so every answer is known whatever
// policy a call meets; -race proves checks never race with reloads.
func TestConcurrentCallsDuringPolicyReloads(t *testing.T) {
	certs := initCerts(t)
	b := startTLSBroker(t, tlsConfig(t.TempDir(), certs))
	op, alice, bob := dialAs(t, b, certs, "operator"), dialAs(t, b, certs, "alice"), dialAs(t, b, certs, "bob")
	ctx := ctxT(t)
	createTopic(t, op, "orders-1", nil)
	policies := []string{
		acl.DefaultPolicy + "p, alice, orders-*, produce, allow\n",
		acl.DefaultPolicy + "p, writers, orders*, produce, allow\ng, alice, writers\np, bob, orders-1, produce, deny\n",
	}

	stop := make(chan struct{})
	reloads := make(chan int, 1)
	go func() {
		n := 0
		defer func() { reloads <- n }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Authorizer().Replace(policies[i%2]); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%4 == 3 {
				if st, _ := status.FromError(produce(ctx, bob, "orders-1")); st.Code() != codes.PermissionDenied {
					errs <- fmt.Errorf("bob Produce = %v, want PermissionDenied", st)
				}
				return
			}
			if err := produce(ctx, alice, "orders-1"); err != nil {
				errs <- fmt.Errorf("alice Produce: %w", err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := <-reloads; n == 0 {
		t.Fatal("no reload ran during the calls")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
