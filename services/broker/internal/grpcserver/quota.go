package grpcserver

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
)

// Quotas paces each identity's produce and consume bytes (the ACL
// policy's q lines); *quota.Limiter satisfies it. Reserve takes n bytes
// of kind ("produce" or "consume") and says how long to delay the request.
type Quotas interface {
	Reserve(identity, kind string, n int) time.Duration
}

// errStopping ends a throttled wait when the server begins to stop.
var errStopping = status.Error(codes.Unavailable, "broker shutting down")

// throttle delays the caller until its identity's n bytes of kind are
// within its quota (it never fails a request for being over it). It
// returns early with the caller's context error as a status, or with
// errStopping when the server stops.
func (s *logService) throttle(ctx context.Context, kind string, n int) error {
	if s.quotas == nil {
		return nil
	}
	id, _ := acl.IdentityFromContext(ctx)
	d := s.quotas.Reserve(id, kind, n)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case <-s.shutdown:
		return errStopping
	}
}
