package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/strata-log/strata/pkg/adminapi"
)

const aclLineUsage = "a policy line: p SUBJECT OBJECT ACTION [allow|deny], g IDENTITY ROLE or q SUBJECT produce|consume BYTES_PER_SECOND (fields may be comma-separated)"

// parseACLLine turns command-line words into one rule or binding. The
// words are a policy line, split by spaces or commas: "p alice orders-*
// produce", "p, alice, orders, consume, deny", "g alice writers",
// "q alice produce 1048576".
func parseACLLine(args []string) (adminapi.Rules, string, error) {
	fields := strings.FieldsFunc(strings.Join(args, " "), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	var doc adminapi.Rules
	if len(fields) == 0 {
		return doc, "", usagef("expected %s", aclLineUsage)
	}
	switch fields[0] {
	case "p":
		if len(fields) != 4 && len(fields) != 5 {
			return doc, "", usagef("a p line has 4 or 5 fields, got %d: expected %s", len(fields), aclLineUsage)
		}
		r := adminapi.Rule{Subject: fields[1], Object: fields[2], Action: fields[3], Effect: "allow"}
		if len(fields) == 5 {
			r.Effect = fields[4]
		}
		doc.Rules = []adminapi.Rule{r}
		return doc, r.Line(), nil
	case "g":
		if len(fields) != 3 {
			return doc, "", usagef("a g line has 3 fields, got %d: expected %s", len(fields), aclLineUsage)
		}
		doc.Bindings = []adminapi.Binding{{Identity: fields[1], Role: fields[2]}}
		return doc, doc.Bindings[0].Line(), nil
	case "q":
		if len(fields) != 4 {
			return doc, "", usagef("a q line has 4 fields, got %d: expected %s", len(fields), aclLineUsage)
		}
		rate, err := strconv.ParseInt(fields[3], 10, 64)
		if err != nil || rate < 1 {
			return doc, "", usagef("quota rate %q: expected whole bytes per second, at least 1", fields[3])
		}
		doc.Quotas = []adminapi.Quota{{Subject: fields[1], Kind: fields[2], BytesPerSecond: rate}}
		return doc, doc.Quotas[0].Line(), nil
	default:
		return doc, "", usagef("line type %q: expected %s", fields[0], aclLineUsage)
	}
}

func runACLList(ctx context.Context, e *env, args []string) error {
	if _, err := e.parse(e.flagSet(), args, 0, 0); err != nil {
		return err
	}
	a, err := e.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	var doc adminapi.Rules
	if err := a.do(ctx, http.MethodGet, adminapi.PathRules, nil, &doc); err != nil {
		return err
	}
	if e.g.json {
		return printJSON(e.io.Out, doc)
	}
	t := newTable(e.io.Out, "TYPE", "SUBJECT", "OBJECT/ROLE", "ACTION", "EFFECT")
	for _, r := range doc.Rules {
		t.row("p", r.Subject, r.Object, r.Action, r.Effect)
	}
	for _, b := range doc.Bindings {
		t.row("g", b.Identity, b.Role, "", "")
	}
	for _, q := range doc.Quotas {
		t.row("q", q.Subject, "", q.Kind, strconv.FormatInt(q.BytesPerSecond, 10)+" B/s")
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.io.Out, "policy version %d\n", doc.Version)
	return err
}

func runACLAdd(ctx context.Context, e *env, args []string) error {
	return aclEdit(ctx, e, args, http.MethodPost, "added")
}

func runACLRemove(ctx context.Context, e *env, args []string) error {
	return aclEdit(ctx, e, args, http.MethodDelete, "removed")
}

func aclEdit(ctx context.Context, e *env, args []string, method, done string) error {
	pos, err := e.parse(e.flagSet(), args, 1, 5)
	if err != nil {
		return err
	}
	doc, line, err := parseACLLine(pos)
	if err != nil {
		return err
	}
	a, err := e.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	var after adminapi.Rules
	if err := a.do(ctx, method, adminapi.PathRules, doc, &after); err != nil {
		return err
	}
	if e.g.json {
		return printJSON(e.io.Out, after)
	}
	_, err = fmt.Fprintf(e.io.Out, "%s %s (policy version %d)\n", done, line, after.Version)
	return err
}

func runACLApply(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	ifVersion := fs.Uint64("if-version", 0, "replace only if the policy in force is at this `version` (0: any)")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	var text []byte
	if pos[0] == "-" {
		text, err = io.ReadAll(io.LimitReader(e.io.In, 1<<20+1))
	} else {
		text, err = os.ReadFile(pos[0])
	}
	if err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	a, err := e.admin()
	if err != nil {
		return err
	}
	defer a.close()
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	var after adminapi.Policy
	if err := a.do(ctx, http.MethodPut, adminapi.PathPolicy, adminapi.Policy{Policy: string(text), Version: *ifVersion}, &after); err != nil {
		return err
	}
	if e.g.json {
		return printJSON(e.io.Out, after)
	}
	_, err = fmt.Fprintf(e.io.Out, "applied %s (policy version %d)\n", pos[0], after.Version)
	return err
}
