// Package topic is the broker's topic registry: which topics exist, their
// persisted config, and their open partitions under
// <data-dir>/topics/<topic>/<partition>/.
package topic

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/atomicfile"
	"github.com/strata-log/strata/pkg/logstore"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// Topic is one topic and its open partitions.
type Topic struct {
	name       string
	id         string // the controller's topic id; empty on a single node
	cfg        atomic.Pointer[topicconfig.Config]
	partitions []*partition.Partition // fixed at creation
}

// Name is the topic name.
func (t *Topic) Name() string { return t.name }

// ID is the controller's topic id (empty on a single node).
func (t *Topic) ID() string { return t.id }

// Config is the topic's current config.
func (t *Topic) Config() topicconfig.Config { return *t.cfg.Load() }

// Partitions are the topic's partitions, indexed by id. Do not modify.
func (t *Topic) Partitions() []*partition.Partition { return t.partitions }

// OpenLogFunc opens (creating if missing) one partition's log.
type OpenLogFunc func(dir string, opts logstore.Options) (partition.Log, error)

// Options configure a Registry.
type Options struct {
	// Dir is the broker's data directory; topics live under Dir/topics.
	Dir string
	// Defaults fill the zero fields of a created topic's config.
	Defaults topicconfig.Config
	// State returns the cluster state of a newly opened partition.
	State func(topic string, id int32) partition.State
	// OpenLog opens a partition log; nil means logstore.Open.
	OpenLog OpenLogFunc
	// ObserveFsync, when set, receives every log fsync's duration.
	ObserveFsync func(time.Duration)
	// LeaderLease is every partition's leader lease
	// (partition.Options.LeaderLease); zero means none (a single node).
	LeaderLease time.Duration
	// ProducerIDExpiry is partition.Options.ProducerIDExpiry.
	ProducerIDExpiry time.Duration
	Logger           *zap.Logger
}

// Registry holds the broker's topics. Lookups are concurrent; create,
// delete and alter are serialized.
type Registry struct {
	opts    Options
	lg      *zap.Logger
	topics  string // Dir/topics
	deleted string // Dir/deleted: topics being removed
	// storageID is the data directory's identity (storageid.go).
	storageID string

	admin sync.Mutex // serializes create/delete/alter and Close

	mu     sync.RWMutex
	byName map[string]*Topic
	closed bool
}

// StorageID is the data directory's storage id, created with the
// directory: a new id means a new, empty directory (a replaced disk).
func (r *Registry) StorageID() string { return r.storageID }

// Open loads every topic under opts.Dir and opens its partitions.
func Open(opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.OpenLog == nil {
		opts.OpenLog = func(dir string, o logstore.Options) (partition.Log, error) { return logstore.Open(dir, o) }
	}
	if opts.State == nil {
		return nil, errors.New("topic: Options.State is required")
	}
	r := &Registry{
		opts:    opts,
		lg:      opts.Logger,
		topics:  filepath.Join(opts.Dir, "topics"),
		deleted: filepath.Join(opts.Dir, "deleted"),
		byName:  make(map[string]*Topic),
	}
	for _, d := range []string{opts.Dir, r.topics} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("topic: %w", err)
		}
	}
	sid, err := loadStorageID(opts.Dir)
	if err != nil {
		return nil, err
	}
	r.storageID = sid
	// Deletions interrupted by a crash finish now.
	if err := os.RemoveAll(r.deleted); err != nil {
		return nil, fmt.Errorf("topic: removing deleted topics: %w", err)
	}
	entries, err := os.ReadDir(r.topics)
	if err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() || topicconfig.ValidateName(e.Name()) != nil {
			continue
		}
		dir := filepath.Join(r.topics, e.Name())
		ff, err := readConfig(dir)
		if errors.Is(err, os.ErrNotExist) {
			// A creation that crashed before its commit point.
			r.lg.Warn("removing incompletely created topic", zap.String("dir", dir))
			if err := os.RemoveAll(dir); err != nil {
				return nil, errors.Join(fmt.Errorf("topic: %w", err), r.closeAll())
			}
			continue
		}
		if err == nil && ff.Name != e.Name() {
			err = fmt.Errorf("topic: %s names topic %q", dir, ff.Name)
		}
		// A topic written before a setting existed gets the setting's
		// default (its stored config is otherwise complete).
		cfg := r.opts.Defaults.Merge(ff.Config)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			return nil, errors.Join(err, r.closeAll())
		}
		t, err := r.openTopic(ff.Name, cfg)
		if err != nil {
			return nil, errors.Join(err, r.closeAll())
		}
		t.id = ff.ID
		r.byName[t.name] = t
		r.lg.Info("topic loaded", zap.String("topic", t.name), zap.Int32("partitions", ff.Config.Partitions))
	}
	return r, nil
}

// openTopic opens (creating as needed) every partition of a topic.
func (r *Registry) openTopic(name string, cfg topicconfig.Config) (*Topic, error) {
	lopts, err := cfg.LogOptions()
	if err != nil {
		return nil, err
	}
	lopts.Logger = r.lg
	lopts.ObserveFsync = r.opts.ObserveFsync
	t := &Topic{name: name}
	t.cfg.Store(&cfg)
	for id := int32(0); id < cfg.Partitions; id++ {
		dir := filepath.Join(r.topics, name, strconv.Itoa(int(id)))
		l, err := r.opts.OpenLog(dir, lopts)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("topic: open %s/%d: %w", name, id, err), closePartitions(t.partitions))
		}
		// A failed log is reopened with the topic's config at that time.
		reopen := func() (partition.Log, error) {
			o, err := t.Config().LogOptions()
			if err != nil {
				return nil, err
			}
			o.Logger, o.ObserveFsync = r.lg, r.opts.ObserveFsync
			return r.opts.OpenLog(dir, o)
		}
		t.partitions = append(t.partitions, partition.New(newReopenableLog(l, reopen, r.lg), partition.Options{
			Topic:             name,
			ID:                id,
			MaxRecordBytes:    int(cfg.MaxRecordBytes),
			MinInsyncReplicas: int(cfg.MinInsyncReplicas),
			Compacted:         cfg.Compacted(),
			State:             r.opts.State(name, id),
			LeaderLease:       r.opts.LeaderLease,
			ProducerIDExpiry:  r.opts.ProducerIDExpiry,
			Logger:            r.lg,
		}))
	}
	return t, nil
}

// Get returns the named topic.
func (r *Registry) Get(name string) (*Topic, error) {
	r.mu.RLock()
	t, ok := r.byName[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return t, nil
}

// Partition returns one partition of a topic.
func (r *Registry) Partition(name string, id int32) (*partition.Partition, error) {
	t, err := r.Get(name)
	if err != nil {
		return nil, err
	}
	if id < 0 || int(id) >= len(t.partitions) {
		return nil, fmt.Errorf("%w: %q has partitions [0, %d), not %d", ErrPartitionNotFound, name, len(t.partitions), id)
	}
	return t.partitions[id], nil
}

// List returns every topic, sorted by name.
func (r *Registry) List() []*Topic {
	r.mu.RLock()
	ts := make([]*Topic, 0, len(r.byName))
	for _, t := range r.byName {
		ts = append(ts, t)
	}
	r.mu.RUnlock()
	slices.SortFunc(ts, func(a, b *Topic) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return ts
}

// Create makes a topic: its config is the registry defaults overridden by
// the non-zero fields of override. The topic directory and partition logs
// are created first; writing topic.json is the commit point.
func (r *Registry) Create(ctx context.Context, name string, override topicconfig.Config) (*Topic, error) {
	return r.create(ctx, name, "", override)
}

// create is Create with the controller's topic id (cluster mode).
func (r *Registry) create(ctx context.Context, name, id string, override topicconfig.Config) (*Topic, error) {
	if err := topicconfig.ValidateName(name); err != nil {
		return nil, err
	}
	cfg := r.opts.Defaults.Merge(override)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r.admin.Lock()
	defer r.admin.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	if _, err := r.Get(name); err == nil {
		return nil, fmt.Errorf("%w: %q", ErrExists, name)
	}
	dir := filepath.Join(r.topics, name)
	if err := os.RemoveAll(dir); err != nil { // leftovers of a failed create
		return nil, fmt.Errorf("topic: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	t, err := r.openTopic(name, cfg)
	if err == nil {
		t.id = id
		err = writeConfig(dir, fileFormat{Version: fileVersion, Name: name, Config: cfg, ID: id})
		if err == nil {
			err = atomicfile.SyncDir(r.topics)
		}
		if err != nil {
			err = errors.Join(err, closePartitions(t.partitions))
		}
	}
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	r.mu.Lock()
	r.byName[name] = t
	r.mu.Unlock()
	r.lg.Info("topic created", zap.String("topic", name), zap.Int32("partitions", cfg.Partitions), zap.String("fsync", cfg.Fsync))
	return t, nil
}

// Delete removes a topic: it disappears from lookups, its partitions close
// (open readers and waiters end with partition.ErrClosed), and its directory
// is moved aside and removed.
func (r *Registry) Delete(ctx context.Context, name string) error {
	r.admin.Lock()
	defer r.admin.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.checkOpen(); err != nil {
		return err
	}
	t, err := r.Get(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.byName, name)
	r.mu.Unlock()
	closeErr := closePartitions(t.partitions)
	if closeErr != nil {
		r.lg.Warn("closing deleted topic's partitions", zap.String("topic", name), zap.Error(closeErr))
	}
	if err := os.MkdirAll(r.deleted, 0o755); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	aside := filepath.Join(r.deleted, name+"."+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Rename(filepath.Join(r.topics, name), aside); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if err := errors.Join(atomicfile.SyncDir(r.topics), atomicfile.SyncDir(r.deleted)); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if err := os.RemoveAll(aside); err != nil {
		// Open will finish the removal.
		r.lg.Warn("removing deleted topic", zap.String("dir", aside), zap.Error(err))
	}
	r.lg.Info("topic deleted", zap.String("topic", name))
	return nil
}

// Alter replaces the non-zero fields of a topic's config and persists it
// (topicconfig.Config.Alter: partitions and replication factor cannot
// change). Record size and min ISR apply at once; storage settings
// (retention, segments, fsync) apply when the partitions' logs are next
// opened.
func (r *Registry) Alter(ctx context.Context, name string, override topicconfig.Config) (*Topic, error) {
	r.admin.Lock()
	defer r.admin.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.checkOpen(); err != nil {
		return nil, err
	}
	t, err := r.Get(name)
	if err != nil {
		return nil, err
	}
	next, err := t.Config().Alter(override)
	if err != nil {
		return nil, err
	}
	if err := writeConfig(filepath.Join(r.topics, name), fileFormat{Version: fileVersion, Name: name, Config: next, ID: t.id}); err != nil {
		return nil, err
	}
	t.cfg.Store(&next)
	for _, p := range t.partitions {
		p.SetLimits(int(next.MaxRecordBytes), int(next.MinInsyncReplicas))
		// A log compacted once keeps its gaps: a follower still copying
		// them must take them after the policy went back to delete.
		if next.Compacted() {
			p.SetCompacted(true)
		}
	}
	r.lg.Info("topic config altered", zap.String("topic", name))
	return t, nil
}

// Compact cleans every partition of every topic whose cleanup.policy
// compacts (see Partition.Compact), one at a time, until ctx ends; it
// logs what each clean removed and every failure.
func (r *Registry) Compact(ctx context.Context) {
	for _, t := range r.List() {
		cfg := t.Config()
		if !cfg.Compacted() {
			continue
		}
		retention := time.Duration(cfg.DeleteRetentionMs) * time.Millisecond
		for _, p := range t.Partitions() {
			if ctx.Err() != nil {
				return
			}
			st, err := p.Compact(ctx, retention)
			switch {
			case err != nil && ctx.Err() == nil && !errors.Is(err, logstore.ErrClosed):
				r.lg.Warn("compaction failed", zap.String("topic", t.Name()), zap.Int32("partition", p.ID()), zap.Error(err))
			case st.RecordsRemoved+st.TombstonesRemoved > 0:
				r.lg.Info("partition compacted", zap.String("topic", t.Name()), zap.Int32("partition", p.ID()),
					zap.Int64("records_removed", st.RecordsRemoved), zap.Int64("tombstones_removed", st.TombstonesRemoved),
					zap.Int64("bytes_before", st.BytesBefore), zap.Int64("bytes_after", st.BytesAfter), zap.Duration("took", st.Duration))
			}
		}
	}
}

// ApplyRetention runs retention on every partition, logging failures.
func (r *Registry) ApplyRetention() {
	for _, t := range r.List() {
		for _, p := range t.partitions {
			if err := p.ApplyRetention(); err != nil && !errors.Is(err, logstore.ErrClosed) {
				r.lg.Warn("retention failed", zap.String("topic", t.name), zap.Int32("partition", p.ID()), zap.Error(err))
			}
		}
	}
}

// Close syncs and closes every partition; later admin calls fail with ErrClosed.
func (r *Registry) Close() error {
	r.admin.Lock()
	defer r.admin.Unlock()
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	return r.closeAll()
}

func (r *Registry) closeAll() error {
	var errs []error
	for _, t := range r.List() {
		errs = append(errs, closePartitions(t.partitions))
	}
	return errors.Join(errs...)
}

func (r *Registry) checkOpen() error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	return nil
}

func closePartitions(ps []*partition.Partition) error {
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// Ensure makes the local copy of a topic match the controller's, as a
// cluster-mode broker is told it (ApplyPartitionState): it creates the
// topic when missing and alters it when its config differs. A local topic
// with another id, or with a different partition count, is a stale copy of
// a topic deleted (and perhaps recreated) while this broker was away: the
// controller's metadata is the truth, so the stale copy and its records are
// deleted and the topic created afresh; its old records are never served
// under the new topic. A local copy without an id (made before ids) takes
// the controller's.
func (r *Registry) Ensure(ctx context.Context, name, id string, cfg topicconfig.Config) (*Topic, error) {
	t, err := r.Get(name)
	if errors.Is(err, ErrNotFound) {
		t, err = r.create(ctx, name, id, cfg)
		if errors.Is(err, ErrExists) { // created concurrently
			return r.Get(name)
		}
		return t, err
	}
	if err != nil {
		return nil, err
	}
	cur := t.Config()
	stale := ""
	switch {
	case id != "" && t.id != "" && t.id != id:
		stale = "a different topic id"
	case cfg.Partitions != 0 && cfg.Partitions != cur.Partitions:
		stale = "a different partition count"
	}
	if stale != "" {
		r.lg.Warn("local topic is a stale copy (deleted while this broker was away); replacing it",
			zap.String("topic", name), zap.String("why", stale), zap.String("local_id", t.id), zap.String("id", id),
			zap.Int32("local_partitions", cur.Partitions), zap.Int32("partitions", cfg.Partitions))
		if err := r.Delete(ctx, name); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return r.Ensure(ctx, name, id, cfg)
	}
	if id != "" && t.id == "" {
		if err := r.adoptID(name, t, id); err != nil {
			return nil, err
		}
	}
	// Partitions and replication factor are fixed; the rest may change.
	cfg.Partitions, cfg.ReplicationFactor = 0, 0
	if cur.Merge(cfg) == cur {
		return t, nil
	}
	return r.Alter(ctx, name, cfg)
}

// adoptID records the controller's id for a local topic that had none.
func (r *Registry) adoptID(name string, t *Topic, id string) error {
	r.admin.Lock()
	defer r.admin.Unlock()
	if err := writeConfig(filepath.Join(r.topics, name), fileFormat{Version: fileVersion, Name: name, Config: t.Config(), ID: id}); err != nil {
		return err
	}
	t.id = id
	return nil
}
