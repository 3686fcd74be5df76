// Package scrape is admin's own scraper of the brokers' and replicators'
// /metrics: every Interval it reads each target, turns the brokers'
// per-topic produce and consume counters into rates and the replicators'
// lag gauges into a per-topic maximum, and keeps the last Window of them
// in a small in-memory ring for the console's charts. It also remembers
// how each target last answered, which the console shows as health.
package scrape

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
)

// Metrics read from the targets.
const (
	metricProducedRecords = "strata_broker_produced_records_total"
	metricProducedBytes   = "strata_broker_produced_bytes_total"
	metricConsumedRecords = "strata_broker_consumed_records_total"
	metricConsumedBytes   = "strata_broker_consumed_bytes_total"
	metricLagRecords      = "strata_replication_lag_records"
	metricLocalBrokerUp   = "strata_local_broker_up"
)

// maxBodyBytes bounds one target's answer.
const maxBodyBytes = 16 << 20

// Options are the scraper's settings. Zero values mean defaults.
type Options struct {
	// Interval between scrapes (5s).
	Interval time.Duration
	// Window of history kept (15m).
	Window time.Duration
	// Timeout of one target's scrape (the interval, at most 3s).
	Timeout time.Duration
	// Client does the requests (a plain client: the services' /metrics
	// listeners are plain HTTP on an internal network).
	Client *http.Client
	// Now is the clock (time.Now).
	Now func() time.Time
}

// Rates are one topic's figures at one point: per-second rates over the
// interval before it, summed over every broker, and the largest
// replication lag any replicator reported for any of its partitions.
type Rates struct {
	ProduceRecords, ProduceBytes float64
	ConsumeRecords, ConsumeBytes float64
	// LagRecords is -1 when no replicator reported the topic.
	LagRecords float64
}

// Point is one scrape round. Points handed out are never changed.
type Point struct {
	At     time.Time
	Topics map[string]Rates
}

// Health is how one target last answered.
type Health struct {
	Target
	// Scraped is false until the first scrape finished.
	Scraped bool
	Up      bool
	// At is the last scrape, LastUp the last that succeeded.
	At, LastUp time.Time
	// Err is the last failure, "" when Up.
	Err string
	// LocalBrokerUp is a replicator's own probe of its broker
	// (strata_local_broker_up); nil for brokers or when not reported.
	LocalBrokerUp *bool
}

// counters are one broker's cumulative per-topic counters.
type counters struct {
	at  time.Time
	val map[string][4]float64
}

// Scraper scrapes targets. Run drives it; the readers are safe to call
// at any time.
type Scraper struct {
	targets []Target
	opts    Options
	lg      *zap.Logger

	mu     sync.Mutex
	ring   []Point // guarded by mu; oldest first, at most cap
	cap    int
	health []Health // guarded by mu; per target
	prev   map[string]counters
}

// New returns a scraper of targets. lg may be nil.
func New(targets []Target, opts Options, lg *zap.Logger) *Scraper {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Window <= 0 {
		opts.Window = 15 * time.Minute
	}
	if opts.Timeout <= 0 {
		opts.Timeout = min(opts.Interval, 3*time.Second)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Scraper{targets: slices.Clone(targets), opts: opts, lg: lg,
		cap: int(opts.Window/opts.Interval) + 1, prev: map[string]counters{}}
	for _, t := range targets {
		s.health = append(s.health, Health{Target: t})
	}
	return s
}

// Interval returns the scrape interval.
func (s *Scraper) Interval() time.Duration { return s.opts.Interval }

// Window returns how much history is kept.
func (s *Scraper) Window() time.Duration { return s.opts.Window }

// Targets returns the targets.
func (s *Scraper) Targets() []Target { return slices.Clone(s.targets) }

// Run scrapes at once and then every Interval until ctx ends.
func (s *Scraper) Run(ctx context.Context) {
	if len(s.targets) == 0 {
		return
	}
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		s.Scrape(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Scrape does one round: every target at once, then one Point.
func (s *Scraper) Scrape(ctx context.Context) {
	type result struct {
		fams map[string]*dto.MetricFamily
		err  error
	}
	results := make([]result, len(s.targets))
	var wg sync.WaitGroup
	for i, t := range s.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i].fams, results[i].err = s.fetch(ctx, t)
		}()
	}
	wg.Wait()
	now := s.opts.Now()

	s.mu.Lock()
	defer s.mu.Unlock()
	pt := Point{At: now, Topics: map[string]Rates{}}
	rates := func(topic string) Rates {
		r, ok := pt.Topics[topic]
		if !ok {
			r.LagRecords = -1
		}
		return r
	}
	for i, t := range s.targets {
		h := &s.health[i]
		h.Scraped, h.At = true, now
		res := results[i]
		if res.err != nil {
			if h.Up || h.LastUp.IsZero() {
				s.lg.Info("scrape failed", zap.String("target", t.Name), zap.String("url", t.URL), zap.Error(res.err))
			}
			h.Up, h.Err, h.LocalBrokerUp = false, res.err.Error(), nil
			continue
		}
		h.Up, h.Err, h.LastUp = true, "", now
		switch t.Kind {
		case KindBroker:
			cur := counters{at: now, val: brokerCounters(res.fams)}
			if prev, ok := s.prev[t.Name]; ok {
				dt := cur.at.Sub(prev.at).Seconds()
				for topic, c := range cur.val {
					r := rates(topic)
					p := prev.val[topic]
					d := [4]float64{}
					for k := range c {
						d[k] = c[k] - p[k]
						if d[k] < 0 { // the broker restarted: its counters began again
							d[k] = c[k]
						}
					}
					if dt > 0 {
						r.ProduceRecords += d[0] / dt
						r.ProduceBytes += d[1] / dt
						r.ConsumeRecords += d[2] / dt
						r.ConsumeBytes += d[3] / dt
					}
					pt.Topics[topic] = r
				}
			} else {
				for topic := range cur.val {
					pt.Topics[topic] = rates(topic)
				}
			}
			s.prev[t.Name] = cur
		case KindReplicator:
			for topic, lag := range replicatorLag(res.fams) {
				r := rates(topic)
				r.LagRecords = math.Max(r.LagRecords, lag)
				pt.Topics[topic] = r
			}
			h.LocalBrokerUp = gauge(res.fams, metricLocalBrokerUp)
		}
	}
	s.ring = append(s.ring, pt)
	if len(s.ring) > s.cap {
		s.ring = slices.Delete(s.ring, 0, len(s.ring)-s.cap)
	}
}

// Points returns the kept points, oldest first. They must not be changed.
func (s *Scraper) Points() []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ring)
}

// Health returns how each target last answered, in target order.
func (s *Scraper) Health() []Health {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.health)
	for i := range out {
		if v := out[i].LocalBrokerUp; v != nil {
			b := *v
			out[i].LocalBrokerUp = &b
		}
	}
	return out
}

// fetch reads and parses one target's metrics.
func (s *Scraper) fetch(ctx context.Context, t Target) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := resp.Body.Close(); err != nil {
			s.lg.Debug("close scrape body", zap.Error(err))
		}
	}()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", t.URL, resp.Status)
	}
	body := io.LimitReader(resp.Body, maxBodyBytes+1)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", t.URL, err)
	}
	if n, err := io.Copy(io.Discard, body); err != nil || n > 0 {
		return nil, errors.Join(fmt.Errorf("%s: answer over %d bytes", t.URL, maxBodyBytes), err)
	}
	return fams, nil
}

// brokerCounters sums a broker's four per-topic counters by topic.
func brokerCounters(fams map[string]*dto.MetricFamily) map[string][4]float64 {
	out := map[string][4]float64{}
	for k, name := range [...]string{metricProducedRecords, metricProducedBytes, metricConsumedRecords, metricConsumedBytes} {
		for _, m := range fams[name].GetMetric() {
			topic := label(m, "topic")
			if topic == "" {
				continue
			}
			v := out[topic]
			v[k] += m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			out[topic] = v
		}
	}
	return out
}

// replicatorLag is the largest lag per topic over a replicator's
// partitions.
func replicatorLag(fams map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range fams[metricLagRecords].GetMetric() {
		topic := label(m, "topic")
		if topic == "" {
			continue
		}
		v := m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		if old, ok := out[topic]; !ok || v > old {
			out[topic] = v
		}
	}
	return out
}

func gauge(fams map[string]*dto.MetricFamily, name string) *bool {
	ms := fams[name].GetMetric()
	if len(ms) == 0 {
		return nil
	}
	up := ms[0].GetGauge().GetValue()+ms[0].GetUntyped().GetValue() != 0
	return &up
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TopicNames returns every topic named by the points, sorted.
func TopicNames(points []Point) []string {
	set := map[string]struct{}{}
	for _, p := range points {
		for t := range p.Topics {
			set[t] = struct{}{}
		}
	}
	return slices.Sorted(maps.Keys(set))
}
