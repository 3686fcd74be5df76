package metadata

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/hashicorp/raft"
	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/topicconfig"
)

// base returns an FSM with brokers 1-3 alive, 4 registered but dead, and
// topic "t": one partition on [1 2 3], leader 1, epoch 0, full ISR.
func base(t *testing.T) *FSM {
	t.Helper()
	f := NewFSM(zaptest.NewLogger(t))
	for _, id := range []int32{1, 2, 3, 4} {
		mustApply(t, f, Command{Type: CmdRegisterBroker, RegisterBroker: &RegisterBroker{ID: id,
			BrokerAddress: "b:1", ReplicatorAddress: "r:1", RaftAddress: "f:1", Alive: id != 4}})
	}
	mustApply(t, f, Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "t",
		Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 3}, Assignment: [][]int32{{1, 2, 3}}}})
	return f
}

// registerStorage registers alive broker id (as base does) with a storage id.
func registerStorage(id int32, storage string) Command {
	return Command{Type: CmdRegisterBroker, RegisterBroker: &RegisterBroker{ID: id,
		BrokerAddress: "b:1", ReplicatorAddress: "r:1", RaftAddress: "f:1", Alive: true, StorageID: storage}}
}

func mustApply(t *testing.T, f *FSM, cmd Command) {
	t.Helper()
	if err := applyEncoded(f, cmd); err != nil {
		t.Fatalf("%s: %v", cmd.Type, err)
	}
}

// applyEncoded goes through the raft.Log path, encoding included.
func applyEncoded(f *FSM, cmd Command) error {
	b, err := cmd.Encode()
	if err != nil {
		return err
	}
	res := f.Apply(&raft.Log{Index: f.State().Index + 1, Type: raft.LogCommand, Data: b})
	if res == nil {
		return nil
	}
	return res.(error)
}

func stateJSON(t *testing.T, s *State) []byte {
	t.Helper()
	s.Index = 0
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestApplyCommands(t *testing.T) {
	part := func(s *State) Partition { return s.Topics["t"].Partitions[0] }
	tests := []struct {
		name  string
		setup func(*FSM) // optional, after base
		cmd   Command
		want  error
		check func(*testing.T, *State)
	}{
		{name: "init cluster", cmd: Command{Type: CmdInitCluster, InitCluster: &InitCluster{ClusterID: "c1"}},
			check: func(t *testing.T, s *State) {
				if s.ClusterID != "c1" {
					t.Fatal(s.ClusterID)
				}
			}},
		{name: "init cluster twice", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdInitCluster, InitCluster: &InitCluster{ClusterID: "c1"}})
		}, cmd: Command{Type: CmdInitCluster, InitCluster: &InitCluster{ClusterID: "c2"}}, want: ErrClusterIDSet},
		{name: "unknown type", cmd: Command{Type: "nope"}, want: ErrInvalidCommand},
		{name: "missing payload", cmd: Command{Type: CmdCreateTopic}, want: ErrInvalidCommand},
		{name: "register broker", cmd: Command{Type: CmdRegisterBroker, RegisterBroker: &RegisterBroker{ID: 5,
			BrokerAddress: "b", ReplicatorAddress: "r", RaftAddress: "f", Alive: true}},
			check: func(t *testing.T, s *State) {
				if !s.IsAlive(5) {
					t.Fatal("broker 5 not alive")
				}
				if got := s.Brokers[5].InternalAddress(); got != "b" {
					t.Fatalf("internal address without the tag = %q, want the advertised one", got)
				}
			}},
		{name: "register broker internal address", cmd: Command{Type: CmdRegisterBroker, RegisterBroker: &RegisterBroker{ID: 5,
			BrokerAddress: "127.0.0.1:19092", BrokerInternalAddress: "broker-5:9092", ReplicatorAddress: "r", RaftAddress: "f", Alive: true}},
			check: func(t *testing.T, s *State) {
				if b := s.Brokers[5]; b.BrokerAddress != "127.0.0.1:19092" || b.InternalAddress() != "broker-5:9092" {
					t.Fatalf("%+v", b)
				}
			}},
		{name: "register broker bad id", cmd: Command{Type: CmdRegisterBroker, RegisterBroker: &RegisterBroker{ID: 0,
			BrokerAddress: "b", ReplicatorAddress: "r", RaftAddress: "f"}}, want: ErrInvalidCommand},
		{name: "register broker no address", cmd: Command{Type: CmdRegisterBroker, RegisterBroker: &RegisterBroker{ID: 6}}, want: ErrInvalidCommand},
		{name: "set alive", cmd: Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 4, Alive: true}},
			check: func(t *testing.T, s *State) {
				if !s.IsAlive(4) {
					t.Fatal("broker 4 not alive")
				}
			}},
		{name: "set alive unknown", cmd: Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 9}}, want: ErrBrokerNotFound},
		{name: "create topic", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 2, ReplicationFactor: 2, Fsync: "interval:100ms"}, Assignment: [][]int32{{2, 3}, {3, 1}}}},
			check: func(t *testing.T, s *State) {
				p := s.Topics["u"].Partitions[1]
				if p.Leader != 3 || p.LeaderEpoch != 0 || !slices.Equal(p.ISR, []int32{3, 1}) {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "create exists", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "t",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]int32{{1}}}}, want: ErrTopicExists},
		{name: "create bad name", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "a/b",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]int32{{1}}}}, want: topicconfig.ErrInvalidName},
		{name: "create bad fsync", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1, Fsync: "sometimes"}, Assignment: [][]int32{{1}}}}, want: topicconfig.ErrInvalid},
		// What a broker would refuse is refused here (issue 13).
		{name: "create record above limit", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1, MaxRecordBytes: 100 << 20}, Assignment: [][]int32{{1}}}}, want: topicconfig.ErrInvalid},
		{name: "create min isr above rf", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1, MinInsyncReplicas: 2}, Assignment: [][]int32{{1}}}}, want: topicconfig.ErrInvalid},
		{name: "create assignment count", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 2, ReplicationFactor: 1}, Assignment: [][]int32{{1}}}}, want: ErrInvalidAssignment},
		{name: "create replica count", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 2, ReplicationFactor: 2}, Assignment: [][]int32{{1, 2}, {1}}}}, want: ErrInvalidAssignment},
		{name: "create duplicate replica", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 2}, Assignment: [][]int32{{1, 1}}}}, want: ErrInvalidAssignment},
		{name: "create unknown broker", cmd: Command{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "u",
			Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]int32{{7}}}}, want: ErrBrokerNotFound},
		{name: "delete topic", cmd: Command{Type: CmdDeleteTopic, DeleteTopic: &DeleteTopic{Name: "t"}},
			check: func(t *testing.T, s *State) {
				if _, ok := s.Topics["t"]; ok {
					t.Fatal("still there")
				}
			}},
		{name: "delete missing", cmd: Command{Type: CmdDeleteTopic, DeleteTopic: &DeleteTopic{Name: "x"}}, want: ErrTopicNotFound},
		{name: "alter topic", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t",
			Config: topicconfig.Config{RetentionMs: 1000, MinInsyncReplicas: 2, UncleanLeaderElection: true}}},
			check: func(t *testing.T, s *State) {
				c := s.Topics["t"].Config
				if c.RetentionMs != 1000 || c.MinInsyncReplicas != 2 || !c.UncleanLeaderElection || c.Partitions != 1 || c.ReplicationFactor != 3 {
					t.Fatalf("%+v", c)
				}
			}},
		{name: "alter partitions", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{Partitions: 4}}}, want: topicconfig.ErrInvalid},
		{name: "alter rf", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{ReplicationFactor: 1}}}, want: topicconfig.ErrInvalid},
		{name: "alter invalid result", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{MinInsyncReplicas: 4}}}, want: topicconfig.ErrInvalid},
		{name: "alter record above limit", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{MaxRecordBytes: 104857600}}}, want: topicconfig.ErrInvalid},
		{name: "alter segment below record", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{SegmentBytes: 4096}}}, want: topicconfig.ErrInvalid},
		{name: "alter segment ms past the engine's range", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{SegmentMs: topicconfig.MaxMs + 1}}}, want: topicconfig.ErrInvalid},
		{name: "alter missing", cmd: Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "x"}}, want: ErrTopicNotFound},
		{name: "elect leader", cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			ExpectedEpoch: 0, Leader: 2, ISR: []int32{2, 3}}},
			check: func(t *testing.T, s *State) {
				p := part(s)
				if p.Leader != 2 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []int32{2, 3}) || p.Offline {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "elect offline", cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			ExpectedEpoch: 0, Leader: NoLeader, ISR: []int32{1}}},
			check: func(t *testing.T, s *State) {
				p := part(s)
				if p.Leader != NoLeader || !p.Offline || p.LeaderEpoch != 1 {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "elect stale epoch", cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			ExpectedEpoch: 3, Leader: 2, ISR: []int32{2}}}, want: ErrStaleEpoch},
		{name: "elect not in isr", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 2}}})
		}, cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			Leader: 3, ISR: []int32{3}}}, want: ErrIneligibleLeader},
		{name: "elect unclean disallowed", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 2}}})
		}, cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			Leader: 3, ISR: []int32{3}, Unclean: true}}, want: ErrIneligibleLeader},
		{name: "elect unclean allowed", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 2}}})
			_ = f.ApplyCommand(101, Command{Type: CmdAlterTopic, AlterTopic: &AlterTopic{Name: "t", Config: topicconfig.Config{UncleanLeaderElection: true}}})
		}, cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			Leader: 3, ISR: []int32{3}, Unclean: true}},
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 3 || p.LeaderEpoch != 1 {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "elect dead broker", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 2}})
		}, cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			Leader: 2, ISR: []int32{2}}}, want: ErrIneligibleLeader},
		{name: "elect non replica", cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			Leader: 4, ISR: []int32{4}}}, want: ErrInvalidAssignment},
		{name: "elect isr without leader", cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 0,
			Leader: 2, ISR: []int32{3}}}, want: ErrInvalidAssignment},
		{name: "elect missing partition", cmd: Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Partition: 5,
			Leader: 2, ISR: []int32{2}}}, want: ErrPartitionNotFound},
		{name: "change isr shrink", cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, LeaderEpoch: 0, ISR: []int32{1, 3}}},
			check: func(t *testing.T, s *State) {
				if p := part(s); !slices.Equal(p.ISR, []int32{1, 3}) || p.LeaderEpoch != 0 {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "change isr expand", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1}}})
		}, cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 2}}},
			check: func(t *testing.T, s *State) {
				if p := part(s); !slices.Equal(p.ISR, []int32{1, 2}) {
					t.Fatalf("%+v", p)
				}
			}},
		{name: "change isr stale epoch", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Leader: 2, ISR: []int32{1, 2, 3}}})
			_ = f.ApplyCommand(101, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", ExpectedEpoch: 1, Leader: 1, ISR: []int32{1, 2, 3}}})
		}, cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, LeaderEpoch: 0, ISR: []int32{1}}}, want: ErrStaleEpoch},
		{name: "change isr not leader", cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 2, ISR: []int32{2}}}, want: ErrNotPartitionLeader},
		{name: "change isr drops leader", cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{2, 3}}}, want: ErrInvalidAssignment},
		{name: "change isr non replica", cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 4}}}, want: ErrInvalidAssignment},
		{name: "change isr add dead", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1}}})
			_ = f.ApplyCommand(101, Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 2}})
		}, cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 2}}}, want: ErrIneligibleLeader},
		{name: "change isr missing topic", cmd: Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "x", LeaderID: 1, ISR: []int32{1}}}, want: ErrTopicNotFound},
		{name: "resign leader", cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 1, LeaderEpoch: 0}},
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 2 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []int32{2, 3}) || p.Offline {
					t.Fatalf("%+v, want leader 2 in epoch 1 with ISR [2 3]", p)
				}
			}},
		{name: "resign leader skips dead replicas", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 2}})
		}, cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 1, LeaderEpoch: 0}},
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 3 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []int32{3}) {
					t.Fatalf("%+v, want leader 3 in epoch 1 with ISR [3]", p)
				}
			}},
		{name: "resign leader skips replicas out of the isr", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Leader: 3, ISR: []int32{1, 3}}})
		}, cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 3, LeaderEpoch: 1}},
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 1 || p.LeaderEpoch != 2 || !slices.Equal(p.ISR, []int32{1}) {
					t.Fatalf("%+v, want leader 1 in epoch 2 with ISR [1]", p)
				}
			}},
		{name: "resign stale epoch", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Leader: 1, ISR: []int32{1, 2, 3}}})
		}, cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 1, LeaderEpoch: 0}}, want: ErrStaleEpoch},
		{name: "resign not leader", cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 2, LeaderEpoch: 0}}, want: ErrNotPartitionLeader},
		{name: "resign offline partition", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Leader: NoLeader, ISR: []int32{1}}})
		}, cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: NoLeader, LeaderEpoch: 1}}, want: ErrNotPartitionLeader},
		{name: "resign alone in the isr", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1}}})
		}, cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 1, LeaderEpoch: 0}}, want: ErrIneligibleLeader},
		{name: "resign with only dead replicas in the isr", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1, 2}}})
			_ = f.ApplyCommand(101, Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 2}})
		}, cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 1, LeaderEpoch: 0}}, want: ErrIneligibleLeader},
		{name: "resign missing partition", cmd: Command{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", Partition: 2, LeaderID: 1}}, want: ErrPartitionNotFound},
		{name: "resign missing payload", cmd: Command{Type: CmdResignLeader}, want: ErrInvalidCommand},
		{name: "storage id first seen changes nothing", cmd: registerStorage(1, "s1"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 1 || p.LeaderEpoch != 0 || !slices.Equal(p.ISR, []int32{1, 2, 3}) || s.Brokers[1].StorageID != "s1" {
					t.Fatalf("%+v, storage %q: want leader 1 in epoch 0 with ISR [1 2 3], storage s1", p, s.Brokers[1].StorageID)
				}
			}},
		{name: "storage id unchanged changes nothing", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(1, "s1"))
		}, cmd: registerStorage(1, "s1"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 1 || p.LeaderEpoch != 0 || !slices.Equal(p.ISR, []int32{1, 2, 3}) {
					t.Fatalf("%+v, want leader 1 in epoch 0 with ISR [1 2 3]", p)
				}
			}},
		{name: "storage id empty keeps the recorded one", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(1, "s1"))
		}, cmd: registerStorage(1, ""),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 1 || p.LeaderEpoch != 0 || s.Brokers[1].StorageID != "s1" {
					t.Fatalf("%+v, storage %q: want leader 1 in epoch 0, storage s1", p, s.Brokers[1].StorageID)
				}
			}},
		{name: "storage id changed on the leader moves leadership", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(1, "s1"))
		}, cmd: registerStorage(1, "s2"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 2 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []int32{2, 3}) || p.Offline || s.Brokers[1].StorageID != "s2" {
					t.Fatalf("%+v, storage %q: want leader 2 in epoch 1 with ISR [2 3], storage s2", p, s.Brokers[1].StorageID)
				}
			}},
		{name: "storage id changed on the leader skips dead replicas", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(1, "s1"))
			_ = f.ApplyCommand(101, Command{Type: CmdSetBrokerAlive, SetBrokerAlive: &SetBrokerAlive{ID: 2}})
		}, cmd: registerStorage(1, "s2"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 3 || p.LeaderEpoch != 1 || slices.Contains(p.ISR, 1) {
					t.Fatalf("%+v, want leader 3 in epoch 1 with 1 out of the ISR", p)
				}
			}},
		{name: "storage id changed on a follower leaves the isr", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(2, "s1"))
		}, cmd: registerStorage(2, "s2"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != 1 || p.LeaderEpoch != 0 || !slices.Equal(p.ISR, []int32{1, 3}) {
					t.Fatalf("%+v, want leader 1 in epoch 0 with ISR [1 3]", p)
				}
			}},
		{name: "storage id changed on the only isr member goes offline", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(1, "s1"))
			_ = f.ApplyCommand(101, Command{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1}}})
		}, cmd: registerStorage(1, "s2"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != NoLeader || p.LeaderEpoch != 1 || len(p.ISR) != 0 || !p.Offline {
					t.Fatalf("%+v, want offline in epoch 1 with an empty ISR", p)
				}
			}},
		{name: "storage id changed on the last isr member of an offline partition", setup: func(f *FSM) {
			_ = f.ApplyCommand(100, registerStorage(1, "s1"))
			_ = f.ApplyCommand(101, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Leader: NoLeader, ISR: []int32{1}}})
		}, cmd: registerStorage(1, "s2"),
			check: func(t *testing.T, s *State) {
				if p := part(s); p.Leader != NoLeader || p.LeaderEpoch != 1 || len(p.ISR) != 0 || !p.Offline {
					t.Fatalf("%+v, want still offline in epoch 1 with an empty ISR", p)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base(t)
			if tc.setup != nil {
				tc.setup(f)
			}
			before := stateJSON(t, f.State())
			_, changed := f.Watch()
			err := applyEncoded(f, tc.cmd)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if err != nil {
				if after := stateJSON(t, f.State()); !bytes.Equal(before, after) {
					t.Fatalf("rejected command changed the state:\n%s\n%s", before, after)
				}
				select {
				case <-changed:
					t.Fatal("rejected command notified watchers")
				default:
				}
				return
			}
			select {
			case <-changed:
			default:
				t.Fatal("applied command did not notify watchers")
			}
			tc.check(t, f.State())
		})
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := base(t)
	mustApply(t, f, Command{Type: CmdInitCluster, InitCluster: &InitCluster{ClusterID: "abc"}})
	mustApply(t, f, Command{Type: CmdElectLeader, ElectLeader: &ElectLeader{Topic: "t", Leader: 2, ISR: []int32{2, 3}}})
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	g := NewFSM(zaptest.NewLogger(t))
	_, changed := g.Watch()
	if err := g.Restore(io.NopCloser(&sink)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("restore did not notify")
	}
	want, got := f.State(), g.State()
	if got.Index != want.Index {
		t.Fatalf("index %d, want %d", got.Index, want.Index)
	}
	if !bytes.Equal(stateJSON(t, want), stateJSON(t, got)) {
		t.Fatalf("restored state differs")
	}
	if p := got.Topics["t"].Partitions[0]; p.Leader != 2 || p.LeaderEpoch != 1 || got.ClusterID != "abc" || !got.IsAlive(1) || got.IsAlive(4) {
		t.Fatalf("restored %+v", got)
	}
	// Restored state accepts commands.
	mustApply(t, g, Command{Type: CmdDeleteTopic, DeleteTopic: &DeleteTopic{Name: "t"}})
}

// TestRestoreOldSnapshotInternalAddress: a snapshot written before brokers
// had an internal address reads back with the advertised one in its place.
func TestRestoreOldSnapshotInternalAddress(t *testing.T) {
	f := NewFSM(zaptest.NewLogger(t))
	old := `{"brokers":{"1":{"id":1,"broker_address":"b1:9092","replicator_address":"r1:9093","raft_address":"f1:7947","alive":true}},"topics":{},"index":7}`
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte(old)))); err != nil {
		t.Fatal(err)
	}
	if got := f.State().Brokers[1].InternalAddress(); got != "b1:9092" {
		t.Fatalf("internal address %q, want b1:9092", got)
	}
}

func TestRestoreRejectsGarbage(t *testing.T) {
	f := base(t)
	if err := f.Restore(io.NopCloser(bytes.NewReader([]byte("{not json")))); err == nil {
		t.Fatal("garbage restored")
	}
	if _, ok := f.State().Topics["t"]; !ok {
		t.Fatal("failed restore lost the state")
	}
}

func TestStateIsACopy(t *testing.T) {
	f := base(t)
	s := f.State()
	s.Topics["t"].Partitions[0].ISR[0] = 99
	s.Brokers[1].Alive = false
	if g := f.State(); g.Topics["t"].Partitions[0].ISR[0] != 1 || !g.Brokers[1].Alive {
		t.Fatal("State shares memory with the FSM")
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range []Command{
		{Type: CmdCreateTopic, CreateTopic: &CreateTopic{Name: "t", Config: topicconfig.Config{Partitions: 1, ReplicationFactor: 1}, Assignment: [][]int32{{1}}}},
		{Type: CmdChangeISR, ChangeISR: &ChangeISR{Topic: "t", LeaderID: 1, ISR: []int32{1}}},
		{Type: CmdResignLeader, ResignLeader: &ResignLeader{Topic: "t", LeaderID: 1}},
	} {
		b, err := c.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fsm := base(t)
		_ = fsm.Apply(&raft.Log{Index: 100, Type: raft.LogCommand, Data: b}) // must not panic
	})
}
