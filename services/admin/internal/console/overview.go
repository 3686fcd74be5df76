package console

import (
	"net/http"
	"slices"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// nodeRow is one node of the overview: what the controller says of it,
// and what admin's own scrape of its broker and replicator found.
type nodeRow struct {
	ID         int32
	Address    string
	Known      bool // in the cluster's metadata
	Alive      bool // the controller's view of the broker
	RaftRole   string
	Controller bool
	Broker     *scrape.Health
	Replicator *scrape.Health
}

// reachRow is one --cluster-addrs address and how it answered.
type reachRow struct {
	Addr string
	Err  string
	Took time.Duration
}

type overviewPage struct {
	ClusterID    string
	ControllerID int32
	Nodes        []nodeRow
	Reach        []reachRow
	Topics       int
	Partitions   int
	UnderRepl    int
	Offline      int
	Scraping     bool
	Interval     time.Duration
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	page := overviewPage{ControllerID: -1}
	notice := ""
	nodes := map[int32]*nodeRow{}
	row := func(id int32) *nodeRow {
		n, ok := nodes[id]
		if !ok {
			n = &nodeRow{ID: id}
			nodes[id] = n
		}
		return n
	}
	if c.opts.Cluster == nil {
		notice = noClusterNotice
	} else {
		ctx, cancel := clusterCtx(r)
		snap, err := c.opts.Cluster.Snapshot(ctx)
		cancel()
		if err != nil {
			notice = "No cluster node answered; what admin's own scrape sees is below. (" + err.Error() + ")"
		}
		if snap != nil {
			for _, re := range snap.Reach {
				rr := reachRow{Addr: re.Addr, Took: re.Took}
				if re.Err != nil {
					rr.Err = re.Err.Error()
				}
				page.Reach = append(page.Reach, rr)
			}
		}
		if err == nil {
			page.ClusterID, page.ControllerID = snap.ClusterID, snap.ControllerID
			for _, b := range snap.Brokers {
				n := row(b.GetId())
				n.Known, n.Address, n.Alive, n.RaftRole = true, b.GetAddress(), b.GetAlive(), b.GetRaftRole()
				n.Controller = b.GetId() == snap.ControllerID
			}
			page.Topics = len(snap.Topics)
			for _, t := range snap.Topics {
				for _, p := range t.GetPartitions() {
					page.Partitions++
					switch partitionState(p) {
					case stateOffline:
						page.Offline++
					case stateUnderReplicated:
						page.UnderRepl++
					}
				}
			}
		}
	}
	if c.opts.Metrics != nil {
		page.Scraping, page.Interval = true, c.opts.Metrics.Interval()
		for _, h := range c.opts.Metrics.Health() {
			n := row(h.Node)
			if h.Kind == scrape.KindBroker {
				n.Broker = &h
			} else {
				n.Replicator = &h
			}
		}
	}
	for _, n := range nodes {
		page.Nodes = append(page.Nodes, *n)
	}
	slices.SortFunc(page.Nodes, func(a, b nodeRow) int { return int(a.ID - b.ID) })
	c.render(w, r, http.StatusOK, "overview", "Overview", "overview", notice, page)
}

// noClusterNotice explains the pages that need --cluster-addrs.
const noClusterNotice = "Admin runs without --cluster-addrs: it knows no cluster node to ask."

// partition states as the pages mark them.
const (
	stateOK              = ""
	stateUnderReplicated = "under-replicated"
	stateOffline         = "offline"
)

// partitionState is offline without a leader, under-replicated with an
// ISR smaller than its replica set.
func partitionState(p *stratav1.PartitionMetadata) string {
	switch {
	case p.GetOffline() || p.GetLeaderId() < 0:
		return stateOffline
	case len(p.GetIsr()) < len(p.GetReplicas()):
		return stateUnderReplicated
	}
	return stateOK
}
