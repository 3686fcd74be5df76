package applier

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
)

// GRPCBroker is the local broker reached over gRPC with mutual TLS (this
// replicator's certificate). It watches the broker's grpc.health.v1 status
// and signals Ready each time the broker turns SERVING, which covers a
// broker restart that happened between two metadata changes: the watch
// stream breaks with the connection, however short the restart. The
// connection comes back within about a second of the broker's return
// (internal/brokerdial), so Ready does too.
type GRPCBroker struct {
	lg     *zap.Logger
	conn   *grpc.ClientConn
	client stratav1.LocalReplicaClient
	health healthpb.HealthClient
	ready  chan struct{}
	// checkFailed is set by a failed Check and cleared by the next success.
	checkFailed atomic.Bool
	cancel      context.CancelFunc
	wg          sync.WaitGroup
}

var (
	_ RestartNotifier   = (*GRPCBroker)(nil)
	_ TopicReleaser     = (*GRPCBroker)(nil)
	_ StorageIdentifier = (*GRPCBroker)(nil)
)

// ErrNotServing is a health answer other than SERVING.
var ErrNotServing = errors.New("applier: broker not serving")

// DialBroker creates the client (connections are made lazily) and starts
// the health watch.
func DialBroker(addr string, tlsConf *tls.Config, opts brokerdial.Options, lg *zap.Logger) (*GRPCBroker, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	conn, err := brokerdial.Dial(addr, tlsConf, opts)
	if err != nil {
		return nil, fmt.Errorf("applier: broker client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &GRPCBroker{lg: lg.Named("broker-client"), conn: conn, client: stratav1.NewLocalReplicaClient(conn),
		health: healthpb.NewHealthClient(conn), ready: make(chan struct{}, 1), cancel: cancel}
	b.wg.Add(1)
	go b.watchHealth(ctx)
	return b, nil
}

// Check asks the broker whether it serves (grpc.health.v1 Check for the
// whole server): nil when SERVING, ErrNotServing wrapped with its status
// otherwise, or the call's error. Without wait it fails at once when
// there is no connection; with wait it waits for one until ctx ends
// (liveness.Checker). The first success after a failure signals Ready:
// a broker that hung (stopped, swapping) and answers again kept its
// connection and its health stream, which saw nothing, while the states
// applied meanwhile failed.
func (b *GRPCBroker) Check(ctx context.Context, wait bool) error {
	err := b.check(ctx, wait)
	if err != nil {
		b.checkFailed.Store(true)
		return err
	}
	if b.checkFailed.Swap(false) {
		b.signalReady()
	}
	return nil
}

func (b *GRPCBroker) check(ctx context.Context, wait bool) error {
	resp, err := b.health.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(wait))
	if err != nil {
		return err
	}
	if st := resp.GetStatus(); st != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%w: %s", ErrNotServing, st)
	}
	return nil
}

// ApplyPartitionState calls the broker.
func (b *GRPCBroker) ApplyPartitionState(ctx context.Context, req *stratav1.ApplyPartitionStateRequest) error {
	_, err := b.client.ApplyPartitionState(ctx, req)
	return err
}

// ReleaseUnknownTopics asks the broker to drop the local topics the
// controller no longer has.
func (b *GRPCBroker) ReleaseUnknownTopics(ctx context.Context, known []string) ([]string, error) {
	resp, err := b.client.ReleaseUnknownTopics(ctx, &stratav1.ReleaseUnknownTopicsRequest{KnownTopics: known})
	if err != nil {
		return nil, err
	}
	return resp.GetRemoved(), nil
}

// Conn is the connection to the broker, for the fetchers' calls to it
// (fetcher.NewLocalClient).
func (b *GRPCBroker) Conn() grpc.ClientConnInterface { return b.conn }

// Ready receives each time the broker becomes SERVING.
func (b *GRPCBroker) Ready() <-chan struct{} { return b.ready }

// watchHealth follows the broker's health, one stream after another. A
// stream waits for the connection (WaitForReady), so the delay between two
// is only for streams that fail without seeing SERVING; it stays short:
// it adds to the time before a returning broker is used again.
func (b *GRPCBroker) watchHealth(ctx context.Context) {
	defer b.wg.Done()
	wait := 100 * time.Millisecond
	for {
		serving := b.watchOnce(ctx, b.health)
		if ctx.Err() != nil {
			return
		}
		if serving {
			wait = 100 * time.Millisecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// watchOnce follows one health stream until it breaks, signalling Ready on
// every transition to SERVING. It reports whether it ever saw SERVING.
func (b *GRPCBroker) watchOnce(ctx context.Context, hc healthpb.HealthClient) bool {
	stream, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		return false
	}
	sawServing, serving := false, false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				b.lg.Debug("broker health stream ended", zap.Error(err))
			}
			return sawServing
		}
		now := resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		if now && !serving {
			sawServing = true
			b.signalReady()
		}
		serving = now
	}
}

func (b *GRPCBroker) signalReady() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// Close stops the health watch and closes the connection.
func (b *GRPCBroker) Close() error {
	b.cancel()
	b.wg.Wait()
	return b.conn.Close()
}

// StorageID asks the broker the storage id of its data directory.
func (b *GRPCBroker) StorageID(ctx context.Context) (string, error) {
	resp, err := b.client.StorageId(ctx, &stratav1.StorageIdRequest{})
	if err != nil {
		return "", err
	}
	return resp.GetStorageId(), nil
}
