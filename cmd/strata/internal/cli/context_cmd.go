package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
)

func (e *env) contextFile() (string, *ContextFile, error) {
	path, err := contextPath(e.io.Getenv)
	if err != nil {
		return "", nil, err
	}
	cf, err := loadContexts(path)
	return path, cf, err
}

func runContextSet(_ context.Context, e *env, args []string) error {
	fs := e.flagSet()
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	path, cf, err := e.contextFile()
	if err != nil {
		return err
	}
	name := pos[0]
	c, ok := cf.Contexts[name]
	if !ok {
		c = &Context{}
		cf.Contexts[name] = c
	}
	// Only the flags given change the context.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["brokers"] {
		c.Brokers = splitList(e.g.brokers)
	}
	if set["ca"] {
		c.CA = e.g.ca
	}
	if set["cert"] {
		c.Cert = e.g.cert
	}
	if set["key"] {
		c.Key = e.g.key
	}
	if set["admin"] {
		c.Admin = e.g.admin
	}
	if set["insecure"] {
		c.Insecure = e.g.insecure.v
	}
	if c.Insecure && (c.CA != "" || c.Cert != "" || c.Key != "") {
		return usagef("context %q: --insecure conflicts with --ca/--cert/--key", name)
	}
	if cf.Current == "" {
		cf.Current = name
	}
	if err := cf.save(path); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.io.Out, "context %q saved in %s\n", name, path)
	return err
}

func runContextUse(_ context.Context, e *env, args []string) error {
	pos, err := e.parse(e.flagSet(), args, 1, 1)
	if err != nil {
		return err
	}
	path, cf, err := e.contextFile()
	if err != nil {
		return err
	}
	if _, ok := cf.Contexts[pos[0]]; !ok {
		return fmt.Errorf("context %q not found", pos[0])
	}
	cf.Current = pos[0]
	if err := cf.save(path); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.io.Out, "using context %q\n", pos[0])
	return err
}

func runContextList(_ context.Context, e *env, args []string) error {
	if _, err := e.parse(e.flagSet(), args, 0, 0); err != nil {
		return err
	}
	_, cf, err := e.contextFile()
	if err != nil {
		return err
	}
	if e.g.json {
		return printJSON(e.io.Out, cf)
	}
	t := newTable(e.io.Out, "CURRENT", "NAME", "BROKERS", "TLS")
	for _, n := range cf.names() {
		c := cf.Contexts[n]
		cur := ""
		if n == cf.Current {
			cur = "*"
		}
		tlsMode := "mtls"
		if c.Insecure {
			tlsMode = "plaintext"
		}
		t.row(cur, n, strings.Join(c.Brokers, ","), tlsMode)
	}
	return t.flush()
}

func runContextShow(_ context.Context, e *env, args []string) error {
	pos, err := e.parse(e.flagSet(), args, 0, 1)
	if err != nil {
		return err
	}
	_, cf, err := e.contextFile()
	if err != nil {
		return err
	}
	name := cf.Current
	if len(pos) == 1 {
		name = pos[0]
	}
	c, ok := cf.Contexts[name]
	if !ok {
		return fmt.Errorf("context %q not found", name)
	}
	if e.g.json {
		return printJSON(e.io.Out, map[string]any{"name": name, "context": c})
	}
	t := newTable(e.io.Out, "KEY", "VALUE")
	t.row("name", name)
	t.row("brokers", strings.Join(c.Brokers, ","))
	t.row("ca", c.CA)
	t.row("cert", c.Cert)
	t.row("key", c.Key)
	t.row("admin", c.Admin)
	t.row("insecure", c.Insecure)
	return t.flush()
}

func runContextDelete(_ context.Context, e *env, args []string) error {
	pos, err := e.parse(e.flagSet(), args, 1, 1)
	if err != nil {
		return err
	}
	path, cf, err := e.contextFile()
	if err != nil {
		return err
	}
	if _, ok := cf.Contexts[pos[0]]; !ok {
		return fmt.Errorf("context %q not found", pos[0])
	}
	delete(cf.Contexts, pos[0])
	if cf.Current == pos[0] {
		cf.Current = ""
	}
	if err := cf.save(path); err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.io.Out, "deleted context %q\n", pos[0])
	return err
}
