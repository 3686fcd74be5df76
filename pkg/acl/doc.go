// Package acl is Strata's authorization: a Casbin model of identities,
// roles, topic patterns and actions; a strict policy text format; an
// Authorizer whose policy can be replaced atomically while checks run; a
// last-good-policy file cache; gRPC interceptors that authorize every
// call by the caller's verified certificate; and a Watcher that keeps a
// node's policy in step with the admin service (long-poll on a version).
//
// # Model
//
// A request is (subject, object, action). The subject is the caller's
// identity: the subject CN of its verified TLS certificate. The object is a
// topic name or the literal "cluster" (cluster-wide and internal
// operations; no topic may be named "cluster"). Actions are produce,
// consume, describe, create, delete, alter, replicate, admin and
// describe_acl (reading the policy itself); "*" in a rule means every
// action.
//
// Quotas are "q, subject-or-role-or-*, produce|consume, bytes-per-second":
// a broker paces each identity's record bytes to its quota by delaying
// its requests (see Policy.QuotaFor for which line applies). Casbin never
// sees them.
//
// Rules are "p, subject-or-role, object-pattern, action, allow|deny". An
// object pattern matches by glob only where "*" is written: "orders"
// matches only the topic orders; "orders-*" matches orders-archive and
// orders-; "orders*" matches orders, orders-archive and ordersx; "*"
// matches every topic. Patterns never match the object "cluster": a rule
// on cluster must name it.
//
// Bindings are "g, identity-or-pattern, role". The identity side may be a
// glob pattern ("broker-*"): the role manager matches it with the same
// glob function (casbin AddNamedMatchingFunc), so any identity broker-N
// holds the role broker without a line per node. Roles may inherit roles.
// Role names are identities too (Casbin semantics): a certificate whose CN
// is "admin" holds the admin role. The CA must therefore issue role names
// and node names (broker-N, replicator-N) only to the services they
// denote.
//
// Effect: allowed when some matching rule allows and none denies; default
// deny. Subjects, objects and actions containing "*" in a request are
// refused outright: a request is never a pattern.
package acl
