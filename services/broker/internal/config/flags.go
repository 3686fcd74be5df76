package config

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/strata-log/strata/pkg/envflag"
)

// Parse fills a Config from Default(), then args and the STRATA_*
// environment (read through getenv; pkg/envflag: a flag given in args
// wins), and validates it. Usage goes to out; -h returns flag.ErrHelp.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	c := Default()
	fs := flag.NewFlagSet("strata-broker", flag.ContinueOnError)
	fs.SetOutput(out)
	td := &c.TopicDefaults

	fs.Func("node-id", "`id` of this broker (default 1)", int32Setter(&c.NodeID))
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "`dir`ectory of topic logs and configs")
	fs.StringVar(&c.Listen, "listen", c.Listen, "gRPC listen `address` (0.0.0.0:9092 in containers, with --advertise)")
	fs.StringVar(&c.Advertise, "advertise", c.Advertise, "`address` clients dial (default: --listen)")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "Prometheus /metrics HTTP `address` (empty: off)")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "also serve /debug/pprof/ on the metrics listener (profiling; plain HTTP)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log `level`: debug, info, warn, error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: json or console (default: console on a terminal, else json)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate `file` of this broker (mutual TLS with --tls-key, --tls-ca)")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM private key `file` of --tls-cert")
	fs.StringVar(&c.TLSCA, "tls-ca", c.TLSCA, "PEM CA `file` client certificates must chain to")
	fs.StringVar(&c.ACLPolicy, "acl-policy", c.ACLPolicy, "policy `file` (pkg/acl CSV lines) authorizing mTLS callers (default: the built-in policy)")
	fs.StringVar(&c.ACLAdminURL, "acl-admin-url", c.ACLAdminURL, "admin service `url` (https://host:port) whose ACL policy the broker watches and enforces")
	fs.StringVar(&c.ReplicatorAddr, "replicator-addr", c.ReplicatorAddr, "cluster mode: this node's replicator `host:port` (partition roles and topic admin come from it)")
	fs.DurationVar(&c.ReplicaLagMax, "replica-lag-max", c.ReplicaLagMax, "cluster mode: how long a follower may lag before it leaves the ISR")
	fs.DurationVar(&c.ProducerIDExpiry, "producer-id-expiry", c.ProducerIDExpiry, "forget an idempotent producer id that wrote nothing to a partition for this `long` (its retries after that are new records)")
	fs.StringVar(&c.LocalSocket, "local-socket", c.LocalSocket, "cluster mode: also serve LocalReplica to this node's replicator on a Unix domain socket at `path`, plain gRPC without TLS, its peer admitted by uid (empty: off)")
	fs.Int64Var(&c.LocalSocketPeerUID, "local-socket-peer-uid", c.LocalSocketPeerUID, "the `uid` a local socket peer must have (-1: the broker's own)")
	fs.DurationVar(&c.LeaderLease, "leader-lease", c.LeaderLease, "cluster mode: a partition leader refuses produce when its replicator has not confirmed the leadership for this `long` (keep below the failure detection time less 2s)")
	fs.BoolVar(&c.InsecureNoAuth, "insecure-no-auth", c.InsecureNoAuth, "serve plaintext gRPC with NO authentication or authorization (local development only)")
	fs.BoolVar(&c.AutoCreateTopics, "auto-create-topics", c.AutoCreateTopics, "create unknown topics with the defaults on first produce")

	fs.Func("default-partitions", "partitions of a new topic (`n`, default 1)", int32Setter(&td.Partitions))
	fs.Func("default-replication-factor", "replication factor of a new topic (`n`, default 1)", int32Setter(&td.ReplicationFactor))
	fs.Int64Var(&td.RetentionBytes, "default-retention-bytes", td.RetentionBytes, "retention `bytes` per partition (-1: unlimited)")
	fs.Func("default-retention", "retention `duration` (-1: unlimited, default 168h)", msSetter(&td.RetentionMs, true))
	fs.Int64Var(&td.SegmentBytes, "default-segment-bytes", td.SegmentBytes, "segment size in `bytes`")
	fs.Func("default-segment-age", "roll a segment older than this `duration` (default 168h)", msSetter(&td.SegmentMs, false))
	fs.Func("default-max-record-bytes", "largest record in `bytes` (default 1048576)", int32Setter(&td.MaxRecordBytes))
	fs.StringVar(&td.Fsync, "default-fsync", td.Fsync, "fsync `policy`: always, never or interval:<duration>")
	fs.Func("default-min-insync-replicas", "min in-sync replicas for acks=ALL (`n`, default 1)", int32Setter(&td.MinInsyncReplicas))

	fs.IntVar(&c.MaxRecvMsgBytes, "max-recv-msg-bytes", c.MaxRecvMsgBytes, "largest gRPC message accepted, in `bytes`")
	fs.IntVar(&c.MaxSendMsgBytes, "max-send-msg-bytes", c.MaxSendMsgBytes, "largest gRPC message sent, in `bytes`")
	fs.Func("max-concurrent-streams", "HTTP/2 streams per connection (`n`, default 1000)", uint32Setter(&c.MaxConcurrentStreams))
	fs.IntVar(&c.MaxOpenStreams, "max-open-streams", c.MaxOpenStreams, "streaming RPCs open on the server (`n`)")
	fs.IntVar(&c.ProduceStreamInFlight, "produce-stream-in-flight", c.ProduceStreamInFlight, "unanswered batches per ProduceStream (`n`)")
	fs.IntVar(&c.MaxStreamsPerIdentity, "max-streams-per-identity", c.MaxStreamsPerIdentity, "calls one client identity may have in flight over all its connections (`n`; more fail ResourceExhausted)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", c.HandshakeTimeout, "disconnect a client that has not finished its TLS handshake and HTTP/2 preface in this `duration` (at most 10s)")
	fs.IntVar(&c.MaxConns, "max-conns", c.MaxConns, "connections open at once on each listener (gRPC, metrics); more are closed at once (`n`)")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", c.MaxConnsPerIP, "connections open at once on each listener from one remote address, IPv4 or IPv6 /64 (`n`)")
	fs.DurationVar(&c.KeepaliveMinTime, "keepalive-min-time", c.KeepaliveMinTime, "shortest client ping `interval` allowed")
	fs.DurationVar(&c.KeepaliveTime, "keepalive-time", c.KeepaliveTime, "ping a connection idle this `long`")
	fs.DurationVar(&c.KeepaliveTimeout, "keepalive-timeout", c.KeepaliveTimeout, "close a connection whose ping is unanswered this `long`")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "graceful stop `deadline` before RPCs are cut")
	fs.DurationVar(&c.RetentionCheckInterval, "retention-check-interval", c.RetentionCheckInterval, "how often retention runs (`duration`)")
	fs.DurationVar(&c.CompactionInterval, "compaction-interval", c.CompactionInterval, "how often partitions of topics with cleanup.policy=compact are cleaned (`duration`)")
	fs.DurationVar(&c.DataDirProbeInterval, "data-dir-probe-interval", c.DataDirProbeInterval, "how often a probe file is written to the data directory; while that fails the broker reports NOT_SERVING (`duration`)")

	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: strata-broker [flags]\n\nEvery flag can also be set by its %s<NAME> environment variable\n(--data-dir: %s); flags win.\n\n", envflag.Prefix, envflag.Name("data-dir"))
		fs.PrintDefaults()
	}

	if err := envflag.Parse(fs, args, getenv); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func int32Setter(p *int32) func(string) error {
	return func(s string) error {
		var v int32
		if _, err := fmt.Sscan(s, &v); err != nil {
			return fmt.Errorf("not a 32-bit integer: %q", s)
		}
		*p = v
		return nil
	}
}

func uint32Setter(p *uint32) func(string) error {
	return func(s string) error {
		var v uint32
		if _, err := fmt.Sscan(s, &v); err != nil {
			return fmt.Errorf("not an unsigned 32-bit integer: %q", s)
		}
		*p = v
		return nil
	}
}

// msSetter parses a duration into milliseconds; "-1" means unlimited when allowed.
func msSetter(p *int64, unlimited bool) func(string) error {
	return func(s string) error {
		if unlimited && s == "-1" {
			*p = -1
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		if d < time.Millisecond {
			return fmt.Errorf("must be >= 1ms, got %s", d)
		}
		*p = d.Milliseconds()
		return nil
	}
}
