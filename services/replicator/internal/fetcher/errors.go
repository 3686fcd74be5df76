package fetcher

import (
	"errors"
	"fmt"
)

// Errors a fetcher's attempt ends with (wrapped in a *StepError).
var (
	// ErrLocalNotReady: the local broker does not follow the partition in
	// the fetcher's epoch yet (the applier has not told it, or it
	// restarted); the fetcher waits and looks again.
	ErrLocalNotReady = errors.New("fetcher: local broker not yet following in this epoch")
	// ErrStaleResponse: a Fetch response of another leader epoch.
	ErrStaleResponse = errors.New("fetcher: fetch response from another leader epoch")
	// ErrOffsetMismatch: a Fetch response that does not start at the local
	// log end offset.
	ErrOffsetMismatch = errors.New("fetcher: fetch response not at the local log end")
	// ErrIdle: the leader sent nothing for the idle timeout.
	ErrIdle = errors.New("fetcher: leader silent past the idle timeout")
	// ErrStreamClosed: the leader ended the Fetch stream without an error.
	ErrStreamClosed = errors.New("fetcher: leader closed the fetch stream")
	// ErrBadAnswer: an OffsetForLeaderEpoch or Append answer that breaks
	// the protocol (an epoch above the one asked, a log end going back).
	ErrBadAnswer = errors.New("fetcher: answer breaks the replication protocol")
	// ErrConnsClosed is returned by Conns.Leader after Close.
	ErrConnsClosed = errors.New("fetcher: leader connections closed")
)

// StepError is a failed attempt and the step it failed in: local_status,
// resync, truncate, dial, fetch or append.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return fmt.Sprintf("%s: %v", e.Step, e.Err) }

func (e *StepError) Unwrap() error { return e.Err }

func stepErr(step string, err error) error { return &StepError{Step: step, Err: err} }
