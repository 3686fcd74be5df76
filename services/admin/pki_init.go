package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/pki"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// pkiInitConfig is the configuration of `pki init`.
type pkiInitConfig struct {
	Out    string
	CAName string
	Nodes  []string
	Hosts  []string
}

// Validate says exactly what is missing or wrong.
func (c pkiInitConfig) Validate() error {
	var errs []error
	if c.Out == "" {
		errs = append(errs, errors.New("--out is required"))
	}
	if c.CAName == "" {
		errs = append(errs, errors.New("--ca-name is required"))
	}
	if len(c.Nodes) == 0 {
		errs = append(errs, errors.New("at least one --node is required"))
	}
	seen := make(map[string]bool, len(c.Nodes))
	for _, n := range c.Nodes {
		if seen[n] {
			errs = append(errs, fmt.Errorf("--node %q given twice", n))
		}
		seen[n] = true
	}
	return errors.Join(errs...)
}

// parsePKIInit parses the flags of `pki init`.
func parsePKIInit(args []string, stderr io.Writer) (pkiInitConfig, error) {
	var cfg pkiInitConfig
	var nodes, hosts stringList
	fs := flag.NewFlagSet("strata-admin pki init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Out, "out", "", "directory to write the CA and key pairs into (created 0700)")
	fs.StringVar(&cfg.CAName, "ca-name", "", "common name of the cluster CA")
	fs.Var(&nodes, "node", "node id (repeatable); writes broker-ID and replicator-ID")
	fs.Var(&hosts, "host", "extra DNS name or IP added to every server certificate written by this run (repeatable; kept certificates are not reissued)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, fmt.Errorf("%w: pki init: %w", errUsage, err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("%w: pki init: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg.Nodes, cfg.Hosts = nodes, hosts
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: pki init: %w", errUsage, err)
	}
	return cfg, nil
}

// runPKIInit writes (or completes) a cluster's PKI directory and reports
// what it wrote and what it kept.
func runPKIInit(args []string, stdout, stderr io.Writer) error {
	cfg, err := parsePKIInit(args, stderr)
	if err != nil {
		return err
	}
	opts := pki.ClusterOptions{CAName: cfg.CAName, Nodes: cfg.Nodes}
	if len(cfg.Hosts) > 0 {
		// Keep the defaults (localhost, 127.0.0.1) and add the extra hosts.
		opts.CommonHosts = append([]string{"localhost", "127.0.0.1"}, cfg.Hosts...)
	}
	res, err := pki.InitCluster(cfg.Out, opts, zap.NewNop())
	if err != nil {
		return fmt.Errorf("pki init: %w", err)
	}
	if res.CACreated {
		fmt.Fprintf(stdout, "wrote CA     %s\n", cfg.Out+"/"+pki.CAFileName)
	} else {
		fmt.Fprintf(stdout, "kept  CA     %s\n", cfg.Out+"/"+pki.CAFileName)
	}
	for _, name := range res.Written {
		fmt.Fprintf(stdout, "wrote        %s\n", pki.DirFiles(cfg.Out, name).CertFile)
	}
	for _, name := range res.Kept {
		fmt.Fprintf(stdout, "kept         %s\n", pki.DirFiles(cfg.Out, name).CertFile)
	}
	return nil
}
