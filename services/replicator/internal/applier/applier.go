// Package applier tells the local broker its role for every partition it
// holds a replica of, as the metadata changes: it watches the FSM (a change
// notification, no polling) and calls the broker's ApplyPartitionState for
// each partition whose role, epoch, leader, replicas, ISR or config changed.
package applier

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/metadata"
)

// Broker is what the applier needs of the local broker.
type Broker interface {
	ApplyPartitionState(ctx context.Context, req *stratav1.ApplyPartitionStateRequest) error
}

// RestartNotifier is an optional capability of a Broker: a channel that
// receives whenever the broker becomes reachable and serving, so its
// partition states can be applied again after a restart.
type RestartNotifier interface {
	Ready() <-chan struct{}
}

// TopicReleaser is an optional capability of a Broker: removing its local
// topics the controller no longer has (deleted while it was down).
type TopicReleaser interface {
	ReleaseUnknownTopics(ctx context.Context, known []string) (removed []string, err error)
}

// StorageIdentifier is an optional capability of a Broker: the storage id
// of its data directory (metadata.Broker.StorageID), asked before any
// partition state is applied and again after every restart of the broker.
type StorageIdentifier interface {
	StorageID(ctx context.Context) (string, error)
}

// Watcher is the FSM's change feed.
type Watcher interface {
	Watch() (*metadata.State, <-chan struct{})
}

// Options configure an Applier. Zero values mean defaults.
type Options struct {
	// CallTimeout bounds one ApplyPartitionState call; default 5s.
	CallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the retry delay after a failed call;
	// defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// OnApply is called after each successful call (tests, metrics).
	OnApply func(*stratav1.ApplyPartitionStateRequest)
	// OnStorageID is called with the broker's storage id each time the
	// applier has asked it (StorageIdentifier), before any state is applied:
	// the node gossips it for the controller to record.
	OnStorageID func(id string)
}

// Applier keeps the local broker in step with the metadata.
type Applier struct {
	lg      *zap.Logger
	localID int32
	fsm     Watcher
	broker  Broker
	opts    Options
}

// New returns an applier for node localID.
func New(localID int32, fsm Watcher, broker Broker, opts Options, lg *zap.Logger) *Applier {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	return &Applier{lg: lg.Named("applier"), localID: localID, fsm: fsm, broker: broker, opts: opts}
}

type key struct {
	topic     string
	partition int32
}

// Run applies until ctx is done.
func (a *Applier) Run(ctx context.Context) {
	var ready <-chan struct{}
	if rn, ok := a.broker.(RestartNotifier); ok {
		ready = rn.Ready()
	}
	sid, _ := a.broker.(StorageIdentifier)
	applied := map[key]*stratav1.ApplyPartitionStateRequest{}
	backoff := a.opts.MinBackoff
	release := true  // after every (re)start of the broker, once all states are applied
	storage := ""    // the broker's storage id, asked again after a failure or restart
	waiting := false // for the controller to record storage
	for {
		st, changed := a.fsm.Watch()
		ok := true
		if sid != nil && storage == "" {
			storage, ok = a.storageID(ctx, sid)
		}
		switch recorded := recordedStorage(a.localID, st); {
		case !ok:
		case sid != nil && recorded != "" && recorded != storage:
			// The metadata counts records of another data directory:
			// nothing is applied until the controller has recorded this
			// one, taking the broker out of every ISR and its leaderships
			// away (metadata.RegisterBroker.StorageID).
			if !waiting {
				a.lg.Warn("broker has a new data directory; waiting for the controller to record it before applying any state",
					zap.String("recorded_storage_id", recorded), zap.String("storage_id", storage))
			}
			waiting = true
		default:
			waiting = false
			ok = a.sync(ctx, Desired(a.localID, st), applied)
			if !ok {
				storage = "" // the broker may have restarted: ask again
			}
		}
		if ok && !waiting && release {
			ok = a.releaseUnknown(ctx, st)
			release = !ok
		}
		var retry <-chan time.Time
		var timer *time.Timer
		if ok {
			backoff = a.opts.MinBackoff
		} else {
			timer = time.NewTimer(backoff)
			retry = timer.C
			backoff = min(2*backoff, a.opts.MaxBackoff)
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case <-changed:
		case <-retry:
		case <-ready:
			a.lg.Info("broker ready, re-applying every partition state")
			clear(applied)
			release, storage = true, ""
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// storageID asks the broker its storage id and reports it (OnStorageID).
func (a *Applier) storageID(ctx context.Context, sid StorageIdentifier) (string, bool) {
	cctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	id, err := sid.StorageID(cctx)
	if err != nil || id == "" {
		if ctx.Err() == nil {
			a.lg.Warn("asking the broker its storage id failed", zap.Error(err))
		}
		return "", false
	}
	if a.opts.OnStorageID != nil {
		a.opts.OnStorageID(id)
	}
	return id, true
}

// recordedStorage is the storage id the metadata records for broker id.
func recordedStorage(id int32, st *metadata.State) string {
	if b, ok := st.Brokers[id]; ok {
		return b.StorageID
	}
	return ""
}

// sync sends every desired state that differs from the applied one and
// ROLE_NONE for partitions no longer held. It reports whether all calls
// succeeded.
func (a *Applier) sync(ctx context.Context, desired, applied map[key]*stratav1.ApplyPartitionStateRequest) bool {
	ok := true
	for k, req := range desired {
		if prev, found := applied[k]; found && proto.Equal(prev, req) {
			continue
		}
		if err := a.call(ctx, req); err != nil {
			ok = false
			if status.Code(err) == codes.Unavailable {
				// The broker may have restarted: apply everything again once it answers.
				clear(applied)
			}
			continue
		}
		applied[k] = req
	}
	for k := range applied {
		if _, held := desired[k]; held {
			continue
		}
		req := &stratav1.ApplyPartitionStateRequest{Topic: k.topic, Partition: k.partition, Role: stratav1.Role_ROLE_NONE, LeaderId: metadata.NoLeader}
		if err := a.call(ctx, req); err != nil {
			ok = false
			continue
		}
		delete(applied, k)
	}
	return ok
}

// releaseUnknown asks the broker to drop local topics that st does not
// have; true when done (or the broker cannot).
func (a *Applier) releaseUnknown(ctx context.Context, st *metadata.State) bool {
	r, ok := a.broker.(TopicReleaser)
	if !ok {
		return true
	}
	known := make([]string, 0, len(st.Topics))
	for name := range st.Topics {
		known = append(known, name)
	}
	cctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	removed, err := r.ReleaseUnknownTopics(cctx, known)
	if err != nil {
		if ctx.Err() == nil {
			a.lg.Warn("releasing topics the controller no longer has failed", zap.Error(err))
		}
		return false
	}
	if len(removed) > 0 {
		a.lg.Info("broker removed topics deleted while it was away", zap.Strings("topics", removed))
	}
	return true
}

func (a *Applier) call(ctx context.Context, req *stratav1.ApplyPartitionStateRequest) error {
	cctx, cancel := context.WithTimeout(ctx, a.opts.CallTimeout)
	defer cancel()
	if err := a.broker.ApplyPartitionState(cctx, req); err != nil {
		if ctx.Err() == nil {
			a.lg.Warn("apply partition state failed", zap.String("topic", req.Topic),
				zap.Int32("partition", req.Partition), zap.Stringer("role", req.Role), zap.Error(err))
		}
		return fmt.Errorf("applier: %s/%d: %w", req.Topic, req.Partition, err)
	}
	a.lg.Debug("applied partition state", zap.String("topic", req.Topic), zap.Int32("partition", req.Partition),
		zap.Stringer("role", req.Role), zap.Int32("epoch", req.LeaderEpoch), zap.Int32("leader", req.LeaderId))
	if a.opts.OnApply != nil {
		a.opts.OnApply(req)
	}
	return nil
}

// Desired returns the ApplyPartitionState request for every partition
// with a replica on node id.
func Desired(id int32, st *metadata.State) map[key]*stratav1.ApplyPartitionStateRequest {
	out := map[key]*stratav1.ApplyPartitionStateRequest{}
	for name, t := range st.Topics {
		for _, p := range t.Partitions {
			if !contains(p.Replicas, id) {
				continue
			}
			role := stratav1.Role_ROLE_FOLLOWER
			if p.Leader == id {
				role = stratav1.Role_ROLE_LEADER
			}
			var leaderAddr string
			if b, ok := st.Brokers[p.Leader]; ok {
				leaderAddr = b.BrokerAddress
			}
			out[key{name, p.ID}] = &stratav1.ApplyPartitionStateRequest{
				Topic: name, Partition: p.ID, Role: role, LeaderEpoch: p.LeaderEpoch,
				LeaderId: p.Leader, LeaderAddress: leaderAddr,
				Replicas: append([]int32(nil), p.Replicas...), Isr: append([]int32(nil), p.ISR...),
				Config: t.Config.Proto(), TopicId: t.ID, StorageId: recordedStorage(id, st),
			}
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
