package console

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// maxChartTopics is how many topics one chart draws: the busiest over the
// window.
const maxChartTopics = 8

// palette colours the lines, in legend order.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// metric is one chart's figure.
type metric struct {
	title, unit string
	bytes       bool
	get         func(scrape.Rates) (float64, bool)
}

var metrics = []metric{
	{"Produced records/s", "records/s", false, func(r scrape.Rates) (float64, bool) { return r.ProduceRecords, true }},
	{"Produced bytes/s", "bytes/s", true, func(r scrape.Rates) (float64, bool) { return r.ProduceBytes, true }},
	{"Consumed records/s", "records/s", false, func(r scrape.Rates) (float64, bool) { return r.ConsumeRecords, true }},
	{"Consumed bytes/s", "bytes/s", true, func(r scrape.Rates) (float64, bool) { return r.ConsumeBytes, true }},
	{"Replication lag (records, the largest of any follower)", "records", false,
		func(r scrape.Rates) (float64, bool) { return r.LagRecords, r.LagRecords >= 0 }},
}

type legendItem struct {
	Topic string
	Color string
	Last  string
}

// chart is one metric drawn for some topics over the window.
type chart struct {
	Title  string
	SVG    template.HTML
	Legend []legendItem
	Empty  bool
	More   int // busy topics not drawn
}

type chartsPage struct {
	Topic    string
	Charts   []chart
	Scraping bool
	Interval time.Duration
	Window   time.Duration
	Targets  []scrape.Health
}

func (c *Console) charts(w http.ResponseWriter, r *http.Request) {
	page := chartsPage{Topic: r.URL.Query().Get("topic")}
	notice := ""
	if c.opts.Metrics == nil {
		notice = "Admin scrapes no node: start it with --metrics-targets (broker-1=host:port,replicator-1=host:port,...)."
	} else {
		page.Scraping, page.Interval, page.Window = true, c.opts.Metrics.Interval(), c.opts.Metrics.Window()
		page.Charts, page.Targets = c.buildCharts(page.Topic), c.opts.Metrics.Health()
	}
	c.render(w, r, http.StatusOK, "charts", "Charts", "charts", notice, page)
}

// chartsLive is the chart grid alone, which the charts' script fetches
// every interval.
func (c *Console) chartsLive(w http.ResponseWriter, r *http.Request) {
	if c.opts.Metrics == nil {
		http.Error(w, "no scrape", http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	if err := c.pages.byName["charts"].ExecuteTemplate(&buf, "chartgrid", c.buildCharts(r.URL.Query().Get("topic"))); err != nil {
		c.lg.Error("console chart grid failed to render", zap.Error(err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if _, err := w.Write(buf.Bytes()); err != nil {
		c.lg.Debug("console response write failed", zap.Error(err))
	}
}

// buildCharts draws every metric for topic, or for the busiest topics
// when topic is "".
func (c *Console) buildCharts(topic string) []chart {
	points := c.opts.Metrics.Points()
	end := c.opts.Now()
	start := end.Add(-c.opts.Metrics.Window())
	var sums map[string]*[len(metricsLen)]float64
	if topic == "" {
		sums = sumByTopic(points)
	}
	out := make([]chart, 0, len(metrics))
	for k, m := range metrics {
		topics := []string{topic}
		more := 0
		if topic == "" {
			topics, more = busiest(sums, k)
		}
		out = append(out, drawChart(m, points, topics, start, end, more))
	}
	return out
}

// metricsLen sizes the per-topic sums: one per metric.
var metricsLen [5]struct{}

// sumByTopic adds up every metric per topic over points, in one pass.
func sumByTopic(points []scrape.Point) map[string]*[len(metricsLen)]float64 {
	sums := map[string]*[len(metricsLen)]float64{}
	for _, p := range points {
		for t, r := range p.Topics {
			s, ok := sums[t]
			if !ok {
				s = new([len(metricsLen)]float64)
				sums[t] = s
			}
			for k, m := range metrics {
				if v, ok := m.get(r); ok && v > 0 {
					s[k] += v
				}
			}
		}
	}
	return sums
}

// busiest returns the topics with the largest sums of metric k (at most
// maxChartTopics, with a non-zero sum) and how many more had one.
func busiest(sums map[string]*[len(metricsLen)]float64, k int) ([]string, int) {
	type ts struct {
		t string
		s float64
	}
	all := make([]ts, 0, len(sums))
	for t, s := range sums {
		if s[k] > 0 {
			all = append(all, ts{t, s[k]})
		}
	}
	slices.SortFunc(all, func(a, b ts) int {
		if c := cmp.Compare(b.s, a.s); c != 0 {
			return c
		}
		return strings.Compare(a.t, b.t)
	})
	n := min(len(all), maxChartTopics)
	out := make([]string, n)
	for i := range n {
		out[i] = all[i].t
	}
	return out, len(all) - n
}

// Chart geometry, in SVG user units.
const (
	chartW, chartH        = 640, 170
	padL, padR            = 64, 10
	padTop, padBottom     = 10, 22
	plotW, plotH          = chartW - padL - padR, chartH - padTop - padBottom
	gridLines         int = 4
)

// drawChart draws m for topics as inline SVG: one polyline per topic,
// broken where a point lacks it. Nothing from outside the console is
// written into the SVG but numbers; topic names go to the legend, which
// the template escapes.
func drawChart(m metric, points []scrape.Point, topics []string, start, end time.Time, more int) chart {
	ch := chart{Title: m.title, More: more}
	span := end.Sub(start).Seconds()
	maxY := 0.0
	for _, p := range points {
		for _, t := range topics {
			if r, has := p.Topics[t]; has {
				if v, ok := m.get(r); ok {
					maxY = max(maxY, v)
				}
			}
		}
	}
	if maxY <= 0 {
		maxY = 1
	}
	maxY *= 1.1
	x := func(at time.Time) float64 { return padL + plotW*at.Sub(start).Seconds()/span }
	y := func(v float64) float64 { return padTop + plotH*(1-v/maxY) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" width="%d" height="%d" role="img" xmlns="http://www.w3.org/2000/svg">`,
		chartW, chartH, chartW, chartH)
	for i := 0; i <= gridLines; i++ {
		v := maxY * float64(i) / float64(gridLines)
		yy := y(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd" stroke-width="1"/>`, padL, yy, chartW-padR, yy)
		label := formatRate(v)
		if m.bytes {
			label = formatBytes(v)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" font-size="10" fill="#555">%s</text>`, padL-4, yy+3, template.HTMLEscapeString(label))
	}
	for _, mins := range []int{15, 10, 5, 0} {
		at := end.Add(-time.Duration(mins) * time.Minute)
		if at.Before(start) {
			continue
		}
		label := "now"
		if mins > 0 {
			label = "-" + strconv.Itoa(mins) + "m"
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" font-size="10" fill="#555">%s</text>`, x(at), chartH-6, label)
	}
	drawn := 0
	for i, t := range topics {
		color := palette[i%len(palette)]
		var seg [][2]float64
		flush := func() {
			switch len(seg) {
			case 0:
			case 1:
				fmt.Fprintf(&b, `<circle r="2" fill="%s" cx="%.1f" cy="%.1f"/>`, color, seg[0][0], seg[0][1])
				drawn++
			default:
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, color)
				for k, pt := range seg {
					if k > 0 {
						b.WriteByte(' ')
					}
					fmt.Fprintf(&b, "%.1f,%.1f", pt[0], pt[1])
				}
				b.WriteString(`"/>`)
				drawn++
			}
			seg = seg[:0]
		}
		last := ""
		for _, p := range points {
			r, has := p.Topics[t]
			v, ok := m.get(r)
			if !has || !ok || p.At.Before(start) {
				flush()
				continue
			}
			seg = append(seg, [2]float64{x(p.At), y(v)})
			last = formatRate(v)
			if m.bytes {
				last = formatBytes(v)
			}
		}
		flush()
		ch.Legend = append(ch.Legend, legendItem{Topic: t, Color: color, Last: last})
	}
	b.WriteString(`</svg>`)
	ch.SVG = template.HTML(b.String()) //nolint:gosec // only numbers and constants are written above
	ch.Empty = drawn == 0
	return ch
}
