package adminapi

import "fmt"

// Policy is the whole ACL policy, on GET and PUT PathPolicy and in the
// watch's answers. On PUT a non-zero Version must be the version in force
// (compare-and-swap).
type Policy struct {
	Policy  string `json:"policy"`
	Version uint64 `json:"version,omitempty"`
}

// Rules is the body of POST and DELETE PathRules (the lines to add or
// remove, no Version) and the answer of every PathRules route (the lines
// in force and their version).
type Rules struct {
	Version  uint64    `json:"version,omitempty"`
	Rules    []Rule    `json:"rules"`
	Bindings []Binding `json:"bindings"`
	Quotas   []Quota   `json:"quotas,omitempty"`
}

// Rule is one "p" line: subject (identity or role), object (topic
// pattern, group:PATTERN or cluster), action, effect.
type Rule struct {
	Subject string `json:"subject"`
	Object  string `json:"object"`
	Action  string `json:"action"`
	// Effect is allow or deny; empty means allow.
	Effect string `json:"effect,omitempty"`
}

// Binding is one "g" line: an identity (or identity pattern) in a role.
type Binding struct {
	Identity string `json:"identity"`
	Role     string `json:"role"`
}

// Quota is one "q" line: a rate of record bytes for a subject (identity,
// role or *) and a kind (produce or consume).
type Quota struct {
	Subject        string `json:"subject"`
	Kind           string `json:"kind"`
	BytesPerSecond int64  `json:"bytes_per_second"`
}

// Line is the rule as a policy line; an empty effect is written allow.
func (r Rule) Line() string {
	eft := r.Effect
	if eft == "" {
		eft = "allow"
	}
	return fmt.Sprintf("p, %s, %s, %s, %s", r.Subject, r.Object, r.Action, eft)
}

// Line is the binding as a policy line.
func (b Binding) Line() string { return fmt.Sprintf("g, %s, %s", b.Identity, b.Role) }

// Line is the quota as a policy line.
func (q Quota) Line() string {
	return fmt.Sprintf("q, %s, %s, %d", q.Subject, q.Kind, q.BytesPerSecond)
}
