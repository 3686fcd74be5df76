// Command strata-broker serves the partitions of one node over gRPC.
//
// Configuration comes from flags and STRATA_* environment variables (see
// -h); main only parses it and calls run. `strata-broker healthcheck`
// asks the broker so configured whether it is serving (exit 0) or not
// (exit 1), for containers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/services/broker/internal/config"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == healthcheckCommand {
		err := healthcheck(context.Background(), os.Args[2:], os.Getenv, os.Stdout, os.Stderr)
		switch {
		case errors.Is(err, flag.ErrHelp):
		case err != nil:
			fmt.Fprintln(os.Stderr, "strata-broker healthcheck:", hcheck.OneLine(err))
			os.Exit(1) // never 2: Docker reserves it
		}
		return
	}
	cfg, err := config.Parse(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-broker: config:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "strata-broker:", err)
		os.Exit(1)
	}
}
