package console

import (
	"errors"
	"net/http"
	"strings"

	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/services/admin/internal/httpapi"
)

// The consumer group pages show what the API's group routes answer
// (Backend.ListGroups and DescribeGroup): the same merge of every broker's
// groups, the same filter by describe on each group, and the same log
// end and lag read from each partition's leader.

type groupsPage struct {
	Groups []adminapi.GroupSummary
}

func (c *Console) groups(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := clusterCtx(r)
	defer cancel()
	list, err := c.opts.Backend.ListGroups(ctx, c.opts.Identity(r.Context()))
	if err != nil {
		code, _ := httpapi.ErrorStatus(err)
		c.render(w, r, code, "groups", "Consumer groups", "groups", groupsNotice(err), groupsPage{})
		return
	}
	notice := ""
	if len(list.Unreached) > 0 {
		notice = "Admin could not reach " + strings.Join(list.Unreached, ", ") + ": the groups they coordinate are not listed."
	}
	c.render(w, r, http.StatusOK, "groups", "Consumer groups", "groups", notice, groupsPage{Groups: list.Groups})
}

type groupPage struct {
	adminapi.Group
	// Unknown counts the partitions whose lag is unknown.
	Unknown int
}

func (c *Console) group(w http.ResponseWriter, r *http.Request) {
	name, err := urlParam(r, "name")
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "The address is not well formed.")
		return
	}
	ctx, cancel := clusterCtx(r)
	defer cancel()
	g, err := c.opts.Backend.DescribeGroup(ctx, name)
	if err != nil {
		code, msg := httpapi.ErrorStatus(err)
		if code == http.StatusNotFound {
			msg = "No group " + name + "."
		} else {
			msg = groupsNotice(err)
		}
		c.fail(w, r, code, msg)
		return
	}
	page := groupPage{Group: g}
	for _, p := range g.Partitions {
		if p.Lag < 0 {
			page.Unknown++
		}
	}
	c.render(w, r, http.StatusOK, "group", "Consumer group "+name, "groups", "", page)
}

// groupsNotice says why groups could not be read.
func groupsNotice(err error) string {
	if errors.Is(err, httpapi.ErrGroupsOff) {
		return noClusterNotice
	}
	_, msg := httpapi.ErrorStatus(err)
	return "The consumer groups could not be read: " + msg
}
