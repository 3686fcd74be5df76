package acl

import (
	"fmt"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
)

// modelText is the Casbin model. objectMatch is registered as a function
// on each enforcer; the role manager of g matches identities with
// globMatch, so "g, broker-*, broker" binds every broker-N.
const modelText = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub) && objectMatch(r.obj, p.obj) && (p.act == "*" || r.act == p.act)
`

// newEnforcer builds an enforcer holding p. It is never modified after;
// replacing a policy builds a new one.
func newEnforcer(p *Policy) (*casbin.SyncedEnforcer, error) {
	m, err := model.NewModelFromString(modelText)
	if err != nil {
		return nil, fmt.Errorf("acl model: %w", err)
	}
	e, err := casbin.NewSyncedEnforcer(m)
	if err != nil {
		return nil, fmt.Errorf("acl enforcer: %w", err)
	}
	e.EnableLog(false)
	e.AddFunction("objectMatch", func(args ...interface{}) (interface{}, error) {
		if len(args) != 2 {
			return false, fmt.Errorf("objectMatch: want 2 arguments, got %d", len(args))
		}
		obj, ok1 := args[0].(string)
		pat, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return false, fmt.Errorf("objectMatch: arguments are not strings")
		}
		return objectMatch(obj, pat), nil
	})
	e.AddNamedMatchingFunc("g", "glob", globMatch)
	if len(p.Rules) > 0 {
		rules := make([][]string, 0, len(p.Rules))
		for _, r := range p.Rules {
			rules = append(rules, []string{r.Subject, r.Object, r.Action, r.Effect})
		}
		if _, err := e.AddPolicies(rules); err != nil {
			return nil, fmt.Errorf("acl enforcer: add rules: %w", err)
		}
	}
	if len(p.Bindings) > 0 {
		links := make([][]string, 0, len(p.Bindings))
		for _, b := range p.Bindings {
			links = append(links, []string{b.Identity, b.Role})
		}
		if _, err := e.AddGroupingPolicies(links); err != nil {
			return nil, fmt.Errorf("acl enforcer: add bindings: %w", err)
		}
	}
	if err := e.BuildRoleLinks(); err != nil {
		return nil, fmt.Errorf("acl enforcer: role links: %w", err)
	}
	return e, nil
}
