package acl

// DefaultPolicy is the policy a fresh cluster starts with.
//
//   - role admin: every action on every topic and on cluster;
//   - roles broker and replicator: replicate and describe on every topic
//     and on cluster (the internal Replica RPCs and metadata);
//   - identity operator (InitCluster's first client cert) holds admin;
//   - identities broker-* hold broker and replicator-* hold replicator,
//     bound by pattern so any node count works without editing the policy;
//   - everyone else: nothing (default deny).
//
// The admin service's identity is "admin", which is the admin role itself.
const DefaultPolicy = `# Strata default policy.
p, admin, *, *, allow
p, admin, cluster, *, allow
p, broker, *, replicate, allow
p, broker, *, describe, allow
p, broker, cluster, replicate, allow
p, broker, cluster, describe, allow
p, replicator, *, replicate, allow
p, replicator, *, describe, allow
p, replicator, cluster, replicate, allow
p, replicator, cluster, describe, allow
g, operator, admin
g, broker-*, broker
g, replicator-*, replicator
`
