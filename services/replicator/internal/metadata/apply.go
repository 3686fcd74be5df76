package metadata

import (
	"fmt"
	"slices"

	"github.com/strata-log/strata/pkg/topicconfig"
)

// apply validates cmd against s and, only if it is valid, changes s.
// On error s is untouched.
func (s *State) apply(cmd Command) error {
	switch cmd.Type {
	case CmdInitCluster:
		return withPayload(cmd.InitCluster, cmd.Type, s.initCluster)
	case CmdRegisterBroker:
		return withPayload(cmd.RegisterBroker, cmd.Type, s.registerBroker)
	case CmdSetBrokerAlive:
		return withPayload(cmd.SetBrokerAlive, cmd.Type, s.setBrokerAlive)
	case CmdCreateTopic:
		return withPayload(cmd.CreateTopic, cmd.Type, s.createTopic)
	case CmdDeleteTopic:
		return withPayload(cmd.DeleteTopic, cmd.Type, s.deleteTopic)
	case CmdAlterTopic:
		return withPayload(cmd.AlterTopic, cmd.Type, s.alterTopic)
	case CmdElectLeader:
		return withPayload(cmd.ElectLeader, cmd.Type, s.electLeader)
	case CmdChangeISR:
		return withPayload(cmd.ChangeISR, cmd.Type, s.changeISR)
	case CmdResignLeader:
		return withPayload(cmd.ResignLeader, cmd.Type, s.resignLeader)
	case CmdAllocateProducerIDs:
		return withPayload(cmd.AllocateProducerIDs, cmd.Type, s.allocateProducerIDs)
	default:
		return fmt.Errorf("%w: unknown type %q", ErrInvalidCommand, cmd.Type)
	}
}

func withPayload[T any](p *T, typ CommandType, f func(*T) error) error {
	if p == nil {
		return fmt.Errorf("%w: %s without payload", ErrInvalidCommand, typ)
	}
	return f(p)
}

func (s *State) initCluster(c *InitCluster) error {
	if c.ClusterID == "" {
		return fmt.Errorf("%w: empty cluster id", ErrInvalidCommand)
	}
	if s.ClusterID != "" {
		return fmt.Errorf("%w: %s", ErrClusterIDSet, s.ClusterID)
	}
	s.ClusterID = c.ClusterID
	return nil
}

func (s *State) registerBroker(c *RegisterBroker) error {
	if c.ID <= 0 {
		return fmt.Errorf("%w: broker id must be > 0, got %d", ErrInvalidCommand, c.ID)
	}
	if c.BrokerAddress == "" || c.ReplicatorAddress == "" || c.RaftAddress == "" {
		return fmt.Errorf("%w: broker %d: broker, replicator and raft addresses are required", ErrInvalidCommand, c.ID)
	}
	internal := c.BrokerInternalAddress
	if internal == "" {
		internal = c.BrokerAddress
	}
	storage := c.StorageID
	if prev, ok := s.Brokers[c.ID]; ok && prev.StorageID != "" {
		switch {
		case storage == "":
			storage = prev.StorageID
		case storage != prev.StorageID:
			s.forgetReplicas(c.ID)
		}
	}
	s.Brokers[c.ID] = &Broker{ID: c.ID, BrokerAddress: c.BrokerAddress, BrokerInternalAddress: internal,
		ReplicatorAddress: c.ReplicatorAddress, RaftAddress: c.RaftAddress, Alive: c.Alive, StorageID: storage}
	return nil
}

// forgetReplicas treats every replica on broker id as empty, its data
// directory having been replaced: id leaves every ISR, and each partition
// it leads goes, with the epoch bumped, to the first replica in assignment
// order left in the ISR and alive, or offline when there is none (the ISR
// keeps its other members, which may lead once alive; an empty one waits
// for an unclean election, if the topic allows it). Leading or staying in
// an ISR with an empty log would make the others truncate to its end.
func (s *State) forgetReplicas(id int32) {
	for _, t := range s.Topics {
		for i := range t.Partitions {
			p := &t.Partitions[i]
			if p.Leader != id && !slices.Contains(p.ISR, id) {
				continue
			}
			p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			if p.Leader != id {
				continue
			}
			next := NoLeader
			for _, r := range p.Replicas {
				if r != id && slices.Contains(p.ISR, r) && s.IsAlive(r) {
					next = r
					break
				}
			}
			p.Leader = next
			p.LeaderEpoch++
			p.Offline = next == NoLeader
		}
	}
}

func (s *State) setBrokerAlive(c *SetBrokerAlive) error {
	b, ok := s.Brokers[c.ID]
	if !ok {
		return fmt.Errorf("%w: %d", ErrBrokerNotFound, c.ID)
	}
	b.Alive = c.Alive
	return nil
}

func (s *State) createTopic(c *CreateTopic) error {
	if err := topicconfig.ValidateName(c.Name); err != nil {
		return err
	}
	if _, ok := s.Topics[c.Name]; ok {
		return fmt.Errorf("%w: %s", ErrTopicExists, c.Name)
	}
	// Checked as every broker will check it: settings left zero (by
	// commands from before the controller wrote defaults down) are the
	// brokers' defaults.
	if err := topicconfig.Default().Merge(c.Config).Validate(); err != nil {
		return err
	}
	if len(c.Assignment) != int(c.Config.Partitions) {
		return fmt.Errorf("%w: %d partitions but %d assignments", ErrInvalidAssignment, c.Config.Partitions, len(c.Assignment))
	}
	t := &Topic{Name: c.Name, ID: c.ID, Config: c.Config, Partitions: make([]Partition, len(c.Assignment))}
	for p, replicas := range c.Assignment {
		if len(replicas) != int(c.Config.ReplicationFactor) {
			return fmt.Errorf("%w: partition %d has %d replicas, replication factor is %d",
				ErrInvalidAssignment, p, len(replicas), c.Config.ReplicationFactor)
		}
		if err := s.validateReplicaSet(replicas); err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
		t.Partitions[p] = Partition{ID: int32(p), Replicas: slices.Clone(replicas),
			Leader: replicas[0], ISR: slices.Clone(replicas)}
	}
	s.Topics[c.Name] = t
	return nil
}

func (s *State) deleteTopic(c *DeleteTopic) error {
	if _, ok := s.Topics[c.Name]; !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, c.Name)
	}
	delete(s.Topics, c.Name)
	return nil
}

func (s *State) alterTopic(c *AlterTopic) error {
	t, ok := s.Topics[c.Name]
	if !ok {
		return fmt.Errorf("%w: %s", ErrTopicNotFound, c.Name)
	}
	cfg, err := t.Config.Alter(c.Config)
	if err != nil {
		return err
	}
	if c.SetUncleanLeaderElection {
		cfg.UncleanLeaderElection = c.Config.UncleanLeaderElection
	}
	t.Config = cfg
	return nil
}

func (s *State) partition(topic string, id int32) (*Topic, *Partition, error) {
	t, ok := s.Topics[topic]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrTopicNotFound, topic)
	}
	if id < 0 || int(id) >= len(t.Partitions) {
		return nil, nil, fmt.Errorf("%w: %s/%d", ErrPartitionNotFound, topic, id)
	}
	return t, &t.Partitions[id], nil
}

func (s *State) electLeader(c *ElectLeader) error {
	t, p, err := s.partition(c.Topic, c.Partition)
	if err != nil {
		return err
	}
	if c.ExpectedEpoch != p.LeaderEpoch {
		return fmt.Errorf("%w: %s/%d is at epoch %d, election based on %d", ErrStaleEpoch, c.Topic, c.Partition, p.LeaderEpoch, c.ExpectedEpoch)
	}
	if len(c.ISR) == 0 || hasDuplicates(c.ISR) || !subsetOf(c.ISR, p.Replicas) {
		return fmt.Errorf("%w: ISR %v must be a non-empty set of replicas %v", ErrInvalidAssignment, c.ISR, p.Replicas)
	}
	if c.Leader != NoLeader {
		if !slices.Contains(p.Replicas, c.Leader) || !s.IsAlive(c.Leader) {
			return fmt.Errorf("%w: broker %d is not an alive replica of %s/%d", ErrIneligibleLeader, c.Leader, c.Topic, c.Partition)
		}
		if !slices.Contains(c.ISR, c.Leader) {
			return fmt.Errorf("%w: new ISR %v does not contain leader %d", ErrInvalidAssignment, c.ISR, c.Leader)
		}
		if c.Unclean {
			if !t.Config.UncleanLeaderElection {
				return fmt.Errorf("%w: topic %s does not allow unclean leader election", ErrIneligibleLeader, c.Topic)
			}
		} else if !slices.Contains(p.ISR, c.Leader) {
			return fmt.Errorf("%w: broker %d is not in the ISR %v of %s/%d", ErrIneligibleLeader, c.Leader, p.ISR, c.Topic, c.Partition)
		}
	} else if !subsetOf(c.ISR, p.ISR) {
		return fmt.Errorf("%w: an offline partition's ISR %v may only shrink from %v", ErrInvalidAssignment, c.ISR, p.ISR)
	}
	p.Leader = c.Leader
	p.LeaderEpoch++
	p.ISR = slices.Clone(c.ISR)
	p.Offline = c.Leader == NoLeader
	return nil
}

func (s *State) changeISR(c *ChangeISR) error {
	_, p, err := s.partition(c.Topic, c.Partition)
	if err != nil {
		return err
	}
	if c.LeaderEpoch != p.LeaderEpoch {
		return fmt.Errorf("%w: %s/%d is at epoch %d, ISR change based on %d", ErrStaleEpoch, c.Topic, c.Partition, p.LeaderEpoch, c.LeaderEpoch)
	}
	if p.Leader == NoLeader || c.LeaderID != p.Leader {
		return fmt.Errorf("%w: broker %d, leader is %d", ErrNotPartitionLeader, c.LeaderID, p.Leader)
	}
	if hasDuplicates(c.ISR) || !subsetOf(c.ISR, p.Replicas) || !slices.Contains(c.ISR, p.Leader) {
		return fmt.Errorf("%w: ISR %v must be a set of replicas %v containing leader %d", ErrInvalidAssignment, c.ISR, p.Replicas, p.Leader)
	}
	for _, id := range c.ISR {
		if !slices.Contains(p.ISR, id) && !s.IsAlive(id) {
			return fmt.Errorf("%w: cannot add broker %d to the ISR: not alive", ErrIneligibleLeader, id)
		}
	}
	p.ISR = slices.Clone(c.ISR)
	return nil
}

func (s *State) resignLeader(c *ResignLeader) error {
	_, p, err := s.partition(c.Topic, c.Partition)
	if err != nil {
		return err
	}
	if c.LeaderEpoch != p.LeaderEpoch {
		return fmt.Errorf("%w: %s/%d is at epoch %d, resignation based on %d", ErrStaleEpoch, c.Topic, c.Partition, p.LeaderEpoch, c.LeaderEpoch)
	}
	if p.Leader == NoLeader || c.LeaderID != p.Leader {
		return fmt.Errorf("%w: broker %d, leader is %d", ErrNotPartitionLeader, c.LeaderID, p.Leader)
	}
	isr := make([]int32, 0, len(p.ISR))
	for _, id := range p.ISR {
		if id != p.Leader && s.IsAlive(id) {
			isr = append(isr, id)
		}
	}
	next := NoLeader
	for _, id := range p.Replicas {
		if slices.Contains(isr, id) {
			next = id
			break
		}
	}
	if next == NoLeader {
		return fmt.Errorf("%w: no other alive in-sync replica of %s/%d (ISR %v) can take over from %d",
			ErrIneligibleLeader, c.Topic, c.Partition, p.ISR, p.Leader)
	}
	p.Leader = next
	p.LeaderEpoch++
	p.ISR = isr
	p.Offline = false
	return nil
}

func (s *State) allocateProducerIDs(c *AllocateProducerIDs) error {
	if c.Count <= 0 || c.First <= 0 {
		return fmt.Errorf("%w: producer id block [%d, +%d)", ErrInvalidCommand, c.First, c.Count)
	}
	if next := s.NextProducerIDOrFirst(); c.First != next {
		return fmt.Errorf("%w: block starts at %d, the next unallocated id is %d", ErrProducerIDConflict, c.First, next)
	}
	s.NextProducerID = c.First + int64(c.Count)
	return nil
}
