package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

// DefaultBroker is the broker used when neither a flag nor a context names one.
const DefaultBroker = "127.0.0.1:9092"

// globals are the flags every command accepts.
type globals struct {
	context  string
	brokers  string
	ca       string
	cert     string
	key      string
	admin    string
	insecure boolFlag
	json     bool
	timeout  time.Duration
}

// boolFlag remembers whether it was set, so a flag can override a context.
type boolFlag struct{ set, v bool }

func (b *boolFlag) String() string   { return fmt.Sprint(b.v) }
func (b *boolFlag) IsBoolFlag() bool { return true }
func (b *boolFlag) Set(s string) error {
	switch s {
	case "true", "1":
		b.v = true
	case "false", "0":
		b.v = false
	default:
		return fmt.Errorf("not a boolean: %q", s)
	}
	b.set = true
	return nil
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.context, "context", g.context, "use this `name`d context (default: $STRATA_CONTEXT, then the current one)")
	fs.StringVar(&g.brokers, "brokers", g.brokers, "comma-separated broker `addresses` (overrides the context)")
	fs.StringVar(&g.ca, "ca", g.ca, "CA certificate `file` (PEM) to verify brokers")
	fs.StringVar(&g.cert, "cert", g.cert, "client certificate `file` (PEM) for mutual TLS")
	fs.StringVar(&g.key, "key", g.key, "client key `file` (PEM)")
	fs.StringVar(&g.admin, "admin", g.admin, "admin API `url` (https://host:port; overrides the context, default $STRATA_ADMIN)")
	fs.Var(&g.insecure, "insecure", "use plaintext connections (no TLS)")
	fs.BoolVar(&g.json, "json", g.json, "print JSON instead of tables")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound the whole command (0: none)")
}

// env is what a running command sees.
type env struct {
	io  IO
	g   *globals
	cmd *command
}

// resolve merges the selected context with the flags.
func (e *env) resolve() (Context, error) {
	var c Context
	name := e.g.context
	if name == "" {
		name = e.io.Getenv("STRATA_CONTEXT")
	}
	path, err := contextPath(e.io.Getenv)
	if err != nil && name != "" {
		return c, err
	}
	if err == nil {
		cf, err := loadContexts(path)
		if err != nil {
			return c, err
		}
		if name == "" {
			name = cf.Current
		}
		if name != "" {
			ctx, ok := cf.Contexts[name]
			if !ok {
				return c, fmt.Errorf("context %q not found in %s", name, path)
			}
			c = *ctx
		}
	}
	if e.g.brokers != "" {
		c.Brokers = splitList(e.g.brokers)
	} else if b := e.io.Getenv("STRATA_BROKERS"); b != "" && len(c.Brokers) == 0 {
		c.Brokers = splitList(b)
	}
	if len(c.Brokers) == 0 {
		c.Brokers = []string{DefaultBroker}
	}
	if e.g.ca != "" {
		c.CA = e.g.ca
	}
	if e.g.cert != "" {
		c.Cert = e.g.cert
	}
	if e.g.key != "" {
		c.Key = e.g.key
	}
	tlsFlags := e.g.ca != "" || e.g.cert != "" || e.g.key != ""
	switch {
	case e.g.insecure.set:
		c.Insecure = e.g.insecure.v
		if c.Insecure && !tlsFlags {
			// --insecure on the command line replaces the context's TLS
			// files rather than conflicting with them.
			c.CA, c.Cert, c.Key = "", "", ""
		}
	case tlsFlags:
		c.Insecure = false // TLS files on the command line replace an insecure context
	}
	if e.g.admin != "" {
		c.Admin = e.g.admin
	} else if a := e.io.Getenv("STRATA_ADMIN"); a != "" && c.Admin == "" {
		c.Admin = a
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tlsConfig builds the mutual TLS config of a context: TLS 1.3 minimum,
// RootCAs from the CA file, the client key pair. It returns nil, nil for
// an insecure context.
func tlsConfig(c Context) (*tls.Config, error) {
	if c.Insecure {
		if c.CA != "" || c.Cert != "" || c.Key != "" {
			return nil, usagef("--insecure conflicts with --ca/--cert/--key")
		}
		return nil, nil
	}
	if c.CA == "" && c.Cert == "" && c.Key == "" {
		return nil, usagef("no TLS settings: pass --ca, --cert and --key (or a context with them), or --insecure for plaintext")
	}
	if c.CA == "" {
		return nil, usagef("--ca is required with TLS")
	}
	if (c.Cert == "") != (c.Key == "") {
		return nil, usagef("--cert and --key go together")
	}
	pem, err := os.ReadFile(c.CA)
	if err != nil {
		return nil, fmt.Errorf("read CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CA)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}
	if c.Cert != "" {
		kp, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

// connect makes a client from the resolved context.
func (e *env) connect(ctx context.Context) (*client.Client, error) {
	c, err := e.resolve()
	if err != nil {
		return nil, err
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cl, err := client.New(cctx, client.Config{Brokers: c.Brokers, TLS: tc, Insecure: tc == nil})
	if err != nil {
		if errors.Is(err, client.ErrNoBrokers) || errors.Is(err, context.DeadlineExceeded) {
			if p := explainBrokers(ctx, c.Brokers, tc, err); p != nil {
				return nil, p
			}
			return nil, fmt.Errorf("cannot reach brokers %s: %w", strings.Join(c.Brokers, ","), err)
		}
		return nil, err
	}
	return cl, nil
}

// withTimeout applies --timeout.
func (e *env) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.g.timeout > 0 {
		return context.WithTimeout(ctx, e.g.timeout)
	}
	return context.WithCancel(ctx)
}

// topicErr makes "topic "x" not found" out of the client's not-found error.
func topicErr(topic string, err error) error {
	if errors.Is(err, client.ErrTopicNotFound) {
		return fmt.Errorf("topic %q not found", topic)
	}
	if errors.Is(err, client.ErrPartitionNotFound) {
		return fmt.Errorf("topic %q: %w", topic, err)
	}
	return err
}
