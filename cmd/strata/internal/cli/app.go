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
	// Version is the version the binary was built as (-ldflags
	// "-X main.version=..."); empty means: read it from the build info.
	Version string
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
		{"group list", "", "list consumer groups (asks every broker)", runGroupList},
		{"group describe", "NAME", "show a group's members, assignments, committed offsets and lag", runGroupDescribe},
		{"group delete", "NAME", "delete a group without members and its committed offsets", runGroupDelete},
		{"group reset-offsets", "NAME", "set a group's committed offsets for a topic (--to-earliest|--to-latest|--to-offset|--to-time|--shift-by)", runGroupResetOffsets},
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
		{"cert export", "", "write the context's certificate, key and CA as a PKCS#12 file (--p12 FILE) a browser imports", runCertExport},
		{"bench produce", "", "produce load and report throughput and latency", runBenchProduce},
		{"bench consume", "", "consume load and report throughput", runBenchConsume},
		{"bench commit", "", "commit offsets to a group from many committers and report commits/s and latency", runBenchCommit},
		{"bench rebalance", "", "measure how long a group's partitions stop when a member dies or joins", runBenchRebalance},
		{"verify produce", "", "produce sequence-numbered records (idempotent, acks=all), logging every outcome", runVerifyProduce},
		{"verify check", "", "check every replica against outcome logs: lost acks, divergence, duplicates, order, gaps", runVerifyCheck},
		{"verify run", "", "verify produce, then verify check", runVerifyRun},
		{"verify status", "", "every broker's view of a topic's leaders and ISRs, and whether they agree", runVerifyStatus},
		{"version", "", "print the version of this strata binary", runVersion},
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

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func dispatch(ctx context.Context, args []string, io IO) error {
	if len(args) == 0 {
		printHelp(io.Err)
		return usagef("no command given")
	}
	if isHelp(args[0]) {
		return help(ctx, io, args[1:])
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = []string{"version"}
	}
	// Global flags may come before the command.
	g := &globals{}
	pre := flag.NewFlagSet("strata", flag.ContinueOnError)
	pre.SetOutput(io.Err)
	pre.Usage = func() {}
	g.register(pre)
	if err := pre.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(io.Out)
			return err
		}
		return usagef("%v", err)
	}
	args = pre.Args()
	if len(args) == 0 {
		return usagef("no command given (strata help)")
	}
	if args[0] == "help" {
		return help(ctx, io, args[1:])
	}
	match, rest := findCommand(args)
	if match == nil {
		noun := args[0]
		verbs := nounVerbs(noun)
		if len(verbs) == 0 {
			return usagef("unknown command %q (strata help)", noun)
		}
		switch {
		case len(args) == 1:
			printNounHelp(io.Err, noun)
			return usagef("%s: missing verb (one of: %s)", noun, strings.Join(verbNames(verbs), ", "))
		case isHelp(args[1]):
			printNounHelp(io.Out, noun)
			return flag.ErrHelp
		}
		return usagef("%s: unknown verb %q (one of: %s)", noun, args[1], strings.Join(verbNames(verbs), ", "))
	}
	e := &env{io: io, g: g, cmd: match}
	return match.run(ctx, e, rest)
}

// findCommand returns the command that args start with, and the args
// after its name.
func findCommand(args []string) (*command, []string) {
	cmds := commands()
	for i := range cmds {
		words := strings.Fields(cmds[i].name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == cmds[i].name {
			return &cmds[i], args[len(words):]
		}
	}
	return nil, nil
}

// nounVerbs returns the commands named "noun <verb>".
func nounVerbs(noun string) []command {
	var out []command
	for _, c := range commands() {
		if strings.HasPrefix(c.name, noun+" ") {
			out = append(out, c)
		}
	}
	return out
}

func verbNames(cmds []command) []string {
	out := make([]string, len(cmds))
	for i, c := range cmds {
		_, out[i], _ = strings.Cut(c.name, " ")
	}
	return out
}

// help answers "strata help [command words]": the overview, a noun's
// verbs, or a command's flags.
func help(ctx context.Context, io IO, words []string) error {
	if len(words) == 0 {
		printHelp(io.Out)
		return flag.ErrHelp
	}
	if match, rest := findCommand(words); match != nil && len(rest) == 0 {
		return match.run(ctx, &env{io: io, g: &globals{}, cmd: match}, []string{"-h"})
	}
	if len(words) == 1 && len(nounVerbs(words[0])) > 0 {
		printNounHelp(io.Out, words[0])
		return flag.ErrHelp
	}
	return usagef("help: unknown command %q (strata help)", strings.Join(words, " "))
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
	fmt.Fprintln(w, "\nRun \"strata <command> -h\" (or \"strata help <command>\") for a command's flags.")
}

// printNounHelp lists a noun's verbs.
func printNounHelp(w io.Writer, noun string) {
	fmt.Fprintf(w, "Usage: strata %s <verb> [flags] [args]\n\nVerbs:\n", noun)
	for _, c := range nounVerbs(noun) {
		_, verb, _ := strings.Cut(c.name, " ")
		fmt.Fprintf(w, "  %-22s %s\n", strings.TrimSpace(verb+" "+c.args), c.summary)
	}
	fmt.Fprintf(w, "\nRun \"strata %s <verb> -h\" for a verb's flags, \"strata -h\" for the global flags.\n", noun)
}

// message turns an error into the one line printed after "strata: ".
func message(err error) string {
	var ce *client.ConfigError
	if errors.As(err, &ce) {
		return ce.Field + ": " + ce.Msg
	}
	var pe *client.PermissionError
	if errors.As(err, &pe) {
		return err.Error() + "\n" + permissionHint(pe)
	}
	return err.Error()
}

// flagSet makes a command's flag set, with the global flags registered too.
func (e *env) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("strata "+e.cmd.name, flag.ContinueOnError)
	fs.SetOutput(e.io.Err)
	e.g.register(fs)
	fs.Usage = func() {} // parse prints it: to stdout when asked for
	return fs
}

// usage prints a command's usage and flags to w.
func (e *env) usage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintf(w, "Usage: strata %s [flags] %s\n\n%s\n\nFlags:\n", e.cmd.name, e.cmd.args, e.cmd.summary)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(e.io.Err)
}

// parse parses flags interleaved with positional arguments and checks the
// number of positionals is within [min, max].
func (e *env) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				e.usage(fs, e.io.Out)
				return nil, err
			}
			e.usage(fs, e.io.Err)
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
