package client

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// denyingBroker answers Metadata as a broker whose ACL denies the caller
// (pkg/acl's status: PermissionDenied with an ErrorInfo).
type denyingBroker struct {
	stratav1.UnimplementedMetadataServer
}

func (denyingBroker) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	st, err := status.New(codes.PermissionDenied, `permission denied: identity "alice" may not describe on "cluster"`).
		WithDetails(&errdetails.ErrorInfo{Reason: aclReasonDenied, Domain: aclErrorDomain,
			Metadata: map[string]string{"identity": "alice", "action": "describe", "object": "cluster"}})
	if err != nil {
		return nil, err
	}
	return nil, st.Err()
}

// silentListener accepts connections and never answers on them: a
// broker that is paused or cut off.
func silentListener(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	tb.Cleanup(func() {
		if err := l.Close(); err != nil {
			tb.Error(err)
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			if err := c.Close(); err != nil {
				tb.Error(err)
			}
		}
	})
	return l.Addr().String()
}

// TestPermissionDeniedIsNotUnreachable: a broker that refuses the caller
// answered; New reports that refusal at once, with the identity, action
// and object, instead of waiting for the other bootstrap brokers and
// calling it "no broker reachable".
func TestPermissionDeniedIsNotUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	stratav1.RegisterMetadataServer(srv, denyingBroker{})
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := srv.Serve(l); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(func() { srv.Stop(); wg.Wait() })

	const dialTimeout = 5 * time.Second
	start := time.Now()
	cl, err := New(testCtx(t), Config{Brokers: []string{silentListener(t), l.Addr().String()}, Insecure: true, DialTimeout: dialTimeout})
	took := time.Since(start)
	if err == nil {
		t.Fatal(errors.Join(errors.New("New succeeded against a denying broker"), cl.Close()))
	}
	var pe *PermissionError
	if !errors.As(err, &pe) {
		t.Fatalf("New = %v, want a *PermissionError", err)
	}
	if pe.Identity != "alice" || pe.Action != "describe" || pe.Object != "cluster" {
		t.Fatalf("PermissionError %+v, want alice, describe, cluster", pe)
	}
	if errors.Is(err, ErrNoBrokers) {
		t.Fatalf("New = %v: a refusal is not ErrNoBrokers", err)
	}
	if Code(err) != codes.PermissionDenied || IsRetriable(err) {
		t.Fatalf("Code = %s, IsRetriable = %v; want PermissionDenied, not retriable", Code(err), IsRetriable(err))
	}
	if took >= dialTimeout/2 {
		t.Fatalf("New took %s: it waited on the silent broker", took)
	}
}

// TestProducerFaultSentinels: each ProducerFault reason of a refused batch
// matches its own sentinel and no other.
func TestProducerFaultSentinels(t *testing.T) {
	for reason, want := range map[stratav1.ProducerFault_Reason]error{
		stratav1.ProducerFault_REASON_OUT_OF_ORDER_SEQUENCE: ErrOutOfOrderSequence,
		stratav1.ProducerFault_REASON_PRODUCER_FENCED:       ErrProducerFenced,
		stratav1.ProducerFault_REASON_UNKNOWN_PRODUCER_ID:   ErrUnknownProducerID,
	} {
		st, err := status.New(codes.FailedPrecondition, "refused").WithDetails(&stratav1.ProducerFault{Reason: reason, ProducerId: 7})
		if err != nil {
			t.Fatal(err)
		}
		got := fromStatus(st.Err())
		for _, s := range []error{ErrOutOfOrderSequence, ErrProducerFenced, ErrUnknownProducerID} {
			if errors.Is(got, s) != (s == want) {
				t.Errorf("%v: errors.Is(%v, %v) = %v", reason, got, s, errors.Is(got, s))
			}
		}
	}
}
