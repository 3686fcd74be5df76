// Package fetcher replicates follower partitions into the local broker:
// one fetcher per partition whose local replica follows a live leader
// streams ReplicaFetch.Fetch from that leader's broker and appends what it
// receives into the local broker, after truncating the local log to where
// it agrees with the leader (KIP-101/279). The Manager starts and stops
// fetchers as the metadata changes (FSM watch, no polling). Every fetcher
// of the node appends over one LocalReplica.AppendStream (appender.go),
// the frames passed on in the buffers they were received in
// (rawcodec.go), over the broker's local socket when there is one.
package fetcher

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

// Local is what a fetcher needs of its own broker; *LocalClient
// satisfies it.
type Local interface {
	PartitionStatus(ctx context.Context, in *stratav1.PartitionStatusRequest, opts ...grpc.CallOption) (*stratav1.PartitionStatusResponse, error)
	OffsetForLeaderEpoch(ctx context.Context, in *stratav1.OffsetForLeaderEpochRequest, opts ...grpc.CallOption) (*stratav1.OffsetForLeaderEpochResponse, error)
	// Append writes a fetched response and returns the log end offset
	// after it; a refusal is the broker's status (see LocalClient.Append).
	Append(ctx context.Context, a *LocalAppend) (int64, error)
	Truncate(ctx context.Context, in *stratav1.TruncateRequest, opts ...grpc.CallOption) (*stratav1.TruncateResponse, error)
}

// Leader is what a fetcher needs of its partition's leader broker;
// stratav1.ReplicaFetchClient satisfies it.
type Leader interface {
	Fetch(ctx context.Context, opts ...grpc.CallOption) (grpc.BidiStreamingClient[stratav1.FetchRequest, stratav1.FetchResponse], error)
	OffsetForLeaderEpoch(ctx context.Context, in *stratav1.OffsetForLeaderEpochRequest, opts ...grpc.CallOption) (*stratav1.OffsetForLeaderEpochResponse, error)
}

// Dialer gives a client for the broker at a cluster-network address.
type Dialer interface {
	Leader(addr string) (Leader, error)
}

// Watcher is the FSM's change feed.
type Watcher interface {
	Watch() (*metadata.State, <-chan struct{})
}

type key struct {
	topic     string
	partition int32
}

// Assignment is what one fetcher does: follow Topic/Partition from leader
// LeaderID in LeaderEpoch, whose broker is at LeaderAddr. A fetcher lives
// exactly as long as its assignment: any change replaces it.
type Assignment struct {
	Topic       string
	Partition   int32
	LeaderID    int32
	LeaderEpoch int32
	// LeaderAddr is the leader broker's cluster-network address.
	LeaderAddr string
}

// Desired returns the assignment of every partition that node id follows
// with a live, known leader: a replica, not the leader, the leader alive
// and registered. Offline partitions and those it leads have none.
func Desired(id int32, st *metadata.State) map[key]Assignment {
	out := map[key]Assignment{}
	for name, t := range st.Topics {
		for _, p := range t.Partitions {
			if p.Leader == metadata.NoLeader || p.Leader == id || !contains(p.Replicas, id) {
				continue
			}
			b, ok := st.Brokers[p.Leader]
			if !ok || !b.Alive || b.InternalAddress() == "" {
				continue
			}
			out[key{name, p.ID}] = Assignment{Topic: name, Partition: p.ID, LeaderID: p.Leader,
				LeaderEpoch: p.LeaderEpoch, LeaderAddr: b.InternalAddress()}
		}
	}
	return out
}

func contains(ids []int32, id int32) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

// Manager runs the fetchers of one node.
type Manager struct {
	lg      *zap.Logger
	localID int32
	fsm     Watcher
	local   Local
	leaders Dialer
	applied *Applied
	opts    Options
}

// New returns a manager for node localID. applied may be nil: fetchers then
// rely on PartitionStatus alone to learn that the local broker is in
// their epoch, retrying with backoff.
func New(localID int32, fsm Watcher, local Local, leaders Dialer, applied *Applied, opts Options, lg *zap.Logger) *Manager {
	if lg == nil {
		lg = zap.NewNop()
	}
	return &Manager{lg: lg.Named("fetcher"), localID: localID, fsm: fsm, local: local, leaders: leaders,
		applied: applied, opts: opts.withDefaults()}
}

// running is one fetcher goroutine and how to stop it.
type running struct {
	a      Assignment
	cancel context.CancelFunc
	done   chan struct{}
}

// Run keeps one fetcher per desired assignment until ctx is done, then
// stops them all and returns once every fetcher goroutine has.
func (m *Manager) Run(ctx context.Context) {
	fetchers := map[key]*running{}
	defer func() {
		for _, r := range fetchers {
			r.cancel()
		}
		for _, r := range fetchers {
			<-r.done
			m.opts.Observer.FetcherStopped(r.a.Topic, r.a.Partition, true)
		}
	}()
	for {
		st, changed := m.fsm.Watch()
		want := Desired(m.localID, st)
		// Cancel every outdated fetcher first and then wait, so that they
		// wind down together; the replacement starts only after its
		// predecessor returned, so two fetchers never write one partition.
		var stopping []*running
		for k, r := range fetchers {
			if a, ok := want[k]; !ok || a != r.a {
				r.cancel()
				stopping = append(stopping, r)
				delete(fetchers, k)
			}
		}
		for _, r := range stopping {
			<-r.done
			_, still := want[key{r.a.Topic, r.a.Partition}]
			m.opts.Observer.FetcherStopped(r.a.Topic, r.a.Partition, !still)
			m.lg.Info("fetcher stopped", zap.String("topic", r.a.Topic), zap.Int32("partition", r.a.Partition),
				zap.Int32("leader", r.a.LeaderID), zap.Int32("epoch", r.a.LeaderEpoch))
		}
		for k, a := range want {
			if _, ok := fetchers[k]; ok {
				continue
			}
			fctx, cancel := context.WithCancel(ctx)
			r := &running{a: a, cancel: cancel, done: make(chan struct{})}
			fetchers[k] = r
			f := m.newFetcher(a)
			m.opts.Observer.FetcherStarted(a.Topic, a.Partition)
			m.lg.Info("fetcher started", zap.String("topic", a.Topic), zap.Int32("partition", a.Partition),
				zap.Int32("leader", a.LeaderID), zap.Int32("epoch", a.LeaderEpoch), zap.String("address", a.LeaderAddr))
			go func() {
				defer close(r.done)
				f.run(fctx)
			}()
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}
