// Package cli implements the strata command-line tool: a noun-verb command
// dispatcher over the Go client library.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/strata-log/strata/pkg/client"
)

// IO is the process environment a command runs in.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a mistake on the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// command is one leaf command.
type command struct {
	name    string // "topic create"
	args    string // positional arguments in usage
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"produce", "TOPIC", "produce records read from stdin, one per line", runProduce},
		{"consume", "TOPIC", "consume records and print them", runConsume},
		{"topic create", "NAME", "create a topic", runTopicCreate},
		{"topic list", "", "list topics", runTopicList},
		{"topic describe", "NAME", "show a topic's config and partitions", runTopicDescribe},
		{"topic alter", "NAME", "change a topic's config (--config k=v ...)", runTopicAlter},
		{"topic delete", "NAME", "delete a topic", runTopicDelete},
		{"cluster info", "", "show brokers and the controller", runClusterInfo},
		{"context set", "NAME", "create or update a connection context", runContextSet},
		{"context use", "NAME", "make a context the current one", runContextUse},
		{"context list", "", "list contexts", runContextList},
		{"context show", "[NAME]", "show a context (default: the current one)", runContextShow},
		{"context delete", "NAME", "delete a context", runContextDelete},
		{"acl list", "", "list the ACL rules and role bindings (admin API)", runACLList},
		{"acl add", "LINE", "add a rule (p SUBJECT OBJECT ACTION [allow|deny]) or binding (g IDENTITY ROLE)", runACLAdd},
		{"acl remove", "LINE", "remove a rule or binding, written as for acl add", runACLRemove},
		{"acl apply", "FILE", "replace the whole ACL policy with FILE (- for stdin)", runACLApply},
		{"cert issue", "NAME", "have admin issue a certificate and key for NAME into --out DIR", runCertIssue},
		{"cert ca", "", "print the cluster CA certificate (from admin)", runCertCA},
		{"bench produce", "", "produce load and report throughput and latency", runBenchProduce},
		{"bench consume", "", "consume load and report throughput", runBenchConsume},
		{"verify produce", "", "produce sequence-numbered records with acks=all, logging every outcome", runVerifyProduce},
		{"verify check", "", "check every replica against outcome logs: lost acks, divergence, duplicates, gaps", runVerifyCheck},
		{"verify run", "", "verify produce, then verify check", runVerifyRun},
		{"verify status", "", "every broker's view of a topic's leaders and ISRs, and whether they agree", runVerifyStatus},
	}
}

// Run runs the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, io IO) int {
	if io.Getenv == nil {
		io.Getenv = os.Getenv
	}
	err := dispatch(ctx, args, io)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(io.Err, "strata: %s\n", message(err))
	var ue *usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitError
}

func dispatch(ctx context.Context, args []string, io IO) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		printHelp(io.Out)
		if len(args) == 0 {
			return usagef("no command given")
		}
		return nil
	}
	// Global flags may come before the command.
	g := &globals{}
	pre := flag.NewFlagSet("strata", flag.ContinueOnError)
	pre.SetOutput(io.Err)
	g.register(pre)
	if err := pre.Parse(args); err != nil {
		return usagef("%v", err)
	}
	args = pre.Args()
	if len(args) == 0 {
		return usagef("no command given (strata help)")
	}
	cmds := commands()
	var match *command
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmds[i].name {
			match = &cmds[i]
			args = args[len(words):]
			break
		}
	}
	if match == nil {
		var verbs []string
		for _, c := range cmds {
			if strings.HasPrefix(c.name, args[0]+" ") {
				verbs = append(verbs, strings.TrimPrefix(c.name, args[0]+" "))
			}
		}
		if len(verbs) > 0 {
			if len(args) == 1 {
				return usagef("%s: missing verb (one of: %s)", args[0], strings.Join(verbs, ", "))
			}
			return usagef("%s: unknown verb %q (one of: %s)", args[0], args[1], strings.Join(verbs, ", "))
		}
		return usagef("unknown command %q (strata help)", args[0])
	}
	e := &env{io: io, g: g, cmd: match}
	return match.run(ctx, e, args)
}

func printHelp(w io.Writer) {
	fmt.Fprintln(w, "Usage: strata [global flags] <command> [flags] [args]")
	fmt.Fprintln(w, "\nCommands:")
	cmds := commands()
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-28s %s\n", strings.TrimSpace(c.name+" "+c.args), c.summary)
	}
	fmt.Fprintln(w, "\nGlobal flags (before or after the command):")
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	fs.SetOutput(w)
	(&globals{}).register(fs)
	fs.PrintDefaults()
	fmt.Fprintln(w, "\nRun \"strata <command> -h\" for a command's flags.")
}

// message turns an error into the one line printed after "strata: ".
func message(err error) string {
	var ce *client.ConfigError
	if errors.As(err, &ce) {
		return ce.Field + ": " + ce.Msg
	}
	return err.Error()
}

// flagSet makes a command's flag set, with the global flags registered too.
func (e *env) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("strata "+e.cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.io.Err)
	e.g.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(e.io.Err, "Usage: strata %s [flags] %s\n\n%s\n\nFlags:\n", e.cmd.name, e.cmd.args, e.cmd.summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags interleaved with positional arguments and checks the
// number of positionals is within [min, max].
func (e *env) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", e.cmd.name, err)
		}
		if fs.NArg() == 0 {
			break
		}
		rest := fs.Args()
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < min || len(pos) > max {
		want := e.cmd.args
		if want == "" {
			want = "no arguments"
		}
		return nil, usagef("%s: expected %s, got %d argument(s)", e.cmd.name, want, len(pos))
	}
	return pos, nil
}
