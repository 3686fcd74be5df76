package acl

import "context"

type identityKey struct{}

// ContextWithIdentity returns ctx carrying identity. The interceptors set
// it after authenticating; tests and in-process callers may use it.
func ContextWithIdentity(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity)
}

// IdentityFromContext returns the verified caller identity stored by the
// interceptors.
func IdentityFromContext(ctx context.Context) (string, bool) {
	id, ok := ctx.Value(identityKey{}).(string)
	return id, ok && id != ""
}
