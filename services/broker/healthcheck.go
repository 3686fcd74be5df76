package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/pkg/pki"
	"github.com/strata-log/strata/services/broker/internal/config"
)

// healthcheckCommand is the first argument that runs healthcheck instead
// of the broker: `strata-broker healthcheck [flags]`.
const healthcheckCommand = "healthcheck"

// healthcheck is the container healthcheck of an image without a shell:
// it reads the configuration the broker itself reads (STRATA_* environment,
// then args), dials the broker's own --listen address (loopback when that
// is a wildcard) as the broker's own identity when mutual TLS is on, and
// calls grpc.health.v1 Check for the whole server. It returns nil and
// writes one line to stdout when the answer is SERVING, else an error
// saying why (flag.ErrHelp after -h).
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Parse(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("config: %w", err)
	}
	addr, err := hcheck.LocalAddr(cfg.Listen)
	if err != nil {
		return err
	}
	creds := insecure.NewCredentials()
	if cfg.TLSEnabled() {
		r, err := pki.NewReloader(pki.Files{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA}, pki.ReloaderOptions{}, nil)
		if err != nil {
			return err
		}
		// The listener must present the identity this broker's own
		// certificate carries (its CN is one of its DNS names).
		tc, err := r.ClientConfig(r.Leaf().Subject.CommonName)
		if err != nil {
			return err
		}
		creds = credentials.NewTLS(tc)
	}
	return hcheck.GRPC(ctx, addr, creds, stdout)
}
