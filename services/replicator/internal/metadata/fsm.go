package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
)

// FSM is the raft.FSM holding the cluster metadata. Readers take deep
// copies with State and learn of changes through Watch.
type FSM struct {
	lg *zap.Logger

	mu      sync.RWMutex
	state   *State
	changed chan struct{} // closed and replaced on every change
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty state machine.
func NewFSM(lg *zap.Logger) *FSM {
	if lg == nil {
		lg = zap.NewNop()
	}
	return &FSM{lg: lg, state: newState(), changed: make(chan struct{})}
}

// Apply applies one committed log entry. It returns nil on success and an
// error (the command's rejection) otherwise, leaving the state untouched.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := DecodeCommand(l.Data)
	if err != nil {
		f.lg.Warn("undecodable metadata command", zap.Uint64("index", l.Index), zap.Error(err))
		return err
	}
	return f.ApplyCommand(l.Index, cmd)
}

// ApplyCommand applies cmd as if committed at index. It is Apply without
// the log encoding, for tests and tools.
func (f *FSM) ApplyCommand(index uint64, cmd Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.state.apply(cmd); err != nil {
		f.lg.Debug("metadata command rejected", zap.String("type", string(cmd.Type)), zap.Error(err))
		return err
	}
	if index > f.state.Index {
		f.state.Index = index
	}
	f.notifyLocked()
	return nil
}

func (f *FSM) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// State returns a deep copy of the current state.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone()
}

// Watch returns the current state and a channel closed at the next change
// after it. Callers loop: read, act, wait on the channel, repeat.
func (f *FSM) Watch() (*State, <-chan struct{}) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.Clone(), f.changed
}

// Snapshot captures the state for Raft.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{state: f.State()}, nil
}

// Restore replaces the state with a snapshot written by Persist.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st := newState()
	if err := json.NewDecoder(rc).Decode(st); err != nil {
		return fmt.Errorf("metadata: decode snapshot: %w", err)
	}
	if st.Brokers == nil {
		st.Brokers = map[int32]*Broker{}
	}
	if st.Topics == nil {
		st.Topics = map[string]*Topic{}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = st
	f.notifyLocked()
	return nil
}

type snapshot struct{ state *State }

// Persist writes the state as JSON.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.state); err != nil {
		return errors.Join(fmt.Errorf("metadata: write snapshot: %w", err), sink.Cancel())
	}
	return sink.Close()
}

// Release is a no-op: the snapshot owns a private copy.
func (s *snapshot) Release() {}
