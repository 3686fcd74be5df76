package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
)

// maxRuleEdits bounds the lines one POST or DELETE may carry.
const maxRuleEdits = 1000

// The /rules routes edit the policy a line at a time. Each POST or DELETE
// is one atomic, versioned, audit-logged change of the whole policy
// (through policyStore.change): comments and the order of other lines are
// kept.

func (rr *aclResource) listRules(w http.ResponseWriter, r *http.Request) {
	text, version, _ := rr.store.snapshot()
	rr.answer(w, text, version)
}

func (rr *aclResource) answer(w http.ResponseWriter, text string, version uint64) {
	p, err := acl.ParsePolicy(text)
	if err != nil {
		// The policy in force always parses; this is a bug.
		writeErr(w, rr.lg, fmt.Errorf("policy in force does not parse: %w", err))
		return
	}
	doc := adminapi.Rules{Version: version, Rules: []adminapi.Rule{}, Bindings: []adminapi.Binding{}}
	for _, x := range p.Rules {
		doc.Rules = append(doc.Rules, adminapi.Rule{Subject: x.Subject, Object: x.Object, Action: x.Action, Effect: x.Effect})
	}
	for _, b := range p.Bindings {
		doc.Bindings = append(doc.Bindings, adminapi.Binding{Identity: b.Identity, Role: b.Role})
	}
	for _, q := range p.Quotas {
		doc.Quotas = append(doc.Quotas, adminapi.Quota{Subject: q.Subject, Kind: q.Kind, BytesPerSecond: q.BytesPerSecond})
	}
	writeJSON(w, rr.lg, http.StatusOK, doc)
}

func (rr *aclResource) addRules(w http.ResponseWriter, r *http.Request) {
	rr.edit(w, r, "add rules", addLines)
}

func (rr *aclResource) removeRules(w http.ResponseWriter, r *http.Request) {
	rr.edit(w, r, "remove rules", removeLines)
}

func (rr *aclResource) edit(w http.ResponseWriter, r *http.Request, what string, apply func(old string, lines []string) (string, error)) {
	id := identityFrom(r.Context())
	b, err := readBody(w, r)
	if err != nil {
		writeErr(w, rr.lg, err)
		return
	}
	lines, err := decodeRulesBody(b)
	if err != nil {
		rr.lg.Warn("audit: acl policy change refused", zap.String("identity", id), zap.String("change", what), zap.Error(err))
		writeErr(w, rr.lg, err)
		return
	}
	text, version, err := rr.store.change(id, what+": "+strings.Join(lines, "; "), func(old string, _ uint64) (string, error) {
		return apply(old, lines)
	})
	if err != nil {
		writeErr(w, rr.lg, err)
		return
	}
	rr.answer(w, text, version)
}

// decodeRulesBody decodes a POST or DELETE /v1/acl/rules body into policy
// lines, each checked by the policy parser. At least one line, at most
// maxRuleEdits, no line twice.
func decodeRulesBody(b []byte) ([]string, error) {
	var doc adminapi.Rules
	if err := decodeStrict(b, &doc, `{"rules": [{"subject", "object", "action", "effect"}], "bindings": [{"identity", "role"}], "quotas": [{"subject", "kind", "bytes_per_second"}]}`); err != nil {
		return nil, err
	}
	if doc.Version != 0 {
		return nil, errorf(http.StatusBadRequest, "version is not accepted here")
	}
	n := len(doc.Rules) + len(doc.Bindings) + len(doc.Quotas)
	if n == 0 {
		return nil, errorf(http.StatusBadRequest, "no rules, bindings or quotas given")
	}
	if n > maxRuleEdits {
		return nil, errorf(http.StatusBadRequest, "%d lines; at most %d per request", n, maxRuleEdits)
	}
	lines := make([]string, 0, n)
	for _, x := range doc.Rules {
		if x.Effect == "" {
			x.Effect = acl.EffectAllow
		}
		// Parsing each line alone and comparing it with the fields proves
		// no field smuggled a separator or a second line into the policy.
		p, err := acl.ParsePolicy(x.Line())
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "rule %+v: %v", x, err)
		}
		if len(p.Rules) != 1 || len(p.Bindings) != 0 || p.Rules[0] != (acl.Rule{Subject: x.Subject, Object: x.Object, Action: x.Action, Effect: x.Effect}) {
			return nil, errorf(http.StatusBadRequest, "rule %+v: a field holds a separator, a space or a line break", x)
		}
		lines = append(lines, x.Line())
	}
	for _, x := range doc.Bindings {
		p, err := acl.ParsePolicy(x.Line())
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "binding %+v: %v", x, err)
		}
		if len(p.Bindings) != 1 || len(p.Rules) != 0 || p.Bindings[0] != (acl.Binding{Identity: x.Identity, Role: x.Role}) {
			return nil, errorf(http.StatusBadRequest, "binding %+v: a field holds a separator, a space or a line break", x)
		}
		lines = append(lines, x.Line())
	}
	for _, x := range doc.Quotas {
		p, err := acl.ParsePolicy(x.Line())
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "quota %+v: %v", x, err)
		}
		if len(p.Quotas) != 1 || len(p.Rules)+len(p.Bindings) != 0 || p.Quotas[0] != (acl.Quota{Subject: x.Subject, Kind: x.Kind, BytesPerSecond: x.BytesPerSecond}) {
			return nil, errorf(http.StatusBadRequest, "quota %+v: a field holds a separator, a space or a line break", x)
		}
		lines = append(lines, x.Line())
	}
	// Parsing them together refuses duplicates.
	if _, err := acl.ParsePolicy(strings.Join(lines, "\n")); err != nil {
		return nil, errorf(http.StatusBadRequest, "%v", err)
	}
	return lines, nil
}

// lineKey is a policy line with its fields trimmed, for comparing lines
// however they are spaced. Comments and blank lines have no key.
func lineKey(line string) string {
	line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
	if line == "" || strings.HasPrefix(line, "#") {
		return ""
	}
	fields := strings.Split(line, ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	return strings.Join(fields, ",")
}

// addLines appends lines to the policy text; a line already present is a
// conflict (409) and nothing is added.
func addLines(old string, lines []string) (string, error) {
	present := map[string]bool{}
	for _, l := range strings.Split(old, "\n") {
		present[lineKey(l)] = true
	}
	var b strings.Builder
	b.WriteString(old)
	if old != "" && !strings.HasSuffix(old, "\n") {
		b.WriteByte('\n')
	}
	for _, l := range lines {
		if present[lineKey(l)] {
			return "", errorf(http.StatusConflict, "already in the policy: %s", l)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// removeLines deletes lines from the policy text, keeping everything else
// as it was; a line not present is 404 and nothing is removed.
func removeLines(old string, lines []string) (string, error) {
	drop := map[string]bool{}
	for _, l := range lines {
		drop[lineKey(l)] = true
	}
	var kept []string
	found := map[string]bool{}
	for _, l := range strings.Split(old, "\n") {
		if k := lineKey(l); drop[k] {
			found[k] = true
			continue
		}
		kept = append(kept, l)
	}
	for _, l := range lines {
		if !found[lineKey(l)] {
			return "", errorf(http.StatusNotFound, "not in the policy: %s", l)
		}
	}
	return strings.Join(kept, "\n"), nil
}
