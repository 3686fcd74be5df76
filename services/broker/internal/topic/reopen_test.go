package topic

import (
	"errors"
	"fmt"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/logstore"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// failedLog stands for a log whose write failed: it reports the failure
// and counts its closes.
type failedLog struct {
	partition.Log // nil: only the methods below are called
	dir           string
	closes        int
}

var errFailed = fmt.Errorf("%w: write: input/output error", logstore.ErrFailed)

func (l *failedLog) Dir() string    { return l.dir }
func (l *failedLog) Healthy() error { return errFailed }
func (l *failedLog) Close() error   { l.closes++; return errFailed }

// TestReopenableLog: Reopen closes the log and opens its directory again,
// with recovery; when the open fails the old log stays, still reporting
// its failure, so that the caller can try again; after Close it refuses.
func TestReopenableLog(t *testing.T) {
	lg := zaptest.NewLogger(t)
	t.Run("reopen opens the directory again", func(t *testing.T) {
		dir := t.TempDir()
		open := func() (partition.Log, error) { return logstore.Open(dir, logstore.Options{}) }
		l, err := open()
		if err != nil {
			t.Fatal(err)
		}
		r := newReopenableLog(l, open, lg)
		if _, err := r.Append(1, []logstore.Record{{Payload: []byte("a")}, {Payload: []byte("b")}}); err != nil {
			t.Fatal(err)
		}
		changed := r.Changed()
		if err := r.Reopen(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-changed:
		default:
			t.Fatal("the old log's waiters were not woken")
		}
		if _, err := l.Append(1, []logstore.Record{{Payload: []byte("lost")}}); !errors.Is(err, logstore.ErrClosed) {
			t.Fatalf("append to the old log: %v, want ErrClosed", err)
		}
		if end := r.LogEndOffset(); end != 2 {
			t.Fatalf("log end %d after the reopen, want 2", end)
		}
		if _, err := r.Append(1, []logstore.Record{{Payload: []byte("c")}}); err != nil {
			t.Fatalf("append after the reopen: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Reopen(); !errors.Is(err, logstore.ErrClosed) {
			t.Fatalf("reopen after close: %v, want ErrClosed", err)
		}
	})
	t.Run("a failed open keeps the old log", func(t *testing.T) {
		old := &failedLog{dir: t.TempDir()}
		errOpen := errors.New("open: input/output error")
		r := newReopenableLog(old, func() (partition.Log, error) { return nil, errOpen }, lg)
		if err := r.Reopen(); !errors.Is(err, errOpen) {
			t.Fatalf("reopen: %v, want the open's error", err)
		}
		if err := r.Healthy(); !errors.Is(err, logstore.ErrFailed) {
			t.Fatalf("Healthy() = %v after a failed reopen, want the old failure", err)
		}
		if old.closes != 1 {
			t.Fatalf("old log closed %d times, want 1", old.closes)
		}
		if r.Dir() != old.dir {
			t.Fatalf("dir %q, want %q", r.Dir(), old.dir)
		}
	})
}
