// Package config holds the broker's configuration: defaults, validation and
// filling from flags and STRATA_* environment variables.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/grpctls/localsock"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// Config is everything the broker needs to start.
type Config struct {
	// NodeID identifies this broker in metadata (and later in the cluster).
	NodeID int32
	// DataDir holds topics/<topic>/<partition>/ logs and topic configs.
	DataDir string
	// Listen is the gRPC listen address.
	Listen string
	// Advertise is the address clients are told to dial; empty means Listen
	// (which then must not be a wildcard address).
	Advertise string
	// MetricsListen is the Prometheus /metrics HTTP address; empty disables it.
	MetricsListen string
	// Pprof also serves net/http/pprof under /debug/pprof/ on the metrics
	// listener (which is plain HTTP: keep it on loopback or a private network).
	Pprof bool
	// LogLevel is a zap level: debug, info, warn, error.
	LogLevel string
	// LogFormat is json, console, or empty: console on a terminal, JSON
	// otherwise (pkg/telemetry).
	LogFormat string
	// AutoCreateTopics creates an unknown topic (with the defaults) on first produce.
	AutoCreateTopics bool

	// TLSCert, TLSKey and TLSCA turn on mutual TLS for the gRPC listener
	// (all three or none): the broker's certificate and key, and the CA that
	// client certificates must chain to. The files reload when they change.
	TLSCert string
	TLSKey  string
	TLSCA   string

	// ACLPolicy names a policy file (pkg/acl CSV lines) authorizing calls
	// when TLS is on; empty means acl.DefaultPolicy. A valid cached policy
	// (<data-dir>/acl/policy.cache) wins over it at start.
	ACLPolicy string
	// ACLAdminURL, when set, is the admin service ("https://host:port"):
	// the broker watches its policy (long-poll as its own certificate) and
	// puts every newer version in force and in the cache, so a change
	// reaches it within seconds and survives a restart with admin down.
	ACLAdminURL string
	// InsecureNoAuth allows plaintext gRPC without TLS. Without TLS there is
	// no verified identity, so every caller may do everything: local
	// development only. Start refuses plaintext unless it is set.
	InsecureNoAuth bool

	// ReplicatorAddr turns on cluster mode: the address of this node's
	// replicator. The broker then takes each partition's role, leader epoch,
	// replicas and ISR from it (LocalReplica.ApplyPartitionState, accepted only
	// from the identity replicator-<node-id>), forwards topic administration
	// and Metadata to it, and serves a partition only while it leads it.
	// Cluster mode needs mutual TLS.
	ReplicatorAddr string
	// ReplicaLagMax is how long a follower may go without catching up to
	// the leader's log end before the leader asks to drop it from the ISR.
	ReplicaLagMax time.Duration
	// LocalSocket, in cluster mode, is a Unix domain socket path on which
	// the broker also serves LocalReplica, and only that, to its own
	// replicator running beside it (the replicator's
	// --broker-local-socket): plain gRPC without TLS, the peer admitted by
	// its uid (SO_PEERCRED, LocalSocketPeerUID), the socket mode 0600 in a
	// directory only the two share (pkg/grpctls/localsock). Empty: off;
	// the replicator then uses mutual TLS over TCP for everything.
	LocalSocket string
	// LocalSocketPeerUID is the uid a local socket peer must have; -1
	// (the default) means the broker's own.
	LocalSocketPeerUID int64
	// LeaderLease is how long, in cluster mode, a partition leader goes on
	// accepting produce after its replicator last confirmed the leadership
	// (the replicator re-confirms every quarter lease). A broker whose
	// replicator died or lost the Raft majority stops acknowledging writes
	// within it. Keep it below the controller's failure detection (Serf's,
	// 5 s or more) less the 2 s a replicator may lag the Raft leader, so
	// that the old leader stops before a new one is elected.
	LeaderLease time.Duration
	// ProducerIDExpiry is how long a partition remembers an idempotent
	// producer id that wrote nothing to it: a retry of that producer's
	// batch after it is appended again.
	ProducerIDExpiry time.Duration

	// TopicDefaults fills the zero fields of a CreateTopic config on a
	// single broker. In cluster mode the controller writes every setting
	// of a topic down when it creates it, from topicconfig.Default.
	TopicDefaults topicconfig.Config

	// MaxRecvMsgBytes is the largest gRPC message the server accepts;
	// larger ones fail with ResourceExhausted. The default,
	// stratav1.MaxMessageBytes, holds a record of the largest
	// max.record.bytes a topic may have.
	MaxRecvMsgBytes int
	// MaxSendMsgBytes bounds one sent message (a consume or fetch batch,
	// which holds at least one record); default stratav1.MaxMessageBytes.
	MaxSendMsgBytes int
	// MaxConcurrentStreams is the HTTP/2 per-connection stream limit.
	MaxConcurrentStreams uint32
	// MaxOpenStreams bounds the streaming RPCs open on the whole server;
	// past it new streams fail with ResourceExhausted.
	MaxOpenStreams int
	// ProduceStreamInFlight bounds the batches a ProduceStream has appended
	// but not yet answered.
	ProduceStreamInFlight int
	// MaxStreamsPerIdentity bounds the calls (unary and streaming: each
	// is an HTTP/2 stream) one client identity, the verified certificate's
	// common name, has in flight over all its connections; past it calls
	// fail with ResourceExhausted. No cap in plaintext mode (no identity).
	MaxStreamsPerIdentity int

	// HandshakeTimeout bounds a new connection's TLS handshake and HTTP/2
	// preface (grpc.ConnectionTimeout): a client that has not finished by
	// then is disconnected, so a connection that never sends a byte, or
	// stalls mid-handshake, holds its slot at most this long.
	HandshakeTimeout time.Duration
	// MaxConns caps the connections open on each listener (gRPC and
	// metrics); past it new connections are closed at once.
	MaxConns int
	// MaxConnsPerIP caps the connections open on each listener from one
	// remote address (an IPv4 address or an IPv6 /64), so that a flood
	// from a few addresses cannot take every slot.
	MaxConnsPerIP int

	// KeepaliveMinTime is the shortest client ping interval allowed; clients
	// pinging more often are disconnected (enforcement policy).
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how long a connection may be idle before the server pings it.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long the server waits for a ping ack.
	KeepaliveTimeout time.Duration

	// ShutdownTimeout bounds the graceful stop before open RPCs are cut.
	ShutdownTimeout time.Duration
	// RetentionCheckInterval is how often age/size retention runs on idle partitions.
	RetentionCheckInterval time.Duration
	// CompactionInterval is how often the partitions of topics with
	// cleanup.policy=compact are cleaned.
	CompactionInterval time.Duration
	// DataDirProbeInterval is how often the broker writes, fsyncs and
	// removes a probe file in DataDir; while that fails the broker reports
	// NOT_SERVING (see internal/dirprobe).
	DataDirProbeInterval time.Duration
}

const (
	// DefaultListen is the gRPC address (Kafka's port, loopback only; use
	// 0.0.0.0:9092 with --advertise in containers).
	DefaultListen = "127.0.0.1:9092"
	// DefaultMetricsListen is the Prometheus address.
	DefaultMetricsListen = "127.0.0.1:9100"
	// MaxHandshakeTimeout is the longest handshake-timeout allowed: a
	// silent connection must not hold a slot longer.
	MaxHandshakeTimeout = 10 * time.Second
)

// Default returns a configuration that runs a single local broker.
func Default() Config {
	return Config{
		NodeID:                1,
		DataDir:               "data",
		Listen:                DefaultListen,
		MetricsListen:         DefaultMetricsListen,
		LogLevel:              "info",
		TopicDefaults:         topicconfig.Default(),
		MaxRecvMsgBytes:       stratav1.MaxMessageBytes,
		MaxSendMsgBytes:       stratav1.MaxMessageBytes,
		MaxConcurrentStreams:  1000,
		MaxOpenStreams:        10000,
		ProduceStreamInFlight: 64,
		// A client holds one connection per broker and multiplexes its
		// calls; 2048 is twice what a follower's Fetch streams can use on
		// one connection (max-concurrent-streams), and a fifth of
		// max-open-streams, so one identity cannot take every stream.
		MaxStreamsPerIdentity: 2048,
		// A TLS 1.3 handshake takes a few round trips: well under a second
		// on any network a broker serves. 10 s leaves room for a loaded
		// server and a lossy link and bounds what a silent client holds.
		HandshakeTimeout: 10 * time.Second,
		// Clients hold one connection per broker: 1024 serves as many
		// client processes and stays well inside the descriptors a broker
		// also needs for its logs. 64 per address leaves room for a host
		// (or NAT gateway) running many clients, while a flood from one
		// address gets a sixteenth of the slots.
		MaxConns:               1024,
		MaxConnsPerIP:          64,
		KeepaliveMinTime:       10 * time.Second,
		KeepaliveTime:          2 * time.Minute,
		KeepaliveTimeout:       20 * time.Second,
		ShutdownTimeout:        10 * time.Second,
		RetentionCheckInterval: time.Minute,
		DataDirProbeInterval:   time.Second,
		CompactionInterval:     30 * time.Second,
		ReplicaLagMax:          5 * time.Second,
		LeaderLease:            3 * time.Second,
		ProducerIDExpiry:       7 * 24 * time.Hour,
		LocalSocketPeerUID:     -1,
	}
}

// AdvertisedAddr is the address clients should dial.
func (c Config) AdvertisedAddr() string {
	if c.Advertise != "" {
		return c.Advertise
	}
	return c.Listen
}

// Validate reports every invalid setting by its flag name.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeID < 0 {
		bad("node-id must be >= 0, got %d", c.NodeID)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir must be set")
	}
	host, err := checkHostPort(c.Listen)
	if err != nil {
		bad("listen %q: %v", c.Listen, err)
	}
	if c.Advertise != "" {
		ahost, err := checkHostPort(c.Advertise)
		switch {
		case err != nil:
			bad("advertise %q: %v", c.Advertise, err)
		case isWildcard(ahost):
			bad("advertise %q: must be an address clients can dial, not a wildcard", c.Advertise)
		}
	} else if err == nil && isWildcard(host) {
		bad("advertise must be set when listen %q is a wildcard address", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, err := checkHostPort(c.MetricsListen); err != nil {
			bad("metrics-listen %q: %v", c.MetricsListen, err)
		}
	}
	if set := btoi(c.TLSCert != "") + btoi(c.TLSKey != "") + btoi(c.TLSCA != ""); set != 0 && set != 3 {
		bad("tls-cert, tls-key and tls-ca must be set together (got cert %q, key %q, ca %q)", c.TLSCert, c.TLSKey, c.TLSCA)
	}
	switch {
	case !c.TLSEnabled() && !c.InsecureNoAuth:
		bad("tls-cert, tls-key and tls-ca are required: without TLS there is no authentication (set insecure-no-auth to serve plaintext, for local development only)")
	case c.TLSEnabled() && c.InsecureNoAuth:
		bad("insecure-no-auth must not be set with tls-cert: a TLS broker always authorizes calls")
	}
	if c.ACLPolicy != "" && !c.TLSEnabled() {
		bad("acl-policy %q needs tls-cert, tls-key and tls-ca: plaintext mode has no identities to authorize", c.ACLPolicy)
	}
	if c.ACLAdminURL != "" {
		if _, err := acl.AdminBaseURL(c.ACLAdminURL); err != nil {
			bad("acl-admin-url: %v", err)
		}
		if !c.TLSEnabled() {
			bad("acl-admin-url needs tls-cert, tls-key and tls-ca: the broker watches admin as its own certificate")
		}
	}
	if c.ReplicatorAddr != "" {
		if _, err := checkHostPort(c.ReplicatorAddr); err != nil {
			bad("replicator-addr %q: %v", c.ReplicatorAddr, err)
		}
		if !c.TLSEnabled() {
			bad("replicator-addr (cluster mode) needs tls-cert, tls-key and tls-ca: replicators only speak mutual TLS")
		}
		if c.AutoCreateTopics {
			bad("auto-create-topics is not supported in cluster mode (replicator-addr): create topics through the controller")
		}
	}
	if c.LocalSocket != "" {
		if !c.ClusterMode() {
			bad("local-socket serves LocalReplica to this node's replicator: it needs cluster mode (replicator-addr)")
		}
		if len(c.LocalSocket) > localsock.MaxPathLen {
			bad("local-socket %q: at most %d bytes (the kernel's limit for a socket path)", c.LocalSocket, localsock.MaxPathLen)
		}
	}
	if c.LocalSocketPeerUID < -1 || c.LocalSocketPeerUID > math.MaxUint32 {
		bad("local-socket-peer-uid must be -1 (the broker's own uid) or a uid, got %d", c.LocalSocketPeerUID)
	}
	if err := c.LogOptions().Validate(); err != nil {
		bad("%w", err)
	}
	if err := c.TopicDefaults.Validate(); err != nil {
		bad("topic defaults: %w", err)
	}
	const minMsg = 64 << 10
	if c.MaxRecvMsgBytes < minMsg {
		bad("max-recv-msg-bytes must be >= %d, got %d", minMsg, c.MaxRecvMsgBytes)
	} else if c.TopicDefaults.MaxRecordBytes > 0 && c.MaxRecvMsgBytes < int(c.TopicDefaults.MaxRecordBytes) {
		bad("max-recv-msg-bytes (%d) must be >= default-max-record-bytes (%d)", c.MaxRecvMsgBytes, c.TopicDefaults.MaxRecordBytes)
	}
	if c.MaxSendMsgBytes < minMsg {
		bad("max-send-msg-bytes must be >= %d, got %d", minMsg, c.MaxSendMsgBytes)
	} else if c.TopicDefaults.MaxRecordBytes > 0 && c.MaxSendMsgBytes < int(c.TopicDefaults.MaxRecordBytes)+1024 {
		bad("max-send-msg-bytes (%d) must exceed default-max-record-bytes (%d) by at least 1024", c.MaxSendMsgBytes, c.TopicDefaults.MaxRecordBytes)
	}
	if c.MaxConcurrentStreams < 1 {
		bad("max-concurrent-streams must be >= 1, got %d", c.MaxConcurrentStreams)
	}
	if c.MaxOpenStreams < 1 {
		bad("max-open-streams must be >= 1, got %d", c.MaxOpenStreams)
	}
	if c.MaxStreamsPerIdentity < 1 {
		bad("max-streams-per-identity must be >= 1, got %d", c.MaxStreamsPerIdentity)
	}
	if c.HandshakeTimeout <= 0 || c.HandshakeTimeout > MaxHandshakeTimeout {
		bad("handshake-timeout must be > 0 and <= %s, got %s", MaxHandshakeTimeout, c.HandshakeTimeout)
	}
	if c.MaxConns < 1 {
		bad("max-conns must be >= 1, got %d", c.MaxConns)
	}
	if c.MaxConnsPerIP < 1 || c.MaxConnsPerIP > c.MaxConns {
		bad("max-conns-per-ip must be >= 1 and <= max-conns (%d), got %d", c.MaxConns, c.MaxConnsPerIP)
	}
	if c.ProduceStreamInFlight < 1 {
		bad("produce-stream-in-flight must be >= 1, got %d", c.ProduceStreamInFlight)
	}
	if c.KeepaliveMinTime <= 0 {
		bad("keepalive-min-time must be > 0, got %s", c.KeepaliveMinTime)
	}
	if c.KeepaliveTime < time.Second {
		bad("keepalive-time must be >= 1s, got %s", c.KeepaliveTime)
	}
	if c.KeepaliveTimeout < time.Second {
		bad("keepalive-timeout must be >= 1s, got %s", c.KeepaliveTimeout)
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout must be > 0, got %s", c.ShutdownTimeout)
	}
	if c.ReplicaLagMax < 100*time.Millisecond {
		bad("replica-lag-max must be >= 100ms, got %s", c.ReplicaLagMax)
	}
	if c.LeaderLease < 500*time.Millisecond {
		bad("leader-lease must be >= 500ms, got %s", c.LeaderLease)
	}
	if c.ProducerIDExpiry < time.Minute {
		bad("producer-id-expiry must be >= 1m, got %s", c.ProducerIDExpiry)
	}
	if c.CompactionInterval < 100*time.Millisecond {
		bad("compaction-interval must be >= 100ms, got %s", c.CompactionInterval)
	}
	if c.DataDirProbeInterval < 100*time.Millisecond {
		bad("data-dir-probe-interval must be >= 100ms, got %s", c.DataDirProbeInterval)
	}
	if c.RetentionCheckInterval < time.Second {
		bad("retention-check-interval must be >= 1s, got %s", c.RetentionCheckInterval)
	}
	return errors.Join(errs...)
}

// ClusterMode reports whether the broker is driven by a replicator.
func (c Config) ClusterMode() bool { return c.ReplicatorAddr != "" }

// ReplicatorIdentity is the certificate identity allowed to set this
// broker's partition states.
func (c Config) ReplicatorIdentity() string { return fmt.Sprintf("replicator-%d", c.NodeID) }

// LocalSocketUID is the uid a local socket peer must have.
func (c Config) LocalSocketUID() uint32 {
	if c.LocalSocketPeerUID < 0 {
		return uint32(os.Getuid())
	}
	return uint32(c.LocalSocketPeerUID)
}

// TLSEnabled reports whether mutual TLS is configured.
func (c Config) TLSEnabled() bool { return c.TLSCert != "" }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func checkHostPort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if port == "" {
		return "", errors.New("missing port")
	}
	return host, nil
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// LogOptions are the logger's options (pkg/telemetry) from the log flags.
func (c Config) LogOptions() telemetry.LogOptions {
	return telemetry.LogOptions{Level: c.LogLevel, Format: c.LogFormat}
}
