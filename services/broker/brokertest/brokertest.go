// Package brokertest runs a real cluster-mode broker in-process, on a
// loopback port, for the tests of other modules: the replicator's fetcher,
// applier and node tests drive it as they drive a broker in production.
// It is the broker's own code, not a copy: internal/grpcserver over the
// topic registry, partitions and leader-epoch caches of internal/topic and
// internal/partition, and pkg/logstore's segments and frames on disk,
// behind the broker's ACL (internal/authz, the built-in default policy)
// when the listener has credentials.
//
// What it leaves out is what a test's replicator stands in for: there is
// no replicator behind it (forwarded Topics and Metadata calls answer
// Unavailable), no ISR manager (the ISR is what the last applied state
// says) and no leader lease (a leader serves until a state says
// otherwise); nor metrics, tracing or the data directory probe.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/grpctls/localsock"
	"github.com/strata-log/strata/services/broker/internal/authz"
	"github.com/strata-log/strata/services/broker/internal/config"
	"github.com/strata-log/strata/services/broker/internal/grpcserver"
	"github.com/strata-log/strata/services/broker/internal/partition"
	"github.com/strata-log/strata/services/broker/internal/topic"
)

// Options configure a broker. Zero values mean defaults.
type Options struct {
	// NodeID is the broker's id: it leads only in states naming it, and
	// LocalReplica answers only replicator-<NodeID>. Default 1.
	NodeID int32
	// Dir is the data directory; empty means a new tb.TempDir().
	Dir string
	// Creds secures the listener; callers are then identified by their
	// verified client certificates and authorized by the default policy.
	// Nil means plaintext, where no identity is checked.
	Creds credentials.TransportCredentials
	// UnaryInterceptors and StreamInterceptors run after authorization,
	// before the handlers: tests observe the protocol or inject failures.
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
	// Logger defaults to zap.NewNop().
	Logger *zap.Logger
	// LocalSocket, when set, is a Unix domain socket path on which the
	// broker also serves LocalReplica, as a broker started with
	// --local-socket does: plain gRPC, the peer admitted by uid
	// (LocalSocketUID, default this process's), the interceptors above
	// run there too. A restart makes the socket again.
	LocalSocket string
	// LocalSocketUID is the uid admitted on LocalSocket; nil means this
	// process's own.
	LocalSocketUID *uint32
}

// Broker is one running broker. Stop ends it; Restart starts it again on
// the same data directory and address.
type Broker struct {
	opts Options
	addr string

	reg     *topic.Registry
	srv     *grpcserver.Server
	served  chan error
	servers int // how many Serve calls report on served
}

// Start serves a broker on a loopback port until Stop or the end of the
// test.
func Start(tb testing.TB, opts Options) *Broker {
	tb.Helper()
	if opts.NodeID == 0 {
		opts.NodeID = 1
	}
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	b := &Broker{opts: opts}
	if err := b.start("127.0.0.1:0"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return b
}

func (b *Broker) start(addr string) (err error) {
	cfg := config.Default()
	lg := b.opts.Logger.With(zap.Int32("broker", b.opts.NodeID))
	b.reg, err = topic.Open(topic.Options{
		Dir:      b.opts.Dir,
		Defaults: cfg.TopicDefaults,
		// As in cluster mode: no role until a state is applied.
		State:  func(string, int32) partition.State { return partition.State{Role: partition.RoleNone, LeaderID: -1} },
		Logger: lg,
	})
	if err != nil {
		return fmt.Errorf("brokertest: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.reg.Close())
		}
	}()
	var unary []grpc.UnaryServerInterceptor
	var stream []grpc.StreamServerInterceptor
	cluster := &grpcserver.ClusterConfig{Replicator: noReplicator{}, Topics: b.reg}
	if b.opts.Creds != nil {
		_, ic, err := authz.New("", b.opts.Dir, lg)
		if err != nil {
			return fmt.Errorf("brokertest: %w", err)
		}
		unary, stream = append(unary, ic.Unary()), append(stream, ic.Stream())
		cluster.ReplicatorIdentity = fmt.Sprintf("replicator-%d", b.opts.NodeID)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("brokertest: %w", err)
	}
	b.addr = ln.Addr().String()
	b.srv = grpcserver.New(grpcserver.Config{
		NodeID:                b.opts.NodeID,
		AdvertiseAddr:         b.addr,
		MaxRecvMsgBytes:       cfg.MaxRecvMsgBytes,
		MaxSendMsgBytes:       cfg.MaxSendMsgBytes,
		MaxConcurrentStreams:  cfg.MaxConcurrentStreams,
		MaxOpenStreams:        cfg.MaxOpenStreams,
		ProduceStreamInFlight: cfg.ProduceStreamInFlight,
		KeepaliveMinTime:      cfg.KeepaliveMinTime,
		KeepaliveTime:         cfg.KeepaliveTime,
		KeepaliveTimeout:      cfg.KeepaliveTimeout,
		HandshakeTimeout:      cfg.HandshakeTimeout,
		Cluster:               cluster,
	}, b.reg, b.reg, nil, lg, grpcserver.Options{
		Creds:              b.opts.Creds,
		UnaryInterceptors:  append(unary, b.opts.UnaryInterceptors...),
		StreamInterceptors: append(stream, b.opts.StreamInterceptors...),
	})
	b.served = make(chan error, 2)
	go func() { b.served <- b.srv.Serve(ln) }()
	b.servers = 1
	if b.opts.LocalSocket != "" {
		lln, err := localsock.Listen(b.opts.LocalSocket)
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			b.srv.Stop(ctx)
			return errors.Join(fmt.Errorf("brokertest: %w", err), <-b.served)
		}
		uid := uint32(os.Getuid())
		if b.opts.LocalSocketUID != nil {
			uid = *b.opts.LocalSocketUID
		}
		lopts := grpcserver.LocalOptions{Creds: localsock.Credentials(uid, func(err error) {
			lg.Info("local socket peer refused", zap.Error(err))
		}), UnaryInterceptors: b.opts.UnaryInterceptors, StreamInterceptors: b.opts.StreamInterceptors}
		go func() { b.served <- b.srv.ServeLocal(lln, lopts) }()
		b.servers++
	}
	return nil
}

// LocalSocket is the local socket's path, empty when off.
func (b *Broker) LocalSocket() string { return b.opts.LocalSocket }

// Addr is the broker's address.
func (b *Broker) Addr() string { return b.addr }

// Dir is the broker's data directory.
func (b *Broker) Dir() string { return b.opts.Dir }

// NodeID is the broker's id.
func (b *Broker) NodeID() int32 { return b.opts.NodeID }

// Stop stops serving, as a broker shutting down does (Fetch streams end
// Unavailable; calls still open after a second are cut), and closes every
// log. It is a no-op on a stopped broker.
func (b *Broker) Stop() error {
	if b.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	b.srv.Stop(ctx)
	var err error
	for range b.servers {
		err = errors.Join(err, <-b.served)
	}
	err = errors.Join(err, b.reg.Close())
	b.srv, b.reg = nil, nil
	return err
}

// Restart stops the broker and starts it again on the same data
// directory and address: every partition comes back with its log and no
// role, as after a process restart.
func (b *Broker) Restart() error {
	if err := b.Stop(); err != nil {
		return err
	}
	// Between the stop and the start the port is free, and a test of
	// another package running at the same time may bind it for a moment
	// (CI failed once on "address already in use"): try again for a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.start(b.addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// noReplicator is the broker's connection to its replicator, which a test
// does not have: the calls a broker forwards (Topics, Metadata, the group
// coordinator's) answer Unavailable.
type noReplicator struct{}

var errNoReplicator = status.Error(codes.Unavailable, "brokertest: the broker has no replicator")

func (noReplicator) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	return errNoReplicator
}

func (noReplicator) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	return nil, errNoReplicator
}
