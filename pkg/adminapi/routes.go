package adminapi

import (
	"net/url"
	"time"
)

// Routes. Every one is served over mutual TLS and checked against the ACL
// policy (see strata-admin's httpapi.New for what each needs).
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	// PathCA is the cluster CA certificate (PEM).
	PathCA = "/v1/ca.pem"
	// PathPolicy is the whole policy (GET, PUT: Policy) and its watch.
	PathPolicy = "/v1/acl/policy"
	// PathRules edits the policy a line at a time (GET, POST, DELETE: Rules).
	PathRules = "/v1/acl/rules"
	// PathCerts lists issued certificates (GET: CertList) and issues one
	// with a key made by admin (POST: CertRequest, CertBundle).
	PathCerts = "/v1/certs"
	// PathCertsCSR signs a CSR (POST: CSRRequest, CertBundle).
	PathCertsCSR = "/v1/certs/csr"
	// PathTopics lists (GET) and creates (POST) topics; TopicPath names one.
	PathTopics = "/v1/topics"
	// PathGroups lists consumer groups (GET: GroupList); GroupPath names one.
	PathGroups = "/v1/groups"
)

// TopicPath is the route of one topic (GET, DELETE).
func TopicPath(name string) string { return PathTopics + "/" + url.PathEscape(name) }

// GroupPath is the route of one consumer group (GET: Group, DELETE).
func GroupPath(name string) string { return PathGroups + "/" + url.PathEscape(name) }

// GroupOffsetsPath is the route that resets a group's committed offsets
// (POST: ResetOffsetsRequest, ResetOffsetsResult).
func GroupOffsetsPath(name string) string { return GroupPath(name) + "/offsets" }

// The policy watch, between admin and every broker and replicator:
//
//	GET PathPolicy?after=<version>&wait=<duration>
//
// answers 200 with a Policy as soon as admin's version is greater than
// after; when nothing newer arrives within wait (at most MaxWatchWait) it
// answers 304 Not Modified with no body. Every answer of PathPolicy
// carries admin's current version in PolicyVersionHeader.
const (
	// PolicyVersionHeader carries admin's policy version.
	PolicyVersionHeader = "X-Strata-Policy-Version"
	// DefaultWatchWait is how long one poll is held open by default.
	DefaultWatchWait = 30 * time.Second
	// MaxWatchWait is the longest wait admin accepts.
	MaxWatchWait = 60 * time.Second
)
