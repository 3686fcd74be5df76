package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"

	"google.golang.org/grpc/credentials"

	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/services/replicator/internal/config"
)

// healthcheckCommand is the first argument that runs healthcheck instead
// of the replicator: `strata-replicator healthcheck [flags]`.
const healthcheckCommand = "healthcheck"

// healthcheck is the container healthcheck of an image without a shell:
// it reads the configuration the replicator itself reads (STRATA_*
// environment, then args), dials the replicator's own --listen address
// (loopback when that is a wildcard) with the replicator's own
// certificate, expecting the listener to present that same identity, and
// calls grpc.health.v1 Check for the whole server. It returns nil and
// writes one line to stdout when the answer is SERVING, else an error
// saying why.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := config.Parse(args, getenv)
	if err != nil {
		return err
	}
	addr, err := hcheck.LocalAddr(cfg.Listen)
	if err != nil {
		return err
	}
	_, tc, err := loadTLS(cfg.TLSCert, cfg.TLSKey, cfg.TLSCA)
	if err != nil {
		return err
	}
	leaf := tc.Certificates[0].Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(tc.Certificates[0].Certificate[0]); err != nil {
			return fmt.Errorf("tls key pair: %w", err)
		}
	}
	// The certificate's CN (replicator-<id>) is one of its DNS names.
	tc.ServerName = leaf.Subject.CommonName
	return hcheck.GRPC(ctx, addr, credentials.NewTLS(tc), stdout)
}
