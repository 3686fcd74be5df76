package group

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// The coordinator's metrics: per group, exported by the broker
// coordinating it (and only while it does, so that after a failover the
// series come from the new coordinator alone).
var (
	descMembers = prometheus.NewDesc("strata_group_members", "Members of the consumer group.", []string{"group"}, nil)
	descEpoch   = prometheus.NewDesc("strata_group_epoch", "The consumer group's epoch (bumped by every rebalance).", []string{"group"}, nil)
	descState   = prometheus.NewDesc("strata_group_state", "1 for the consumer group's state (empty, stable or reconciling).", []string{"group", "state"}, nil)
	descOffset  = prometheus.NewDesc("strata_group_committed_offset", "The group's committed offset (next record to consume) of a partition.", []string{"group", "topic", "partition"}, nil)
	descLag     = prometheus.NewDesc("strata_group_lag_records", "High watermark minus the group's committed offset of a partition (records not yet consumed and committed).", []string{"group", "topic", "partition"}, nil)
)

// metrics are the coordinator's own counters.
type metrics struct {
	rebalances *prometheus.CounterVec
	commits    prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "strata_group_rebalances_total", Help: "Rebalances (group epoch bumps) of consumer groups coordinated here.",
		}, []string{"group"}),
		commits: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "strata_group_commit_duration_seconds", Help: "Offset commits, from request to the offsets being on every in-sync replica.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
}

// Collectors are the coordinator's metrics, to register on the broker's
// registry.
func (c *Coordinator) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.m.rebalances, c.m.commits, groupCollector{c}}
}

type groupCollector struct{ c *Coordinator }

func (g groupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descEpoch, descState, descOffset, descLag} {
		ch <- d
	}
}

func (g groupCollector) Collect(ch chan<- prometheus.Metric) {
	c := g.c
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		shards = append(shards, s)
	}
	hw := make(map[TP]int64, len(c.hw))
	for tp, v := range c.hw {
		hw[tp] = v
	}
	c.mu.Unlock()
	for _, s := range shards {
		st := s.p.State()
		if st.Role != partition.RoleLeader || st.LeaderEpoch != s.epoch {
			continue
		}
		s.mu.Lock()
		if s.l == nil || s.stopped {
			s.mu.Unlock()
			continue
		}
		for name, g := range s.l.groups {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(len(g.members)), name)
			ch <- prometheus.MustNewConstMetric(descEpoch, prometheus.GaugeValue, float64(g.Epoch), name)
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, 1, name, g.State())
			for tp, o := range g.Offsets {
				p := strconv.Itoa(int(tp.Partition))
				ch <- prometheus.MustNewConstMetric(descOffset, prometheus.GaugeValue, float64(o.Offset), name, tp.Topic, p)
				if h, ok := hw[tp]; ok {
					ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, float64(max(h-o.Offset, 0)), name, tp.Topic, p)
				}
			}
		}
		s.mu.Unlock()
	}
}

// lagInterval is how often the coordinator refreshes the high watermarks
// of the partitions its groups have committed offsets for.
const lagInterval = 5 * time.Second

// refreshLoop keeps c.hw current for lag, until Close.
func (c *Coordinator) refreshLoop() {
	defer c.wg.Done()
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.refreshHW()
		case <-c.closed:
			return
		}
	}
}

// refreshHW asks for the high watermark of every partition with a
// committed offset in a group coordinated here.
func (c *Coordinator) refreshHW() {
	tps := Set{}
	c.mu.Lock()
	shards := make([]*shard, 0, len(c.shards))
	for _, s := range c.shards {
		shards = append(shards, s)
	}
	c.mu.Unlock()
	for _, s := range shards {
		s.mu.Lock()
		if s.l != nil && !s.stopped {
			for _, g := range s.l.groups {
				for tp := range g.Offsets {
					tps[tp] = struct{}{}
				}
			}
		}
		s.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.Background(), lagInterval)
	defer cancel()
	go func() {
		select {
		case <-c.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	gone := map[string]bool{}
	for _, tp := range tps.Sorted() {
		if gone[tp.Topic] {
			continue
		}
		hw, err := c.cluster.HighWatermark(ctx, tp.Topic, tp.Partition)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrNoPartition) {
				gone[tp.Topic] = true
				continue
			}
			c.lg.Debug("high watermark for lag unavailable", zap.String("topic", tp.Topic), zap.Int32("partition", tp.Partition), zap.Error(err))
			continue
		}
		c.mu.Lock()
		c.hw[tp] = hw
		c.mu.Unlock()
	}
	for topic := range gone {
		c.forgetTopic(ctx, shards, topic)
	}
}

// forgetTopic deletes every group's committed offsets of a topic that no
// longer exists (tombstones in the offsets partition first), so that a
// topic created again under the name starts without them.
func (c *Coordinator) forgetTopic(ctx context.Context, shards []*shard, topic string) {
	for _, s := range shards {
		type gone struct {
			group string
			tp    TP
		}
		var drop []gone
		var recs []*stratav1.Record
		s.mu.Lock()
		if s.l != nil && !s.stopped {
			for name, g := range s.l.groups {
				for tp := range g.Offsets {
					if tp.Topic == topic {
						if r, err := offsetRecord(name, tp, nil); err == nil {
							drop = append(drop, gone{name, tp})
							recs = append(recs, r)
						}
					}
				}
			}
		}
		s.mu.Unlock()
		if len(recs) == 0 {
			continue
		}
		res, err := s.p.Produce(ctx, recs, stratav1.Acks_ACKS_ALL)
		if err != nil {
			c.lg.Warn("offsets of a deleted topic not removed", zap.String("topic", topic), zap.Error(err))
			continue
		}
		s.mu.Lock()
		for i, d := range drop {
			s.l.applyOffset(d.group, d.tp, nil, res.Base+int64(i))
		}
		s.mu.Unlock()
		c.lg.Info("offsets of a deleted topic removed", zap.String("topic", topic), zap.Int("offsets", len(drop)))
	}
}
