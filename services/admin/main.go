// Command strata-admin serves the admin HTTP API and initialises the
// cluster PKI.
//
//	strata-admin pki init --out DIR --ca-name NAME --node 1 --node 2 ... [--host H ...]
//	strata-admin serve --listen ADDR --data-dir DIR --tls-cert F --tls-key F --tls-ca F [--ca-key F] [--cluster-addrs A,...]
//
// main only hands the arguments to run and maps its error to an exit code:
// 2 for a usage error, 1 for any other failure.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, errHelp):
		os.Exit(0)
	case errors.Is(err, errUsage):
		fmt.Fprintln(os.Stderr, "strata-admin:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "strata-admin:", err)
		os.Exit(1)
	}
}
