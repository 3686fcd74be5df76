package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/envflag"
	hcheck "github.com/strata-log/strata/pkg/healthcheck"
	"github.com/strata-log/strata/pkg/pki"
)

// healthcheckConfig is the part of serve's configuration the check needs.
type healthcheckConfig struct {
	Listen  string
	TLSCert string
	TLSKey  string
	TLSCA   string
}

// parseHealthcheck reads serve's --listen and TLS flags, each also from its
// STRATA_<FLAG> environment variable (pkg/envflag: the flag wins). Its
// errors are not usage errors: Docker reserves exit status 2, so every
// failure is 1.
func parseHealthcheck(args []string, getenv func(string) string, stderr io.Writer) (healthcheckConfig, error) {
	cfg := healthcheckConfig{Listen: defaultServeConfig().Listen}
	fs := flag.NewFlagSet("strata-admin healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "serve's HTTPS listen address (a wildcard is dialled on loopback)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "admin certificate (PEM); the server must present the same identity")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "admin private key (PEM)")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "cluster CA certificate (PEM)")
	if err := envflag.Parse(fs, args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	for _, f := range []struct{ name, v string }{{"--tls-cert", cfg.TLSCert}, {"--tls-key", cfg.TLSKey}, {"--tls-ca", cfg.TLSCA}} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is required", f.name))
		}
	}
	return cfg, errors.Join(errs...)
}

// runHealthcheck is `strata-admin healthcheck`, the container healthcheck
// of an image without a shell: GET /healthz on serve's own listener
// (loopback when it listens on a wildcard) over mutual TLS with the admin's
// own certificate, expecting the server to present that same identity.
// It writes one line to stdout on 200 and returns a one-line error
// otherwise.
func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseHealthcheck(args, getenv, stderr)
	if errors.Is(err, errHelp) {
		return err
	}
	if err == nil {
		err = healthcheck(ctx, cfg, stdout)
	}
	if err != nil {
		return fmt.Errorf("healthcheck: %s", hcheck.OneLine(err))
	}
	return nil
}

func healthcheck(ctx context.Context, cfg healthcheckConfig, stdout io.Writer) error {
	addr, err := hcheck.LocalAddr(cfg.Listen)
	if err != nil {
		return err
	}
	r, err := pki.NewReloader(pki.Files{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, CAFile: cfg.TLSCA}, pki.ReloaderOptions{}, zap.NewNop())
	if err != nil {
		return err
	}
	// The admin certificate's CN is one of its DNS names.
	tc, err := r.ClientConfig(r.Leaf().Subject.CommonName)
	if err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: tc, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, hcheck.Timeout)
	defer cancel()
	url := "https://" + addr + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if err = errors.Join(err, resp.Body.Close()); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	_, err = fmt.Fprintf(stdout, "%s healthy\n", url)
	return err
}
