package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/strata-log/strata/pkg/pki"
	"github.com/strata-log/strata/services/broker/internal/config"
)

// healthcheckCommand is the first argument that runs healthcheck instead
// of the broker: `strata-broker healthcheck [flags]`.
const healthcheckCommand = "healthcheck"

// healthcheckTimeout bounds the whole check (dial, handshake, RPC).
const healthcheckTimeout = 3 * time.Second

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
	addr, err := localAddr(cfg.Listen)
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
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
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
