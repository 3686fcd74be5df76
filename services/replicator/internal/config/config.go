// Package config is the replicator's configuration: defaults, flags and
// STRATA_* environment variables, and validation.
package config

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/envflag"
	"github.com/strata-log/strata/pkg/grpctls/localsock"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/replicator/internal/liveness"
	"github.com/strata-log/strata/services/replicator/internal/membership"
)

// Config is everything the replicator needs to start.
type Config struct {
	// NodeID is this node's id (> 0); its certificate CN is replicator-<id>.
	NodeID int
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// SerfBind and SerfAdvertise are the gossip addresses (host:port).
	SerfBind, SerfAdvertise string
	// Join is the Serf seed list.
	Join []string
	// RaftBind and RaftAdvertise are the Raft transport addresses.
	RaftBind, RaftAdvertise string
	// Listen and Advertise are the replicator's gRPC addresses.
	Listen, Advertise string
	// BrokerAddr is where this replicator reaches its local broker. It is
	// also gossiped (tag broker_internal) as the address the other nodes'
	// fetchers dial, so it must be reachable from them.
	BrokerAddr string
	// BrokerLocalSocket, when set, is the Unix domain socket on which the
	// local broker serves LocalReplica (its --local-socket): the fetchers'
	// appends and truncations go there, in plain gRPC without TLS, the
	// broker's uid checked (SO_PEERCRED, BrokerLocalSocketUID); everything
	// else still goes to BrokerAddr over mutual TLS. Empty: all over TCP.
	BrokerLocalSocket string
	// BrokerLocalSocketUID is the uid the process serving
	// BrokerLocalSocket must run as; -1 (the default) means this
	// replicator's own.
	BrokerLocalSocketUID int64
	// ACLAdminURL, when set, is the admin service ("https://host:port")
	// whose ACL policy this replicator follows (a long-poll watch); the last
	// policy applied is kept under DataDir/acl and enforced while admin is
	// down. Empty means the built-in default policy (or the cached one).
	ACLAdminURL string
	// BrokerAdvertise is the broker's address for clients, gossiped in tags.
	BrokerAdvertise string
	// ClusterKey is the base64 32-byte gossip key.
	ClusterKey string
	// ClusterKeyFile names a file holding ClusterKey (surrounding
	// whitespace ignored); Parse reads it into ClusterKey. Exclusive with
	// ClusterKey.
	ClusterKeyFile string
	// BootstrapExpect, when > 0, bootstraps Raft once that many members are seen.
	BootstrapExpect int
	// Bootstrap starts a single-node cluster (first node only).
	Bootstrap bool
	// TLSCert, TLSKey and TLSCA are PEM files: this replicator's key pair and the cluster CA.
	TLSCert, TLSKey, TLSCA string
	// MetricsListen serves /metrics; empty disables.
	MetricsListen string
	// Pprof also serves net/http/pprof under /debug/pprof/ on the metrics
	// listener, for profiling.
	Pprof bool
	// PreferredLeaderInterval is the period of the preferred-leader pass; negative disables.
	PreferredLeaderInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// LogLevel is the lowest level logged: debug, info, warn or error.
	LogLevel string
	// LogFormat is json, console, or empty: console on a terminal, JSON
	// otherwise (pkg/telemetry).
	LogFormat string
	// MaxConns caps the connections open at once on each TCP listener
	// (gRPC, Raft, metrics); past it new connections are closed at once.
	MaxConns int
	// MaxConnsPerIP caps the connections open at once on each TCP listener
	// from one remote address (an IPv4 address or an IPv6 /64).
	MaxConnsPerIP int
	// HandshakeTimeout bounds a gRPC connection's TLS handshake and
	// HTTP/2 preface (at most 10s).
	HandshakeTimeout time.Duration
	// MaxConcurrentStreams is the HTTP/2 limit of streams on one gRPC
	// connection.
	MaxConcurrentStreams uint32
	// MaxStreamsPerIdentity caps the calls one client identity has in
	// flight over all its connections (past it: ResourceExhausted).
	MaxStreamsPerIdentity int
	// BrokerProbeInterval is how often the local broker's health is asked
	// (internal/liveness); BrokerProbeTimeout bounds one probe, and
	// BrokerProbeFailures probes failed in a row report the broker down
	// (gossiped; the controller then moves its leaderships). A killed
	// broker is reported down within Interval*Failures, a hung one within
	// about Timeout*Failures.
	BrokerProbeInterval, BrokerProbeTimeout time.Duration
	BrokerProbeFailures                     int
	// BrokerReconnectBackoff caps the wait between two attempts to
	// connect to the local broker while it is away, so that it is used
	// again within about that long of its return.
	BrokerReconnectBackoff time.Duration
}

// Default returns the defaults for a single local node.
func Default() Config {
	return Config{
		NodeID:                  1,
		DataDir:                 "data/replicator",
		SerfBind:                "0.0.0.0:7946",
		RaftBind:                "0.0.0.0:7947",
		Listen:                  "0.0.0.0:9093",
		BrokerAddr:              "127.0.0.1:9092",
		MetricsListen:           "0.0.0.0:9193",
		PreferredLeaderInterval: 30 * time.Second,
		ShutdownTimeout:         10 * time.Second,
		LogLevel:                "info",
		// A replicator's callers are its broker, the other nodes, admin
		// and the CLI: 1024 is far past a cluster's needs and well inside
		// the descriptors the process has. 64 per address leaves room for
		// a node's pooled Raft and gRPC connections, while a flood from
		// one address gets a sixteenth of the slots.
		MaxConns:      1024,
		MaxConnsPerIP: 64,
		// The local broker's connection carries the fetch streams of every
		// partition this node follows, and every client's forwarded call
		// arrives under the broker's identity.
		HandshakeTimeout:      10 * time.Second,
		MaxConcurrentStreams:  1000,
		MaxStreamsPerIdentity: 1024,
		// A killed broker is reported down 1-1.5s after it died; with the
		// gossip and the election that leaves the move of its leaderships
		// well inside issue 12's 6s. One or two slow probes change nothing.
		BrokerProbeInterval:    liveness.DefaultInterval,
		BrokerProbeTimeout:     liveness.DefaultTimeout,
		BrokerProbeFailures:    liveness.DefaultFailures,
		BrokerReconnectBackoff: 500 * time.Millisecond,
		BrokerLocalSocketUID:   -1,
	}
}

// Parse fills a Default config from args and STRATA_* environment
// variables (getenv, e.g. os.Getenv; pkg/envflag: a flag in args wins).
func Parse(args []string, getenv func(string) string) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("strata-replicator", flag.ContinueOnError)
	var join string
	fs.IntVar(&c.NodeID, "node-id", c.NodeID, "node id (> 0); the TLS identity is replicator-<id>")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for Raft state")
	fs.StringVar(&c.SerfBind, "serf-bind", c.SerfBind, "Serf gossip bind address host:port")
	fs.StringVar(&c.SerfAdvertise, "serf-advertise", c.SerfAdvertise, "Serf advertised address (default: bind)")
	fs.StringVar(&join, "join", "", "comma-separated Serf seed addresses")
	fs.StringVar(&c.RaftBind, "raft-bind", c.RaftBind, "Raft bind address host:port")
	fs.StringVar(&c.RaftAdvertise, "raft-advertise", c.RaftAdvertise, "Raft advertised address (default: bind)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "replicator gRPC listen address")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "replicator gRPC advertised address (default: listen)")
	fs.StringVar(&c.BrokerAddr, "broker-addr", c.BrokerAddr, "the local broker's gRPC address; the other nodes' fetchers dial it too")
	fs.StringVar(&c.BrokerLocalSocket, "broker-local-socket", c.BrokerLocalSocket, "the local broker's Unix domain socket (its --local-socket): appends go there in plain gRPC, the broker's uid checked; empty: mutual TLS over broker-addr")
	fs.Int64Var(&c.BrokerLocalSocketUID, "broker-local-socket-uid", c.BrokerLocalSocketUID, "the uid the broker behind broker-local-socket must run as (-1: this replicator's own)")
	fs.StringVar(&c.BrokerAdvertise, "broker-advertise", c.BrokerAdvertise, "the broker's advertised address for clients (default: broker-addr)")
	fs.StringVar(&c.ClusterKey, "cluster-key", c.ClusterKey, "base64 32-byte gossip encryption key")
	fs.StringVar(&c.ACLAdminURL, "acl-admin-url", c.ACLAdminURL, "admin service https://host:port whose ACL policy to follow")
	fs.StringVar(&c.ClusterKeyFile, "cluster-key-file", c.ClusterKeyFile, "file holding the base64 gossip key (exclusive with --cluster-key)")
	fs.IntVar(&c.BootstrapExpect, "bootstrap-expect", c.BootstrapExpect, "bootstrap Raft once this many members are seen")
	fs.BoolVar(&c.Bootstrap, "bootstrap", c.Bootstrap, "bootstrap a single-node cluster")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "certificate PEM file")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "key PEM file")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "cluster CA PEM file")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "/metrics listen address; empty disables")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "also serve /debug/pprof/ on the metrics listener (profiling; plain HTTP)")
	fs.DurationVar(&c.PreferredLeaderInterval, "preferred-leader-interval", c.PreferredLeaderInterval, "preferred leader rebalancing period; negative disables")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful shutdown bound")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: json or console (default: console on a terminal, else json)")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "connections open at once on each listener (gRPC, Raft, metrics); more are closed at once")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "connections open at once on each listener from one remote address (IPv4, or IPv6 /64)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", c.HandshakeTimeout, "disconnect a gRPC client that has not finished its TLS handshake and HTTP/2 preface in this duration (at most 10s)")
	fs.Func("max-concurrent-streams", "HTTP/2 streams per gRPC connection (default 1000)", func(v string) error {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return err
		}
		c.MaxConcurrentStreams = uint32(n)
		return nil
	})
	fs.IntVar(&c.MaxStreamsPerIdentity, "max-streams-per-identity", c.MaxStreamsPerIdentity, "calls one client identity may have in flight over all its connections (more fail ResourceExhausted)")
	fs.DurationVar(&c.BrokerProbeInterval, "broker-probe-interval", c.BrokerProbeInterval, "how often the local broker's health is probed")
	fs.DurationVar(&c.BrokerProbeTimeout, "broker-probe-timeout", c.BrokerProbeTimeout, "bound of one probe of the local broker")
	fs.IntVar(&c.BrokerProbeFailures, "broker-probe-failures", c.BrokerProbeFailures, "probes failed in a row that report the local broker down (its leaderships move)")
	fs.DurationVar(&c.BrokerReconnectBackoff, "broker-reconnect-backoff", c.BrokerReconnectBackoff, "longest wait between two attempts to connect to the local broker while it is away")

	// STRATA_NODE_ID for --node-id and so on; a flag in args wins.
	if err := envflag.Parse(fs, args, getenv); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("config: unexpected arguments %q", fs.Args())
	}
	if c.ClusterKeyFile != "" {
		if c.ClusterKey != "" {
			return Config{}, errors.New("config: cluster-key and cluster-key-file are exclusive (STRATA_CLUSTER_KEY counts too)")
		}
		b, err := os.ReadFile(c.ClusterKeyFile)
		if err != nil {
			return Config{}, fmt.Errorf("config: cluster-key-file: %w", err)
		}
		c.ClusterKey = strings.TrimSpace(string(b))
	}
	if join != "" {
		c.Join = nil
		for _, s := range strings.Split(join, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.Join = append(c.Join, s)
			}
		}
	}
	if c.SerfAdvertise == "" {
		c.SerfAdvertise = c.SerfBind
	}
	if c.RaftAdvertise == "" {
		c.RaftAdvertise = c.RaftBind
	}
	if c.Advertise == "" {
		c.Advertise = c.Listen
	}
	if c.BrokerAdvertise == "" {
		c.BrokerAdvertise = c.BrokerAddr
	}
	return c, c.Validate()
}

// FromEnviron is Parse with the process environment.
func FromEnviron(args []string) (Config, error) { return Parse(args, os.Getenv) }

// Validate checks the config and says exactly what is wrong.
func (c Config) Validate() error {
	var errs []error
	if c.ACLAdminURL != "" {
		if _, err := acl.AdminBaseURL(c.ACLAdminURL); err != nil {
			errs = append(errs, fmt.Errorf("acl-admin-url: %w", err))
		}
	}
	if c.NodeID <= 0 || c.NodeID > 1<<31-1 {
		errs = append(errs, fmt.Errorf("node-id must be a positive 32-bit integer, got %d", c.NodeID))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir is required"))
	}
	for _, a := range []struct{ name, v string }{
		{"serf-bind", c.SerfBind}, {"serf-advertise", c.SerfAdvertise}, {"raft-bind", c.RaftBind},
		{"raft-advertise", c.RaftAdvertise}, {"listen", c.Listen}, {"advertise", c.Advertise},
		{"broker-addr", c.BrokerAddr}, {"broker-advertise", c.BrokerAdvertise},
	} {
		if err := checkHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.name, err))
		}
	}
	for _, a := range []struct{ name, v string }{{"raft-advertise", c.RaftAdvertise}, {"serf-advertise", c.SerfAdvertise}, {"advertise", c.Advertise}, {"broker-addr", c.BrokerAddr}} {
		if h, _, err := net.SplitHostPort(a.v); err == nil && (h == "" || h == "0.0.0.0" || h == "::") {
			errs = append(errs, fmt.Errorf("%s %q must name a reachable host, not a wildcard (set it explicitly)", a.name, a.v))
		}
	}
	for _, j := range c.Join {
		if err := checkHostPort(j); err != nil {
			errs = append(errs, fmt.Errorf("join %q: %w", j, err))
		}
	}
	if _, err := membership.DecodeClusterKey(c.ClusterKey); err != nil {
		from := "cluster-key"
		if c.ClusterKeyFile != "" {
			from = fmt.Sprintf("cluster-key-file %s", c.ClusterKeyFile)
		}
		errs = append(errs, fmt.Errorf("%s: %w", from, err))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect must be >= 0, got %d", c.BootstrapExpect))
	}
	if c.Bootstrap && c.BootstrapExpect > 0 {
		errs = append(errs, errors.New("bootstrap and bootstrap-expect are exclusive"))
	}
	if c.TLSCert == "" || c.TLSKey == "" || c.TLSCA == "" {
		errs = append(errs, errors.New("tls-cert, tls-key and tls-ca are required (mutual TLS everywhere)"))
	}
	if c.MetricsListen != "" {
		if err := checkHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics-listen: %w", err))
		}
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown-timeout must be > 0, got %s", c.ShutdownTimeout))
	}
	if c.HandshakeTimeout <= 0 || c.HandshakeTimeout > 10*time.Second {
		errs = append(errs, fmt.Errorf("handshake-timeout must be in (0, 10s], got %s", c.HandshakeTimeout))
	}
	if c.MaxConcurrentStreams < 1 {
		errs = append(errs, fmt.Errorf("max-concurrent-streams must be >= 1, got %d", c.MaxConcurrentStreams))
	}
	if c.MaxStreamsPerIdentity < 1 {
		errs = append(errs, fmt.Errorf("max-streams-per-identity must be >= 1, got %d", c.MaxStreamsPerIdentity))
	}
	if c.MaxConns < 1 {
		errs = append(errs, fmt.Errorf("max-conns must be >= 1, got %d", c.MaxConns))
	}
	if c.MaxConnsPerIP < 1 || c.MaxConnsPerIP > c.MaxConns {
		errs = append(errs, fmt.Errorf("max-conns-per-ip must be >= 1 and <= max-conns (%d), got %d", c.MaxConns, c.MaxConnsPerIP))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"broker-probe-interval", c.BrokerProbeInterval}, {"broker-probe-timeout", c.BrokerProbeTimeout}, {"broker-reconnect-backoff", c.BrokerReconnectBackoff}} {
		if d.v < 10*time.Millisecond {
			errs = append(errs, fmt.Errorf("%s must be >= 10ms, got %s", d.name, d.v))
		}
	}
	if len(c.BrokerLocalSocket) > localsock.MaxPathLen {
		errs = append(errs, fmt.Errorf("broker-local-socket %q: at most %d bytes (the kernel's limit for a socket path)", c.BrokerLocalSocket, localsock.MaxPathLen))
	}
	if c.BrokerLocalSocketUID < -1 || c.BrokerLocalSocketUID > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("broker-local-socket-uid must be -1 (this replicator's own uid) or a uid, got %d", c.BrokerLocalSocketUID))
	}
	if c.BrokerProbeFailures < 1 {
		errs = append(errs, fmt.Errorf("broker-probe-failures must be >= 1, got %d", c.BrokerProbeFailures))
	}
	if err := c.LogOptions().Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("config: %w", errors.Join(errs...))
	}
	return nil
}

func checkHostPort(s string) error {
	_, p, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(p); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", p)
	}
	return nil
}

// BrokerLocalSocketPeerUID is the uid the broker behind
// BrokerLocalSocket must have.
func (c Config) BrokerLocalSocketPeerUID() uint32 {
	if c.BrokerLocalSocketUID < 0 {
		return uint32(os.Getuid())
	}
	return uint32(c.BrokerLocalSocketUID)
}

// LogOptions are the logger's options (pkg/telemetry) from the log flags.
func (c Config) LogOptions() telemetry.LogOptions {
	return telemetry.LogOptions{Level: c.LogLevel, Format: c.LogFormat}
}
