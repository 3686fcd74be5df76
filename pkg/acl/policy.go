package acl

import (
	"fmt"
	"strings"
)

// Rule is one "p" line: subject (identity or role) may do action on the
// objects matching Object, with Effect allow or deny.
type Rule struct {
	Subject string
	Object  string
	Action  string
	Effect  string
}

// Binding is one "g" line: identities matching Identity (a name or a glob
// pattern) hold Role.
type Binding struct {
	Identity string
	Role     string
}

// Policy is a parsed, validated policy.
type Policy struct {
	Rules    []Rule
	Bindings []Binding
	Quotas   []Quota
}

// maxLineLength bounds one policy line.
const maxLineLength = 1024

// ParsePolicy parses and validates policy text: Casbin CSV lines
//
//	p, subject, object, action, effect
//	g, identity, role
//	q, subject, produce|consume, bytes-per-second
//
// Blank lines and lines starting with "#" are ignored. Fields are trimmed
// of spaces. Every field must be non-empty printable ASCII without spaces,
// quotes, commas or "#". The action is one of Actions() or "*"; the effect
// is allow or deny. "*" is allowed only in objects and in the identity of
// a binding, and a quota's subject may be "*" alone (every identity).
// Duplicate lines, and two quotas of one kind for one subject, are
// refused. The error is a *ParseError naming the first bad line.
func ParsePolicy(text string) (*Policy, error) {
	p := &Policy{}
	seen := map[string]int{}
	quotaSeen := map[[2]string]int{}
	for i, raw := range strings.Split(text, "\n") {
		n := i + 1
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) > maxLineLength {
			return nil, &ParseError{n, fmt.Sprintf("line longer than %d bytes", maxLineLength)}
		}
		fields := strings.Split(line, ",")
		for j := range fields {
			fields[j] = strings.TrimSpace(fields[j])
		}
		key := strings.Join(fields, ",")
		if prev, ok := seen[key]; ok {
			return nil, &ParseError{n, fmt.Sprintf("duplicates line %d", prev)}
		}
		seen[key] = n
		switch fields[0] {
		case "p":
			r, err := parseRule(fields)
			if err != nil {
				return nil, &ParseError{n, err.Error()}
			}
			p.Rules = append(p.Rules, r)
		case "g":
			b, err := parseBinding(fields)
			if err != nil {
				return nil, &ParseError{n, err.Error()}
			}
			p.Bindings = append(p.Bindings, b)
		case "q":
			q, err := parseQuota(fields)
			if err != nil {
				return nil, &ParseError{n, err.Error()}
			}
			k := [2]string{q.Subject, q.Kind}
			if prev, ok := quotaSeen[k]; ok {
				return nil, &ParseError{n, fmt.Sprintf("a second %s quota for %s (line %d has one)", q.Kind, q.Subject, prev)}
			}
			quotaSeen[k] = n
			p.Quotas = append(p.Quotas, q)
		default:
			return nil, &ParseError{n, fmt.Sprintf("unknown line type %q (want p, g or q)", fields[0])}
		}
	}
	return p, nil
}

func parseRule(f []string) (Rule, error) {
	if len(f) != 5 {
		return Rule{}, fmt.Errorf("p line has %d fields, want 5: p, subject, object, action, effect", len(f))
	}
	r := Rule{Subject: f[1], Object: f[2], Action: f[3], Effect: f[4]}
	if err := checkField("subject", r.Subject, false); err != nil {
		return Rule{}, err
	}
	if err := checkField("object", r.Object, true); err != nil {
		return Rule{}, err
	}
	if r.Action != ActionAll && !isAction(r.Action) {
		return Rule{}, fmt.Errorf("unknown action %q", r.Action)
	}
	if r.Effect != EffectAllow && r.Effect != EffectDeny {
		return Rule{}, fmt.Errorf("effect %q, want allow or deny", r.Effect)
	}
	return r, nil
}

func parseBinding(f []string) (Binding, error) {
	if len(f) != 3 {
		return Binding{}, fmt.Errorf("g line has %d fields, want 3: g, identity, role", len(f))
	}
	b := Binding{Identity: f[1], Role: f[2]}
	if err := checkField("identity", b.Identity, true); err != nil {
		return Binding{}, err
	}
	if err := checkField("role", b.Role, false); err != nil {
		return Binding{}, err
	}
	if b.Identity == b.Role || globMatch(b.Role, b.Identity) {
		return Binding{}, fmt.Errorf("identity %q binds to itself", b.Identity)
	}
	return b, nil
}

func checkField(what, v string, patternOK bool) error {
	if v == "" {
		return fmt.Errorf("empty %s", what)
	}
	for _, c := range []byte(v) {
		switch {
		case c <= ' ' || c >= 0x7f:
			return fmt.Errorf("%s %q has a space or non-printable character", what, v)
		case c == '"' || c == '\'' || c == '#':
			return fmt.Errorf("%s %q has a forbidden character %q", what, v, c)
		case c == '*' && !patternOK:
			return fmt.Errorf("%s %q may not be a pattern", what, v)
		}
	}
	return nil
}

// String returns the policy in canonical text: rules, bindings, quotas.
func (p *Policy) String() string {
	var b strings.Builder
	for _, r := range p.Rules {
		fmt.Fprintf(&b, "p, %s, %s, %s, %s\n", r.Subject, r.Object, r.Action, r.Effect)
	}
	for _, g := range p.Bindings {
		fmt.Fprintf(&b, "g, %s, %s\n", g.Identity, g.Role)
	}
	for _, q := range p.Quotas {
		fmt.Fprintf(&b, "q, %s, %s, %d\n", q.Subject, q.Kind, q.BytesPerSecond)
	}
	return b.String()
}

// Names reports whether the policy names identity where it could give it
// powers: as the subject of a rule, as a role, or as (or matched by the
// pattern of) the identity of a binding. A certificate issued for such a
// name holds what the policy grants it, so the admin service lets only
// admins issue one.
func (p *Policy) Names(identity string) bool {
	for _, r := range p.Rules {
		if r.Subject == identity {
			return true
		}
	}
	for _, b := range p.Bindings {
		if b.Role == identity || globMatch(identity, b.Identity) {
			return true
		}
	}
	return false
}
