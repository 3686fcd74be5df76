// Package producerid hands out idempotent producers' ids (Log.InitProducer).
// Ids come in blocks from a Source: on a single node a file in the data
// directory (Local), in a cluster the controller's Raft log
// (Controller.AllocateProducerIds through this node's replicator). An id
// is never handed out twice: a block is durable before any id of it is
// used, and ids left in a block when the broker stops are skipped.
package producerid

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/strata-log/strata/pkg/atomicfile"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// BlockSize is how many ids a block holds.
const BlockSize = 1000

// Source gives out blocks [first, first+count) that no other call of any
// Source of the cluster ever returns again, and knows the first id none of
// them has given out yet.
type Source interface {
	Block(ctx context.Context) (first int64, count int32, err error)
	Unallocated(ctx context.Context) (int64, error)
}

// ErrNeverIssued: a producer id at or above the first id the cluster has
// not handed out; no InitProducer ever answered it.
var ErrNeverIssued = errors.New("producerid: the producer id was never issued by this cluster")

// refreshEvery bounds how often Issued asks the Source again: an id above
// what it last heard is either new (issued by another broker since) or
// made up, and a client sending made-up ids must not turn each batch into
// a call to the replicator.
const refreshEvery = 100 * time.Millisecond

// lagger is a Source whose answer may trail the allocations the cluster
// made: Remote answers from this node's replicator, which applies the
// controller's Raft log a moment after the controller committed a block
// another broker then handed out.
type lagger interface{ MaxLag() time.Duration }

// Allocator gives out ids one at a time from a Source's blocks, and tells
// issued ids from others. It is safe for concurrent use.
type Allocator struct {
	src Source

	mu        sync.Mutex
	next, end int64

	// unallocated is the first id not handed out as last heard (ids below
	// it were issued); refreshMu serialises asking again, at refreshed.
	unallocated atomic.Int64
	refreshMu   sync.Mutex
	refreshed   time.Time
}

// New returns an allocator over src.
func New(src Source) *Allocator { return &Allocator{src: src} }

// Issued is nil when id was handed out by the cluster (to any broker),
// ErrNeverIssued when it never was, or the error asking the Source. An id
// below the first unallocated one heard of is answered at once; one above
// it asks the Source again, at most every 100ms, and for as long as the
// Source's answer may trail the cluster (MaxLag) before refusing it.
func (a *Allocator) Issued(ctx context.Context, id int64) error {
	if id <= 0 {
		return fmt.Errorf("%w: id %d", ErrNeverIssued, id)
	}
	if id < a.unallocated.Load() {
		return nil
	}
	var deadline time.Time
	if l, ok := a.src.(lagger); ok {
		deadline = time.Now().Add(l.MaxLag())
	}
	for {
		wait, err := a.refresh(ctx)
		if err != nil {
			return err
		}
		if id < a.unallocated.Load() {
			return nil
		}
		if !time.Now().Add(wait).Before(deadline) {
			return fmt.Errorf("%w: id %d, the next id to be issued is %d", ErrNeverIssued, id, a.unallocated.Load())
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// refresh asks the Source for the first unallocated id unless someone did
// within refreshEvery; it returns how long until the next ask is due.
func (a *Allocator) refresh(ctx context.Context) (time.Duration, error) {
	a.refreshMu.Lock()
	defer a.refreshMu.Unlock()
	if since := time.Since(a.refreshed); since < refreshEvery {
		return refreshEvery - since, nil
	}
	a.refreshed = time.Now()
	next, err := a.src.Unallocated(ctx)
	if err != nil {
		return 0, fmt.Errorf("producerid: ask which ids were issued: %w", err)
	}
	a.observe(next)
	return refreshEvery, nil
}

// observe raises the first unallocated id heard of to next.
func (a *Allocator) observe(next int64) {
	for {
		cur := a.unallocated.Load()
		if next <= cur || a.unallocated.CompareAndSwap(cur, next) {
			return
		}
	}
}

// Next returns a new producer id (> 0).
func (a *Allocator) Next(ctx context.Context) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next >= a.end {
		first, count, err := a.src.Block(ctx)
		if err != nil {
			return 0, fmt.Errorf("producerid: allocate a block: %w", err)
		}
		if first <= 0 || count <= 0 {
			return 0, fmt.Errorf("producerid: bad block [%d, +%d)", first, count)
		}
		a.next, a.end = first, first+int64(count)
		a.observe(a.end)
	}
	id := a.next
	a.next++
	return id, nil
}

// fileName holds a single node's next unallocated id.
const fileName = "producer-ids"

// Local is a single node's Source: the next unallocated id is kept in
// <dir>/producer-ids, written atomically (temp file, fsync, rename, fsync
// dir) before a block is handed out.
type Local struct {
	path string
	mu   sync.Mutex
}

// NewLocal keeps its file in dir.
func NewLocal(dir string) *Local { return &Local{path: filepath.Join(dir, fileName)} }

// Block implements Source.
func (l *Local) Block(context.Context) (int64, int32, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	next, err := l.readLocked()
	if err != nil {
		return 0, 0, err
	}
	if err := atomicfile.Write(l.path, []byte(strconv.FormatInt(next+BlockSize, 10)+"\n"), 0o644); err != nil {
		return 0, 0, err
	}
	return next, BlockSize, nil
}

// Unallocated implements Source: the file's id (1 without the file).
func (l *Local) Unallocated(context.Context) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readLocked()
}

// readLocked reads the next unallocated id.
func (l *Local) readLocked() (int64, error) {
	b, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 1, nil
	case err != nil:
		return 0, err
	}
	next, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || next < 1 {
		return 0, fmt.Errorf("%s: not a producer id: %q", l.path, b)
	}
	return next, nil
}

// Remote is a cluster broker's Source: its replicator forwards the request
// to the controller, which commits the block through Raft.
type Remote struct {
	c      stratav1.ControllerClient
	md     stratav1.MetadataClient
	nodeID int32
}

// NewRemote asks through cc, the connection to this node's replicator.
func NewRemote(cc grpc.ClientConnInterface, nodeID int32) *Remote {
	return &Remote{c: stratav1.NewControllerClient(cc), md: stratav1.NewMetadataClient(cc), nodeID: nodeID}
}

// MaxLag is how long an id above the replicator's answer is asked about
// again before it is refused: the replicator applies the controller's
// Raft log a moment after the controller committed a block (milliseconds;
// seconds when the node was cut off, and then its metadata calls fail).
func (r *Remote) MaxLag() time.Duration { return 2 * time.Second }

// Unallocated implements Source: the replicator's metadata names it.
func (r *Remote) Unallocated(ctx context.Context) (int64, error) {
	resp, err := r.md.Metadata(ctx, &stratav1.MetadataRequest{NoTopics: true})
	if err != nil {
		return 0, err
	}
	if resp.GetNextProducerId() <= 0 {
		return 0, errors.New("the replicator's metadata has no next_producer_id (an older replicator?)")
	}
	return resp.GetNextProducerId(), nil
}

// Block implements Source.
func (r *Remote) Block(ctx context.Context) (int64, int32, error) {
	resp, err := r.c.AllocateProducerIds(ctx, &stratav1.AllocateProducerIdsRequest{BrokerId: r.nodeID})
	if err != nil {
		return 0, 0, err
	}
	return resp.GetFirstId(), resp.GetCount(), nil
}
