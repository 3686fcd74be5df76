package acl

import (
	"fmt"
)

// ObjectFunc extracts the object (a topic name) from a request message.
type ObjectFunc func(req any) (string, error)

// MethodRule says how one gRPC method is authorized.
type MethodRule struct {
	// Action is checked against the policy. Ignored when AnyAuthenticated.
	Action string
	// Object extracts the topic from each request message. Nil means the
	// fixed object "cluster", checked once at call (or stream) start.
	Object ObjectFunc
	// AnyAuthenticated lets any caller with a verified certificate in,
	// without a policy check (health checks, reflection).
	AnyAuthenticated bool
}

// MethodTable maps full method names ("/strata.v1.Log/Produce") to their
// rules. A method missing from the table is denied.
type MethodTable map[string]MethodRule

// TopicOf returns an ObjectFunc for request type T, reading the topic with
// get. A request of another type is an error (the table is wrong).
func TopicOf[T any](get func(T) string) ObjectFunc {
	return func(req any) (string, error) {
		m, ok := req.(T)
		if !ok {
			var zero T
			return "", fmt.Errorf("request is %T, want %T", req, zero)
		}
		return get(m), nil
	}
}

// HealthAndReflection returns table entries that let any authenticated
// caller use grpc.health.v1 and server reflection. Merge them into a
// service's table with Merge.
func HealthAndReflection() MethodTable {
	open := MethodRule{AnyAuthenticated: true}
	return MethodTable{
		"/grpc.health.v1.Health/Check":                                   open,
		"/grpc.health.v1.Health/Watch":                                   open,
		"/grpc.health.v1.Health/List":                                    open,
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      open,
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": open,
	}
}

// Merge returns a table holding the entries of all tables; a later table's
// entry replaces an earlier one's.
func Merge(tables ...MethodTable) MethodTable {
	out := MethodTable{}
	for _, t := range tables {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

func (t MethodTable) validate() error {
	for name, r := range t {
		if name == "" || name[0] != '/' {
			return fmt.Errorf("%w: method %q is not a full method name", ErrBadMethodTable, name)
		}
		if !r.AnyAuthenticated && !isAction(r.Action) {
			return fmt.Errorf("%w: method %s: unknown action %q", ErrBadMethodTable, name, r.Action)
		}
	}
	return nil
}
