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

	"google.golang.org/grpc"

	"github.com/strata-log/strata/pkg/atomicfile"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// BlockSize is how many ids a block holds.
const BlockSize = 1000

// Source gives out blocks [first, first+count) that no other call of any
// Source of the cluster ever returns again.
type Source interface {
	Block(ctx context.Context) (first int64, count int32, err error)
}

// Allocator gives out ids one at a time from a Source's blocks. It is safe
// for concurrent use.
type Allocator struct {
	src Source

	mu        sync.Mutex
	next, end int64
}

// New returns an allocator over src.
func New(src Source) *Allocator { return &Allocator{src: src} }

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
	next := int64(1)
	b, err := os.ReadFile(l.path)
	switch {
	case err == nil:
		next, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || next < 1 {
			return 0, 0, fmt.Errorf("%s: not a producer id: %q", l.path, b)
		}
	case !errors.Is(err, os.ErrNotExist):
		return 0, 0, err
	}
	if err := atomicfile.Write(l.path, []byte(strconv.FormatInt(next+BlockSize, 10)+"\n"), 0o644); err != nil {
		return 0, 0, err
	}
	return next, BlockSize, nil
}

// Remote is a cluster broker's Source: its replicator forwards the request
// to the controller, which commits the block through Raft.
type Remote struct {
	c      stratav1.ControllerClient
	nodeID int32
}

// NewRemote asks through cc, the connection to this node's replicator.
func NewRemote(cc grpc.ClientConnInterface, nodeID int32) *Remote {
	return &Remote{c: stratav1.NewControllerClient(cc), nodeID: nodeID}
}

// Block implements Source.
func (r *Remote) Block(ctx context.Context) (int64, int32, error) {
	resp, err := r.c.AllocateProducerIds(ctx, &stratav1.AllocateProducerIdsRequest{BrokerId: r.nodeID})
	if err != nil {
		return 0, 0, err
	}
	return resp.GetFirstId(), resp.GetCount(), nil
}
