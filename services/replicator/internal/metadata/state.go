// Package metadata is the cluster metadata held by the replicators' Raft
// group: brokers, topics and their config, and per-partition assignment,
// leader, leader epoch and ISR. FSM is its raft.FSM; every change is an
// explicit Command validated in Apply.
package metadata

import (
	"slices"
	"sort"

	"github.com/strata-log/strata/pkg/topicconfig"
)

// NoLeader is the leader id of a partition that has no leader (offline).
const NoLeader int32 = -1

// Broker is one node of the cluster as registered by the controller.
type Broker struct {
	ID int32 `json:"id"`
	// BrokerAddress is the advertised gRPC address of the node's broker,
	// the one clients are told (leader hints, Metadata).
	BrokerAddress string `json:"broker_address"`
	// BrokerInternalAddress is the broker's address on the cluster
	// network, which followers' fetchers dial. Snapshots and commands
	// from before it existed leave it empty: use InternalAddress.
	BrokerInternalAddress string `json:"broker_internal_address,omitempty"`
	// ReplicatorAddress is the advertised gRPC address of the node's replicator.
	ReplicatorAddress string `json:"replicator_address"`
	// RaftAddress is the node's Raft transport address.
	RaftAddress string `json:"raft_address"`
	Alive       bool   `json:"alive"`
	// StorageID is the id of the broker's data directory (its storage.id
	// file, Kafka's directory id): another id means a new, empty
	// directory. Empty until a replicator that reports it registers the
	// broker.
	StorageID string `json:"storage_id,omitempty"`
}

// InternalAddress is the address other nodes reach the broker at:
// BrokerInternalAddress, or BrokerAddress when that is empty.
func (b *Broker) InternalAddress() string {
	if b.BrokerInternalAddress != "" {
		return b.BrokerInternalAddress
	}
	return b.BrokerAddress
}

// Partition is the replication state of one partition.
type Partition struct {
	ID int32 `json:"id"`
	// Replicas is the assignment; Replicas[0] is the preferred leader.
	Replicas []int32 `json:"replicas"`
	// Leader is the leading broker, or NoLeader.
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
	// Offline is set when no replica may lead (Leader == NoLeader).
	Offline bool `json:"offline"`
}

// Topic is a topic with its partitions, indexed by partition id.
type Topic struct {
	Name string `json:"name"`
	// ID tells this topic from an earlier one of the same name (Kafka's
	// topic ids, KIP-516): brokers replace a local copy with another id.
	ID string `json:"id,omitempty"`
	// Config is resolved (every setting set) for a topic the controller
	// created since it writes the defaults down; an older topic's zero
	// settings are the brokers' defaults.
	Config     topicconfig.Config `json:"config"`
	Partitions []Partition        `json:"partitions"`
}

// State is the whole metadata. Values handed out by FSM.State are deep
// copies owned by the caller.
type State struct {
	// ClusterID is set by the first command applied (the bootstrap node's choice).
	ClusterID string            `json:"cluster_id,omitempty"`
	Brokers   map[int32]*Broker `json:"brokers"`
	Topics    map[string]*Topic `json:"topics"`
	// Index is the Raft index of the last applied command.
	Index uint64 `json:"index"`
	// NextProducerID is the first producer id no broker was given yet;
	// 0 means none was ever given (ids start at 1).
	NextProducerID int64 `json:"next_producer_id,omitempty"`
}

// NextProducerIDOrFirst is NextProducerID, or 1 before any allocation.
func (s *State) NextProducerIDOrFirst() int64 { return max(s.NextProducerID, 1) }

func newState() *State {
	return &State{Brokers: map[int32]*Broker{}, Topics: map[string]*Topic{}}
}

// Clone returns a deep copy.
func (s *State) Clone() *State {
	c := &State{ClusterID: s.ClusterID, Index: s.Index, NextProducerID: s.NextProducerID,
		Brokers: make(map[int32]*Broker, len(s.Brokers)),
		Topics:  make(map[string]*Topic, len(s.Topics))}
	for id, b := range s.Brokers {
		bb := *b
		c.Brokers[id] = &bb
	}
	for n, t := range s.Topics {
		c.Topics[n] = t.clone()
	}
	return c
}

func (t *Topic) clone() *Topic {
	c := &Topic{Name: t.Name, ID: t.ID, Config: t.Config, Partitions: make([]Partition, len(t.Partitions))}
	for i, p := range t.Partitions {
		c.Partitions[i] = p.clone()
	}
	return c
}

func (p Partition) clone() Partition {
	p.Replicas = slices.Clone(p.Replicas)
	p.ISR = slices.Clone(p.ISR)
	return p
}

// BrokerIDs returns the registered broker ids in ascending order.
func (s *State) BrokerIDs() []int32 {
	ids := make([]int32, 0, len(s.Brokers))
	for id := range s.Brokers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// AliveBrokerIDs returns the ids of alive brokers in ascending order.
func (s *State) AliveBrokerIDs() []int32 {
	var ids []int32
	for _, id := range s.BrokerIDs() {
		if s.Brokers[id].Alive {
			ids = append(ids, id)
		}
	}
	return ids
}

// IsAlive reports whether broker id is registered and alive.
func (s *State) IsAlive(id int32) bool {
	b, ok := s.Brokers[id]
	return ok && b.Alive
}

// TopicNames returns the topic names in ascending order.
func (s *State) TopicNames() []string {
	names := make([]string, 0, len(s.Topics))
	for n := range s.Topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UnderReplicated reports whether the partition's ISR is smaller than its
// replica set.
func (p Partition) UnderReplicated() bool { return len(p.ISR) < len(p.Replicas) }
