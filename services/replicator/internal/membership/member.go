// Package membership runs the replicator's Serf member: it joins the
// cluster through a seed list, gossips (encrypted) the node's id and
// addresses as tags, and turns Serf member events into Events for the
// controller, from one goroutine that owns the Serf event channel.
package membership

import (
	"fmt"
	"strconv"

	"github.com/hashicorp/serf/serf"
)

// Tag keys gossiped by every replicator.
const (
	TagID         = "id"
	TagBroker     = "broker"
	TagReplicator = "replicator"
	TagRaft       = "raft"
	// TagBrokerInternal is the broker's address on the cluster network,
	// which other replicators' fetchers dial; TagBroker is the one clients
	// are told, which may be reachable only from outside (a host port).
	TagBrokerInternal = "broker_internal"
	// TagBrokerStatus is what the replicator's probe of its own broker
	// found: BrokerUp or BrokerDown. A member without it (an older
	// replicator, or one whose probe has not yet failed) counts as up.
	TagBrokerStatus = "broker_status"
	// TagBrokerStorage is the storage id of the broker's data directory,
	// which the replicator asks its broker before applying any partition
	// state (metadata.Broker.StorageID). Absent until then.
	TagBrokerStorage = "broker_storage"
)

// Values of TagBrokerStatus.
const (
	BrokerUp   = "up"
	BrokerDown = "down"
)

// Status is a member's Serf status.
type Status int

// Member statuses.
const (
	StatusAlive Status = iota + 1
	StatusLeaving
	StatusLeft
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusAlive:
		return "alive"
	case StatusLeaving:
		return "leaving"
	case StatusLeft:
		return "left"
	case StatusFailed:
		return "failed"
	default:
		return "unknown"
	}
}

// Member is one replicator as seen through Serf.
type Member struct {
	ID         int32
	Name       string
	BrokerAddr string
	// BrokerInternalAddr is empty when the member does not gossip it
	// (an older replicator); see BrokerInternal.
	BrokerInternalAddr string
	ReplicatorAddr     string
	RaftAddr           string
	Status             Status
	// BrokerDown is set when the member's replicator reports its broker
	// down (TagBrokerStatus): the replicator is alive, its broker is not.
	BrokerDown bool
	// StorageID is the broker's data directory id (TagBrokerStorage);
	// empty until the replicator has asked its broker.
	StorageID string
}

// BrokerInternal is the address other nodes reach the member's broker at:
// the gossiped internal address, or the advertised one when there is none.
func (m Member) BrokerInternal() string {
	if m.BrokerInternalAddr != "" {
		return m.BrokerInternalAddr
	}
	return m.BrokerAddr
}

// EventType says what happened to a member.
type EventType int

// Event types, one per Serf member event.
const (
	EventJoin EventType = iota + 1
	EventLeave
	EventFail
	EventUpdate
	EventReap
)

func (t EventType) String() string {
	return [...]string{"unknown", "join", "leave", "fail", "update", "reap"}[t]
}

// Event is one member's change.
type Event struct {
	Type   EventType
	Member Member
}

// NodeName is the Serf node name of replicator id.
func NodeName(id int32) string { return "replicator-" + strconv.Itoa(int(id)) }

func fromSerf(m serf.Member) (Member, error) {
	id, err := strconv.ParseInt(m.Tags[TagID], 10, 32)
	if err != nil || id <= 0 {
		return Member{}, fmt.Errorf("membership: member %s has no valid %q tag", m.Name, TagID)
	}
	out := Member{ID: int32(id), Name: m.Name, BrokerAddr: m.Tags[TagBroker], BrokerInternalAddr: m.Tags[TagBrokerInternal],
		ReplicatorAddr: m.Tags[TagReplicator], RaftAddr: m.Tags[TagRaft], BrokerDown: m.Tags[TagBrokerStatus] == BrokerDown,
		StorageID: m.Tags[TagBrokerStorage]}
	switch m.Status {
	case serf.StatusAlive:
		out.Status = StatusAlive
	case serf.StatusLeaving:
		out.Status = StatusLeaving
	case serf.StatusLeft:
		out.Status = StatusLeft
	case serf.StatusFailed:
		out.Status = StatusFailed
	}
	return out, nil
}
