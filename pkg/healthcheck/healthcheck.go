// Package healthcheck is what the services' `healthcheck` subcommands
// share: the container healthchecks of images without a shell, which dial
// the service's own listener as the service's own identity.
package healthcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Timeout bounds a whole check (dial, handshake, request).
const Timeout = 3 * time.Second

// LocalAddr is the address to dial for a listen address: its own host, or
// loopback when it listens on every interface.
func LocalAddr(listen string) (string, error) {
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

// OneLine flattens a (possibly joined) error into the single line a
// healthcheck prints.
func OneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// GRPC asks the gRPC server at addr (grpc.health.v1 Check for the whole
// server) within Timeout. It returns nil and writes one line to stdout when
// the answer is SERVING, else an error saying why.
func GRPC(ctx context.Context, addr string, creds credentials.TransportCredentials, stdout io.Writer) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
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
