package fetcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/replicator/internal/applier"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
	"github.com/strata-log/strata/services/replicator/internal/testbroker"
	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The node under test is 2; brokers 1 and 3 can lead topic "t" partition 0.
const (
	localID = 2
	topic   = "t"
)

// env is one follower node: the real FSM, the real applier and a fetcher
// Manager driving a real local broker (internal/testbroker), and real
// brokers 1 and 3 to lead.
type env struct {
	t       *testing.T
	ca      *testutil.CA
	fsm     *metadata.FSM
	index   uint64
	local   *testbroker.Broker
	brokers map[int32]*testbroker.Broker
	obs     *recorder
	// fetches are the Fetch responses the fetchers received, as they
	// received them.
	fetches *fetchLog
	// ready is the local broker's restart signal to the applier
	// (applier.RestartNotifier).
	ready chan struct{}
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

// envOptions vary the environment.
type envOptions struct {
	// localSocket makes the local broker serve LocalReplica on a Unix
	// domain socket too, and the fetchers append over it.
	localSocket bool
}

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{t: t, ca: testutil.NewCA(t), fsm: metadata.NewFSM(zaptest.NewLogger(t)),
		brokers: map[int32]*testbroker.Broker{}, obs: newRecorder(), fetches: &fetchLog{}, ready: make(chan struct{}, 1)}
	for id := int32(1); id <= 3; id++ {
		// The states a test gives a leader name this node as its one
		// follower, so that its high watermark follows this node alone.
		isr := []int32{id, localID}
		if id == localID {
			isr = []int32{localID, 1}
		}
		bo := testbroker.Options{ISR: isr}
		if id == localID && o.localSocket {
			bo.LocalSocket = socketPath(t)
		}
		b := testbroker.Start(t, e.ca, id, bo)
		if id == localID {
			e.local = b
		} else {
			e.brokers[id] = b
		}
		// The advertised address leads nowhere: fetchers must use the
		// internal one.
		e.apply(metadata.Command{Type: metadata.CmdRegisterBroker, RegisterBroker: &metadata.RegisterBroker{ID: id,
			BrokerAddress: fmt.Sprintf("unreachable.invalid:1909%d", id), BrokerInternalAddress: b.Addr(),
			ReplicatorAddress: "r:1", RaftAddress: "f:1", Alive: true}})
	}
	e.apply(metadata.Command{Type: metadata.CmdCreateTopic, CreateTopic: &metadata.CreateTopic{Name: topic,
		Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 3}, Assignment: [][]int32{{1, 2, 3}}}})
	return e
}

func (e *env) apply(cmd metadata.Command) {
	e.t.Helper()
	e.index++
	if err := e.fsm.ApplyCommand(e.index, cmd); err != nil {
		e.t.Fatalf("%s: %v", cmd.Type, err)
	}
}

func (e *env) partition() metadata.Partition {
	return e.fsm.State().Topics[topic].Partitions[0]
}

// elect makes leader lead in the next epoch, with the full ISR.
func (e *env) elect(leader int32) int32 {
	e.t.Helper()
	p := e.partition()
	e.apply(metadata.Command{Type: metadata.CmdElectLeader, ElectLeader: &metadata.ElectLeader{Topic: topic,
		ExpectedEpoch: p.LeaderEpoch, Leader: leader, ISR: p.Replicas}})
	return p.LeaderEpoch + 1
}

// electUntil re-elects leader until the epoch is epoch.
func (e *env) electUntil(leader, epoch int32) {
	e.t.Helper()
	for e.partition().LeaderEpoch < epoch {
		e.elect(leader)
	}
}

// applierBroker adapts the local broker's client to applier.Broker, with
// the restart signal.
type applierBroker struct {
	c     stratav1.LocalReplicaClient
	ready chan struct{}
}

func (b applierBroker) Ready() <-chan struct{} { return b.ready }

func (b applierBroker) ApplyPartitionState(ctx context.Context, req *stratav1.ApplyPartitionStateRequest) error {
	_, err := b.c.ApplyPartitionState(ctx, req)
	return err
}

// start runs the applier and the manager as the node does (gated: true
// wires the Applied tracker) until the test ends.
func (e *env) start(opts Options, gated bool) {
	e.t.Helper()
	lg := zaptest.NewLogger(e.t)
	tlsConf := e.ca.ClientTLS(e.t, "replicator-2")
	// As the replicator dials its broker (applier.DialBroker): back
	// within a second of a restart.
	conn, err := brokerdial.Dial(e.local.Addr(), tlsConf, brokerdial.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	conns := NewConns(tlsConf)
	var applied *Applied
	aopts := applier.Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	if gated {
		applied = NewApplied()
		aopts.OnApply = applied.Observe
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	}
	opts.Observer = e.obs
	var lopts []LocalOption
	if path := e.local.LocalSocket(); path != "" {
		lconn, err := brokerdial.DialLocal(path, uint32(os.Getuid()), brokerdial.Options{})
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { lconn.Close() }) //nolint:errcheck // a test client
		lopts = append(lopts, WithLocalReplica(lconn))
	}
	local := NewLocalClient(conn, lopts...)
	ap := applier.New(localID, e.fsm, applierBroker{stratav1.NewLocalReplicaClient(conn), e.ready}, aopts, lg)
	m := New(localID, e.fsm, local, loggingDialer{conns, e.fetches}, applied, opts, lg)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		ap.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		m.Run(ctx)
	}()
	e.t.Cleanup(func() {
		cancel()
		wg.Wait()
		local.Close()
		if err := conns.Close(); err != nil {
			e.t.Error(err)
		}
		if err := conn.Close(); err != nil {
			e.t.Error(err)
		}
	})
}

// socketPath is a path for a local socket in a new private directory
// (short: a socket path has at most 107 bytes).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "strata-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) }) //nolint:errcheck // a temp dir
	return filepath.Join(dir, "broker.sock")
}

// waitSame waits until the local log mirrors leader's from the local log
// start on (a follower may start later, never earlier) and, when hw, until
// the local high watermark reached the leader's log end.
func (e *env) waitSame(leader *testbroker.Broker, hw bool) {
	e.t.Helper()
	testutil.Eventually(e.t, 10*time.Second, func() error {
		ls, lrecs, err := leader.Log(topic, 0)
		if err != nil {
			return err
		}
		fs, frecs, err := e.local.Log(topic, 0)
		if err != nil {
			return err
		}
		if fs < ls {
			return fmt.Errorf("local log starts at %d, before the leader's %d", fs, ls)
		}
		if skip := fs - ls; skip > int64(len(lrecs)) || !slices.Equal(frecs, lrecs[skip:]) {
			return fmt.Errorf("local [%d, %d) %v\nleader [%d, %d) %v", fs, fs+int64(len(frecs)), frecs, ls, ls+int64(len(lrecs)), lrecs)
		}
		if !hw {
			return nil
		}
		st, err := e.local.Status(topic, 0)
		if err != nil {
			return err
		}
		if leo := ls + int64(len(lrecs)); st.GetHighWatermark() != leo {
			return fmt.Errorf("local high watermark %d, leader log end %d", st.GetHighWatermark(), leo)
		}
		return nil
	})
}

// run returns n records written by who in epoch from offset from; the
// value names all three, so records of different histories never match.
func run(who string, epoch int32, from, n int) []testbroker.Record {
	out := make([]testbroker.Record, n)
	for i := range out {
		out[i] = testbroker.Record{Epoch: epoch, Value: fmt.Sprintf("%s/e%d/%d", who, epoch, from+i)}
	}
	return out
}

// fetchLog keeps the Fetch responses the fetchers received.
type fetchLog struct {
	mu    sync.Mutex
	resps []fetched
}

// fetched is one Fetch response as received: where it starts, its records
// (decoded with pkg/logstore, the codec the broker stores them with) and
// frame bytes.
type fetched struct {
	base    int64
	records int
	bytes   int
}

func (l *fetchLog) responses() []fetched {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.resps)
}

// loggingDialer is Conns keeping every Fetch response in a fetchLog.
type loggingDialer struct {
	*Conns
	log *fetchLog
}

func (d loggingDialer) Leader(addr string) (Leader, error) {
	l, err := d.Conns.Leader(addr)
	if err != nil {
		return nil, err
	}
	return loggingLeader{l, d.log}, nil
}

type loggingLeader struct {
	Leader
	log *fetchLog
}

func (l loggingLeader) Fetch(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[stratav1.FetchRequest, stratav1.FetchResponse], error) {
	s, err := l.Leader.Fetch(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return loggingStream{s, l.log}, nil
}

type loggingStream struct {
	grpc.BidiStreamingClient[stratav1.FetchRequest, stratav1.FetchResponse]
	log *fetchLog
}

// RecvMsg logs each response the fetcher decodes (rawFetchResponse, by
// rawCodec).
func (s loggingStream) RecvMsg(m any) error {
	if err := s.BidiStreamingClient.RecvMsg(m); err != nil {
		return err
	}
	resp, ok := m.(*rawFetchResponse)
	if !ok {
		return nil
	}
	f := fetched{base: resp.GetBaseOffset(), bytes: resp.framesLen()}
	for b := materialize(resp.frames); len(b) > 0; f.records++ {
		_, n, err := logstore.DecodeFrame(b, len(b))
		if err != nil {
			return fmt.Errorf("response at %d, frame %d: %w", f.base, f.records, err)
		}
		b = b[n:]
	}
	s.log.mu.Lock()
	s.log.resps = append(s.log.resps, f)
	s.log.mu.Unlock()
	return nil
}

// recorder is an Observer that keeps totals.
type recorder struct {
	mu      sync.Mutex
	bytes   int
	lag     int64
	started int
	stopped map[bool]int
	errors  map[string]int
}

func newRecorder() *recorder { return &recorder{stopped: map[bool]int{}, errors: map[string]int{}} }

func (r *recorder) FetcherStarted(string, int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started++
}

func (r *recorder) FetcherStopped(_ string, _ int32, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped[gone]++
}

func (r *recorder) Fetched(_ string, _ int32, bytes int, _ bool, lag int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += bytes
	r.lag = lag
}

func (r *recorder) FetchError(step, code string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors[step+"/"+code]++
}

func (r *recorder) snapshot() (bytes int, lag int64, started int, stopped map[bool]int, errors map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stopped, errors = map[bool]int{}, map[string]int{}
	for k, v := range r.stopped {
		stopped[k] = v
	}
	for k, v := range r.errors {
		errors[k] = v
	}
	return r.bytes, r.lag, r.started, stopped, errors
}

func deleteTopic() metadata.Command {
	return metadata.Command{Type: metadata.CmdDeleteTopic, DeleteTopic: &metadata.DeleteTopic{Name: topic}}
}

func electOffline(p metadata.Partition) metadata.Command {
	return metadata.Command{Type: metadata.CmdElectLeader, ElectLeader: &metadata.ElectLeader{Topic: topic,
		ExpectedEpoch: p.LeaderEpoch, Leader: metadata.NoLeader, ISR: p.ISR}}
}
