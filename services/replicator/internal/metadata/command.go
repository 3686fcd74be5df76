package metadata

import (
	"encoding/json"
	"fmt"

	"github.com/strata-log/strata/pkg/topicconfig"
)

// CommandType names one kind of metadata change.
type CommandType string

// The command types. Each has its payload struct of the same name.
const (
	CmdInitCluster    CommandType = "init_cluster"
	CmdRegisterBroker CommandType = "register_broker"
	CmdSetBrokerAlive CommandType = "set_broker_alive"
	CmdCreateTopic    CommandType = "create_topic"
	CmdDeleteTopic    CommandType = "delete_topic"
	CmdAlterTopic     CommandType = "alter_topic"
	CmdElectLeader    CommandType = "elect_leader"
	CmdChangeISR      CommandType = "change_isr"
	CmdResignLeader   CommandType = "resign_leader"
	// CmdAllocateProducerIDs hands out a block of idempotent producer ids.
	CmdAllocateProducerIDs CommandType = "allocate_producer_ids"
)

// Command is one entry of the Raft log: a type and exactly one payload.
type Command struct {
	Type           CommandType     `json:"type"`
	InitCluster    *InitCluster    `json:"init_cluster,omitempty"`
	RegisterBroker *RegisterBroker `json:"register_broker,omitempty"`
	SetBrokerAlive *SetBrokerAlive `json:"set_broker_alive,omitempty"`
	CreateTopic    *CreateTopic    `json:"create_topic,omitempty"`
	DeleteTopic    *DeleteTopic    `json:"delete_topic,omitempty"`
	AlterTopic     *AlterTopic     `json:"alter_topic,omitempty"`
	ElectLeader    *ElectLeader    `json:"elect_leader,omitempty"`
	ChangeISR      *ChangeISR      `json:"change_isr,omitempty"`
	ResignLeader   *ResignLeader   `json:"resign_leader,omitempty"`

	AllocateProducerIDs *AllocateProducerIDs `json:"allocate_producer_ids,omitempty"`
}

// AllocateProducerIDs hands broker BrokerID the producer ids [First,
// First+Count). First must be the state's NextProducerID (the proposer
// read it; a block allocated meanwhile makes this one fail with
// ErrProducerIDConflict, and the proposer reads again), so a committed
// block never overlaps another.
type AllocateProducerIDs struct {
	BrokerID int32 `json:"broker_id"`
	First    int64 `json:"first"`
	Count    int32 `json:"count"`
}

// InitCluster sets the cluster id once.
type InitCluster struct {
	ClusterID string `json:"cluster_id"`
}

// RegisterBroker adds a broker or updates its addresses and liveness.
type RegisterBroker struct {
	ID                int32  `json:"id"`
	BrokerAddress     string `json:"broker_address"`
	ReplicatorAddress string `json:"replicator_address"`
	RaftAddress       string `json:"raft_address"`
	Alive             bool   `json:"alive"`
	// BrokerInternalAddress is the broker's cluster-network address;
	// empty means BrokerAddress.
	BrokerInternalAddress string `json:"broker_internal_address,omitempty"`
	// StorageID is the id of the broker's data directory; empty keeps the
	// recorded one. When it replaces another recorded id the directory is
	// new and empty (a replaced disk): the broker leaves every ISR, and
	// each partition it leads goes to the first alive replica left in the
	// ISR in assignment order with the epoch bumped, or offline with the
	// epoch bumped when there is none. It rejoins as a follower, copies
	// the partitions back and is taken into the ISRs once caught up.
	StorageID string `json:"storage_id,omitempty"`
}

// SetBrokerAlive marks a registered broker alive or dead.
type SetBrokerAlive struct {
	ID    int32 `json:"id"`
	Alive bool  `json:"alive"`
}

// CreateTopic creates a topic with the controller's replica assignment:
// Assignment[p] is partition p's replica list, preferred leader first.
// Every partition starts with Replicas[0] as leader, epoch 0, and the full
// replica set as ISR.
type CreateTopic struct {
	Name string `json:"name"`
	// ID is the new topic's identity, chosen by the controller.
	ID         string             `json:"id,omitempty"`
	Config     topicconfig.Config `json:"config"`
	Assignment [][]int32          `json:"assignment"`
}

// DeleteTopic removes a topic.
type DeleteTopic struct {
	Name string `json:"name"`
}

// AlterTopic replaces the non-zero fields of a topic's config
// (topicconfig.Config.Alter; UncleanLeaderElection is replaced, false
// included, when SetUncleanLeaderElection is true). Partitions and
// replication factor cannot change.
type AlterTopic struct {
	Name                     string             `json:"name"`
	Config                   topicconfig.Config `json:"config"`
	SetUncleanLeaderElection bool               `json:"set_unclean_leader_election,omitempty"`
}

// ElectLeader installs a new leader (or NoLeader: offline) and ISR for a
// partition whose current leader epoch is ExpectedEpoch, and bumps the
// epoch. Leader must be an alive replica in the current ISR unless Unclean
// is set, which the topic must allow.
type ElectLeader struct {
	Topic         string  `json:"topic"`
	Partition     int32   `json:"partition"`
	ExpectedEpoch int32   `json:"expected_epoch"`
	Leader        int32   `json:"leader"`
	ISR           []int32 `json:"isr"`
	Unclean       bool    `json:"unclean,omitempty"`
}

// ChangeISR is a partition leader's ISR shrink or expansion (Kafka's
// AlterPartition). LeaderID and LeaderEpoch are what the proposal was based
// on; it is rejected with ErrStaleEpoch when the epoch is no longer current
// and ErrNotPartitionLeader when LeaderID does not lead. It does not bump
// the epoch.
type ChangeISR struct {
	Topic       string  `json:"topic"`
	Partition   int32   `json:"partition"`
	LeaderID    int32   `json:"leader_id"`
	LeaderEpoch int32   `json:"leader_epoch"`
	ISR         []int32 `json:"isr"`
}

// ResignLeader is a partition leader giving up leadership because its log
// cannot serve as the partition's copy (a corrupt record, a failed write;
// DESIGN.md §8). LeaderID and LeaderEpoch are checked as for ChangeISR.
// The leader leaves the ISR, dead members with it, and the first replica
// (in assignment order, so the preferred one wins) left in the ISR and
// alive leads, with the epoch bumped: the election a node failure makes.
// With no such replica it is rejected with ErrIneligibleLeader and the
// caller keeps leading.
type ResignLeader struct {
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	LeaderID    int32  `json:"leader_id"`
	LeaderEpoch int32  `json:"leader_epoch"`
}

// Encode returns the command's log entry bytes.
func (c Command) Encode() ([]byte, error) { return json.Marshal(c) }

// DecodeCommand parses a log entry.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if err := json.Unmarshal(b, &c); err != nil {
		return Command{}, fmt.Errorf("%w: %v", ErrInvalidCommand, err)
	}
	return c, nil
}
