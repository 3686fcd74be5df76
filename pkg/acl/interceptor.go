package acl

import (
	"context"
	"fmt"

	"github.com/strata-log/strata/pkg/pki"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Interceptor authorizes gRPC calls. Chain its Unary and Stream first (or
// right after tracing), so no handler runs for an unauthorized call.
//
// For every call:
//   - the identity is the subject CN of the verified TLS peer certificate
//     (pki.IdentityFromPeer); request metadata is never read. No verified
//     certificate → codes.Unauthenticated;
//   - the method's rule comes from the table; a method not in it →
//     codes.PermissionDenied (default deny);
//   - a rule with AnyAuthenticated passes any identity;
//   - a rule without Object is checked at call start against "cluster";
//   - a rule with Object: a unary call is checked on its request; a stream
//     is checked on every message the handler receives (a bidirectional
//     ProduceStream may switch topics between batches), with the last
//     allowed topic and policy version remembered so that a steady stream
//     costs one check per topic, and a policy change applies mid-stream;
//   - denied → codes.PermissionDenied naming identity, action and object,
//     in the message and in an errdetails.ErrorInfo (Reason ReasonDenied,
//     Domain ErrorDomain, Metadata "identity", "action", "object") that
//     clients read to say which grant is missing.
//
// The identity is stored in the handler's context (IdentityFromContext).
type Interceptor struct {
	authz *Authorizer
	table MethodTable
	lg    *zap.Logger
}

// NewInterceptor checks the table and builds an Interceptor.
func NewInterceptor(authz *Authorizer, table MethodTable, lg *zap.Logger) (*Interceptor, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if authz == nil {
		return nil, fmt.Errorf("%w: nil authorizer", ErrBadMethodTable)
	}
	if err := table.validate(); err != nil {
		return nil, err
	}
	return &Interceptor{authz: authz, table: Merge(table), lg: lg}, nil
}

// Unary returns the unary server interceptor.
func (i *Interceptor) Unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		id, rule, err := i.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		if !rule.AnyAuthenticated {
			obj := ObjectCluster
			if rule.Object != nil {
				if obj, err = i.object(rule, req, info.FullMethod); err != nil {
					return nil, err
				}
			}
			if err := i.check(id, obj, rule.Action, info.FullMethod); err != nil {
				return nil, err
			}
		}
		return handler(ContextWithIdentity(ctx, id), req)
	}
}

// Stream returns the stream server interceptor.
func (i *Interceptor) Stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		id, rule, err := i.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if !rule.AnyAuthenticated && rule.Object == nil {
			if err := i.check(id, ObjectCluster, rule.Action, info.FullMethod); err != nil {
				return err
			}
		}
		return handler(srv, &authorizedStream{
			ServerStream: ss,
			ctx:          ContextWithIdentity(ss.Context(), id),
			i:            i,
			id:           id,
			rule:         rule,
			method:       info.FullMethod,
		})
	}
}

// authenticate finds the verified identity and the method's rule.
func (i *Interceptor) authenticate(ctx context.Context, method string) (string, MethodRule, error) {
	id, err := pki.IdentityFromPeer(ctx)
	if err != nil {
		i.lg.Info("unauthenticated call refused", zap.String("method", method), zap.Error(err))
		return "", MethodRule{}, status.Error(codes.Unauthenticated, "a verified client certificate is required")
	}
	rule, ok := i.table[method]
	if !ok {
		i.lg.Warn("call to a method missing from the ACL table refused",
			zap.String("subject", id), zap.String("method", method))
		return "", MethodRule{}, status.Errorf(codes.PermissionDenied, "%s may not call %s", id, method)
	}
	return id, rule, nil
}

func (i *Interceptor) object(rule MethodRule, req any, method string) (string, error) {
	obj, err := rule.Object(req)
	if err != nil {
		i.lg.Error("ACL table cannot read the object of a request", zap.String("method", method), zap.Error(err))
		return "", status.Errorf(codes.Internal, "cannot authorize %s", method)
	}
	if obj == "" {
		// The client named no topic: say so, not which RPC it called.
		return "", status.Error(codes.InvalidArgument, "a topic name is required")
	}
	return obj, nil
}

// The ErrorInfo of a denial. pkg/client reads them by these values (it
// does not import this package): change both together.
const (
	// ErrorDomain is the ErrorInfo domain of this package's errors.
	ErrorDomain = "acl.strata"
	// ReasonDenied is the ErrorInfo reason of a call the policy denies.
	ReasonDenied = "ACL_DENIED"
)

func (i *Interceptor) check(id, obj, act, method string) error {
	ok, err := i.authz.Allowed(id, obj, act)
	if err != nil || !ok {
		i.lg.Info("call denied", zap.String("subject", id), zap.String("action", act),
			zap.String("object", obj), zap.String("method", method), zap.Error(err))
		return deniedError(id, act, obj)
	}
	return nil
}

// deniedError is the PermissionDenied status of a denial, with the
// identity, action and object in an ErrorInfo detail.
func deniedError(id, act, obj string) error {
	st := status.Newf(codes.PermissionDenied, "permission denied: identity %q may not %s on %q", id, act, obj)
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   ReasonDenied,
		Domain:   ErrorDomain,
		Metadata: map[string]string{"identity": id, "action": act, "object": obj},
	})
	if err != nil { // cannot happen: ErrorInfo always marshals
		return st.Err()
	}
	return withInfo.Err()
}

// authorizedStream carries the identity in its context and authorizes
// every received message when the rule has an Object.
type authorizedStream struct {
	grpc.ServerStream
	ctx    context.Context
	i      *Interceptor
	id     string
	rule   MethodRule
	method string

	// allowedObj and allowedVersion remember the last check that passed.
	// A stream's RecvMsg is not called concurrently (grpc-go contract).
	allowedObj     string
	allowedVersion uint64
}

func (s *authorizedStream) Context() context.Context { return s.ctx }

func (s *authorizedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.rule.AnyAuthenticated || s.rule.Object == nil {
		return nil
	}
	obj, err := s.i.object(s.rule, m, s.method)
	if err != nil {
		return err
	}
	_, version := s.i.authz.Policy()
	if obj == s.allowedObj && version == s.allowedVersion {
		return nil
	}
	if err := s.i.check(s.id, obj, s.rule.Action, s.method); err != nil {
		return err
	}
	s.allowedObj, s.allowedVersion = obj, version
	return nil
}
