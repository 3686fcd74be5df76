// Command strata is the Strata command-line tool.
//
//	strata [global flags] <noun> <verb> [flags] [args]
//
// Run "strata help" for the commands, "strata version" for the version.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/strata-log/strata/cmd/strata/internal/cli"
)

// version is set at link time: go build -ldflags "-X main.version=v1.2.3".
// Empty, `strata version` reads the build info instead.
var version string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Getenv: os.Getenv, Version: version})
	stop()
	os.Exit(code)
}
