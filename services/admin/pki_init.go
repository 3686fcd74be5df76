package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/atomicfile"
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
	wrote, err := ensureGossipKey(cfg.Out)
	if err != nil {
		return fmt.Errorf("pki init: gossip key: %w", err)
	}
	if wrote {
		fmt.Fprintf(stdout, "wrote        %s\n", filepath.Join(cfg.Out, gossipKeyFileName))
	} else {
		fmt.Fprintf(stdout, "kept         %s\n", filepath.Join(cfg.Out, gossipKeyFileName))
	}
	return nil
}

// gossipKeyFileName is the Serf gossip encryption key pki init keeps beside
// the certificates: base64 of 32 random bytes and a newline, mode 0600, the
// file strata-replicator --cluster-key-file reads.
const gossipKeyFileName = "gossip.key"

// gossipKeyBytes is the key length (AES-256).
const gossipKeyBytes = 32

// ensureGossipKey writes dir/gossip.key unless it exists. An existing key
// is checked and never replaced: every replicator must hold the same one.
// It reports whether it wrote the file.
func ensureGossipKey(dir string) (wrote bool, err error) {
	path := filepath.Join(dir, gossipKeyFileName)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := checkGossipKey(b); err != nil {
			return false, fmt.Errorf("%s: %w (remove it to have a new key written)", path, err)
		}
		return false, nil
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	key := make([]byte, gossipKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return false, err
	}
	// Written atomically: a crash never leaves a truncated key behind.
	if err := atomicfile.Write(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return false, err
	}
	return true, nil
}

// checkGossipKey accepts what ensureGossipKey writes, surrounding
// whitespace ignored.
func checkGossipKey(b []byte) error {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("not base64: %w", err)
	}
	if len(k) != gossipKeyBytes {
		return fmt.Errorf("want %d bytes, got %d", gossipKeyBytes, len(k))
	}
	return nil
}
