package cluster

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// offsetsTimeout bounds the Metadata calls that fill in offsets: a node
// that does not answer in time leaves its partitions' offsets unknown
// rather than holding the whole answer.
const offsetsTimeout = 5 * time.Second

// offsetsKnown reports whether a node filled in a partition's offsets,
// which it does only for the partitions it leads.
func offsetsKnown(p *stratav1.PartitionMetadata) bool {
	return p.GetLogStartOffset() >= 0 && p.GetLogEndOffset() >= 0 && p.GetHighWatermark() >= 0
}

type partitionKey struct {
	topic     string
	partition int32
}

// fillOffsets fills in the offsets of the partitions of ts the answering
// node did not lead, from the nodes that do. Leaders advertise addresses
// for clients (in compose, the host's published ports), which admin may
// not reach, so every node of --cluster-addrs is asked at once for the
// topics' metadata and each partition takes its offsets from the node
// that reports them, its leader. Should two nodes report a partition (a
// deposed leader not yet told), the higher leader epoch wins, then the
// longer log. Offsets no node reports (offline, or led by a node admin
// does not know) stay -1.
func (c *Client) fillOffsets(ctx context.Context, ts ...*stratav1.TopicMetadata) {
	missing := make(map[partitionKey]*stratav1.PartitionMetadata)
	var names []string
	for _, t := range ts {
		asked := false
		for _, p := range t.GetPartitions() {
			if offsetsKnown(p) {
				continue
			}
			p.LogStartOffset, p.LogEndOffset, p.HighWatermark = -1, -1, -1
			if p.GetOffline() || p.GetLeaderId() < 0 {
				continue
			}
			missing[partitionKey{t.GetName(), p.GetPartition()}] = p
			if !asked {
				names, asked = append(names, t.GetName()), true
			}
		}
	}
	if len(missing) == 0 {
		return
	}
	for k, l := range c.leaders(ctx, names...) {
		if p, ok := missing[k]; ok {
			p.LogStartOffset, p.LogEndOffset, p.HighWatermark = l.p.GetLogStartOffset(), l.p.GetLogEndOffset(), l.p.GetHighWatermark()
		}
	}
}

// leader is the node of --cluster-addrs that reports a partition's
// offsets, and its answer.
type leader struct {
	node int
	p    *stratav1.PartitionMetadata
}

// leaders asks every node at once for the metadata of topics and returns,
// for each partition some node reports offsets for, the node leading it:
// the higher leader epoch, then the longer log, should two report it.
func (c *Client) leaders(ctx context.Context, topics ...string) map[partitionKey]leader {
	ctx, cancel := context.WithTimeout(ctx, offsetsTimeout)
	defer cancel()
	answers := make([]*stratav1.MetadataResponse, len(c.meta))
	var wg sync.WaitGroup
	for i, mc := range c.meta {
		wg.Go(func() {
			resp, err := mc.Metadata(ctx, &stratav1.MetadataRequest{Topics: topics})
			if err != nil {
				c.lg.Debug("partition offsets not known", zap.String("addr", c.addrs[i]), zap.Error(err))
				return
			}
			answers[i] = resp
		})
	}
	wg.Wait()
	best := make(map[partitionKey]leader)
	for i, resp := range answers {
		for _, t := range resp.GetTopics() {
			for _, p := range t.GetPartitions() {
				k := partitionKey{t.GetName(), p.GetPartition()}
				if !offsetsKnown(p) {
					continue
				}
				if b, ok := best[k]; !ok || p.GetLeaderEpoch() > b.p.GetLeaderEpoch() ||
					p.GetLeaderEpoch() == b.p.GetLeaderEpoch() && p.GetLogEndOffset() > b.p.GetLogEndOffset() {
					best[k] = leader{node: i, p: p}
				}
			}
		}
	}
	return best
}
