package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-log/strata/services/replicator/internal/config"
)

// healthcheckCommand is the first argument that runs healthcheck instead
// of the replicator: `strata-replicator healthcheck [flags]`.
const healthcheckCommand = "healthcheck"

// healthcheckTimeout bounds the whole check (dial, handshake, RPC).
const healthcheckTimeout = 3 * time.Second

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
	addr, err := localAddr(cfg.Listen)
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
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err = errors.Join(err, conn.Close()); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s: %s", addr, st)
	}
	_, err = fmt.Fprintf(stdout, "%s SERVING\n", addr)
	return err
}

// localAddr is the address to dial for a listen address: its own host,
// or loopback when it listens on every interface.
func localAddr(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen %q: %w", listen, err)
	}
	switch ip := net.ParseIP(host); {
	case host == "" || (ip != nil && ip.IsUnspecified() && ip.To4() != nil):
		host = "127.0.0.1"
	case ip != nil && ip.IsUnspecified():
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// oneLine flattens a (possibly joined) error into the single line a
// healthcheck prints.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
