package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

var (
	// errUsage is wrapped by every command-line usage error (exit status 2).
	errUsage = errors.New("usage")
	// errHelp is returned when help was asked for and printed (exit status 0).
	errHelp = errors.New("help requested")
)

const usageText = `usage:
  strata-admin pki init --out DIR --ca-name NAME --node ID [--node ID ...] [--host DNS-OR-IP ...]
  strata-admin serve --listen ADDR --data-dir DIR --tls-cert FILE --tls-key FILE --tls-ca FILE [--ca-key FILE] [--cluster-addrs HOST:PORT,...]
                     [--metrics-targets broker-1=HOST:PORT,replicator-1=HOST:PORT,...] [--scrape-interval D]
                     [--handshake-timeout D] [--max-conns N] [--max-conns-per-ip N]   (each flag also STRATA_<FLAG>)
  strata-admin healthcheck --listen ADDR --tls-cert FILE --tls-key FILE --tls-ca FILE   (exit 0 healthy, 1 not; each flag also STRATA_<FLAG>)
`

// run dispatches the subcommand named by args. stdout receives the
// command's report, stderr usage text and diagnostics.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("%w: no command", errUsage)
	}
	switch args[0] {
	case "pki":
		if len(args) < 2 || args[1] != "init" {
			fmt.Fprint(stderr, usageText)
			return fmt.Errorf("%w: pki needs the subcommand init", errUsage)
		}
		return runPKIInit(args[2:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], os.Getenv, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], os.Getenv, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usageText)
		return errHelp
	default:
		fmt.Fprint(stderr, usageText)
		return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
	}
}
