package acl

// DefaultPolicy is the policy a fresh cluster starts with.
//
//   - role admin: every action on every topic, every consumer group and
//     on cluster;
//   - roles broker and replicator: replicate and describe on every topic
//     and on cluster (the internal Replica RPCs and metadata), and create,
//     alter and delete on every topic: a cluster-mode broker forwards topic
//     administration to its replicator, and a replicator to the
//     controller, under their own identities after the caller's own
//     permission was checked where the call came in; describe_acl on
//     cluster, to watch the policy they enforce. Never produce, consume
//     or admin;
//   - identity operator (InitCluster's first client cert) holds admin;
//   - identities broker-* hold broker and replicator-* hold replicator,
//     bound by pattern so any node count works without editing the policy;
//   - everyone else: nothing (default deny).
//
// The admin service's identity is "admin", which is the admin role itself.
const DefaultPolicy = `# Strata default policy.
p, admin, *, *, allow
p, admin, cluster, *, allow
p, admin, group:*, *, allow
p, broker, *, replicate, allow
p, broker, *, describe, allow
p, broker, cluster, replicate, allow
p, broker, cluster, describe, allow
p, broker, *, create, allow
p, broker, *, alter, allow
p, broker, *, delete, allow
p, broker, cluster, describe_acl, allow
p, replicator, *, replicate, allow
p, replicator, *, describe, allow
p, replicator, cluster, replicate, allow
p, replicator, cluster, describe, allow
p, replicator, *, create, allow
p, replicator, *, alter, allow
p, replicator, *, delete, allow
p, replicator, cluster, describe_acl, allow
g, operator, admin
g, broker-*, broker
g, replicator-*, replicator
`
