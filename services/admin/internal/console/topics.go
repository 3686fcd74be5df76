package console

import (
	"html/template"
	"net/http"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/admin/internal/clusterview"
)

// partRow is one partition as the pages show it.
type partRow struct {
	Topic     string
	First     bool // the topic's first row
	Count     int  // the topic's partition count
	Partition int32
	Leader    int32
	Epoch     int32
	Replicas  []int32
	ISR       []int32
	Start     int64
	End       int64
	HW        int64
	Known     bool // offsets known (the leader answered)
	State     string
}

func partRows(t *stratav1.TopicMetadata) []partRow {
	parts := t.GetPartitions()
	rows := make([]partRow, 0, len(parts))
	for i, p := range parts {
		rows = append(rows, partRow{Topic: t.GetName(), First: i == 0, Count: len(parts), Partition: p.GetPartition(),
			Leader: p.GetLeaderId(), Epoch: p.GetLeaderEpoch(), Replicas: p.GetReplicas(), ISR: p.GetIsr(),
			Start: p.GetLogStartOffset(), End: p.GetLogEndOffset(), HW: p.GetHighWatermark(),
			Known: p.GetLogEndOffset() >= 0, State: partitionState(p)})
	}
	return rows
}

type topicsPage struct {
	Rows      []partRow
	RowsHTML  template.HTML
	Topics    int
	UnderRepl int
	Offline   int
	Filter    string
}

func (c *Console) topics(w http.ResponseWriter, r *http.Request) {
	if c.opts.Cluster == nil {
		c.render(w, r, http.StatusServiceUnavailable, "topics", "Topics", "topics", noClusterNotice, topicsPage{})
		return
	}
	ctx, cancel := clusterCtx(r)
	defer cancel()
	snap, err := c.opts.Cluster.Snapshot(ctx)
	if err != nil {
		c.render(w, r, http.StatusBadGateway, "topics", "Topics", "topics", "No cluster node answered: "+err.Error(), topicsPage{})
		return
	}
	page := topicsPage{Filter: r.URL.Query().Get("q")}
	topics := slices.Clone(snap.Topics)
	slices.SortFunc(topics, func(a, b *stratav1.TopicMetadata) int { return strings.Compare(a.GetName(), b.GetName()) })
	for _, t := range topics {
		if page.Filter != "" && !strings.Contains(t.GetName(), page.Filter) {
			continue
		}
		page.Topics++
		for _, row := range partRows(t) {
			switch row.State {
			case stateOffline:
				page.Offline++
			case stateUnderReplicated:
				page.UnderRepl++
			}
			page.Rows = append(page.Rows, row)
		}
	}
	page.RowsHTML = partitionRowsHTML(c.opts.Base, page.Rows, true)
	c.render(w, r, http.StatusOK, "topics", "Topics", "topics", unreachedNotice(snap), page)
}

type topicPage struct {
	Name     string
	Config   *stratav1.TopicConfig
	Rows     []partRow
	RowsHTML template.HTML
	Charts   []chart
	Scraping bool
}

func (c *Console) topic(w http.ResponseWriter, r *http.Request) {
	name := topicName(r)
	if c.opts.Cluster == nil {
		c.fail(w, r, http.StatusServiceUnavailable, noClusterNotice)
		return
	}
	ctx, cancel := clusterCtx(r)
	defer cancel()
	snap, err := c.opts.Cluster.Snapshot(ctx, name)
	if err != nil {
		if status.Code(err) == codes.NotFound {
			c.fail(w, r, http.StatusNotFound, "No topic "+name+".")
			return
		}
		c.fail(w, r, http.StatusBadGateway, "No cluster node answered: "+err.Error())
		return
	}
	var t *stratav1.TopicMetadata
	for _, x := range snap.Topics {
		if x.GetName() == name {
			t = x
		}
	}
	if t == nil {
		c.fail(w, r, http.StatusNotFound, "No topic "+name+".")
		return
	}
	page := topicPage{Name: name, Config: t.GetConfig(), Rows: partRows(t)}
	page.RowsHTML = partitionRowsHTML(c.opts.Base, page.Rows, false)
	if c.opts.Metrics != nil {
		page.Scraping = true
		page.Charts = c.buildCharts(name)
	}
	c.render(w, r, http.StatusOK, "topic", "Topic "+name, "topics", unreachedNotice(snap), page)
}

// unreachedNotice names the configured nodes that did not answer.
func unreachedNotice(snap *clusterview.Snapshot) string {
	var down []string
	for _, re := range snap.Reach {
		if re.Err != nil {
			down = append(down, re.Addr)
		}
	}
	if len(down) == 0 {
		return ""
	}
	return "Admin could not reach " + strings.Join(down, ", ") + ": offsets of the partitions they lead are unknown."
}
