package cli

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelpAtEveryLevel: -h, --help and help work for the tool, every noun
// and every command, answer on stdout with exit 0, and need no broker
// (`strata topic --help` was `unknown verb "--help"`).
func TestHelpAtEveryLevel(t *testing.T) {
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "ctx.json")}
	type tc struct {
		args []string
		want string // the start of stdout
	}
	cases := []tc{
		{[]string{"-h"}, "Usage: strata [global flags]"},
		{[]string{"--help"}, "Usage: strata [global flags]"},
		{[]string{"help"}, "Usage: strata [global flags]"},
		{[]string{"--brokers", "127.0.0.1:1", "--help"}, "Usage: strata [global flags]"},
		{[]string{"help", "topic"}, "Usage: strata topic <verb>"},
		{[]string{"help", "topic", "create"}, "Usage: strata topic create [flags] NAME"},
		{[]string{"--brokers", "127.0.0.1:1", "topic", "help"}, "Usage: strata topic <verb>"},
	}
	nouns := map[string]bool{}
	for _, c := range commands() {
		words := strings.Fields(c.name)
		for _, h := range []string{"-h", "--help"} {
			cases = append(cases, tc{append(words[:len(words):len(words)], h), "Usage: strata " + c.name + " [flags]"})
		}
		if len(words) == 2 && !nouns[words[0]] {
			nouns[words[0]] = true
			for _, h := range []string{"-h", "--help", "-help", "help"} {
				cases = append(cases, tc{[]string{words[0], h}, "Usage: strata " + words[0] + " <verb>"})
			}
		}
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			io, out, errb := testIO(vars)
			if code := Run(context.Background(), c.args, io); code != exitOK {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errb)
			}
			if !strings.HasPrefix(out.String(), c.want) {
				t.Fatalf("stdout does not start with %q:\n%s\nstderr: %s", c.want, out, errb)
			}
		})
	}
}

// TestMissingOrUnknownVerb: a noun alone lists its verbs on stderr and is
// a usage error; so is a verb it does not have.
func TestMissingOrUnknownVerb(t *testing.T) {
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "ctx.json")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"topic"}, "missing verb"},
		{[]string{"topic", "nope"}, `unknown verb "nope"`},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"help", "nope"}, `unknown command "nope"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			io, out, errb := testIO(vars)
			if code := Run(context.Background(), tc.args, io); code != exitUsage {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, exitUsage, out, errb)
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("stderr lacks %q: %s", tc.want, errb)
			}
		})
	}
}

// TestVersion: `strata version` prints the version given at link time,
// else the build info's; --json prints it as an object.
func TestVersion(t *testing.T) {
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "ctx.json")}
	for _, args := range [][]string{{"version"}, {"--version"}} {
		io, out, errb := testIO(vars)
		io.Version = "v1.2.3"
		if code := Run(context.Background(), args, io); code != exitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb)
		}
		if !strings.HasPrefix(out.String(), "strata v1.2.3 (go") {
			t.Fatalf("%v: %q", args, out)
		}
	}
	io, out, errb := testIO(vars)
	if code := Run(context.Background(), []string{"version", "--json"}, io); code != exitOK {
		t.Fatalf("version --json: exit %d: %s", code, errb)
	}
	var v buildVersion
	if err := json.Unmarshal(out.Bytes(), &v); err != nil || v.Version == "" || !strings.HasPrefix(v.Go, "go") {
		t.Fatalf("version --json = %s (%v)", out, err)
	}
}
