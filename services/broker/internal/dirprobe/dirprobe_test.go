package dirprobe

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	if err := Check(dir); err != nil {
		t.Fatalf("Check on a writable directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("probe file left behind: %v", err)
	}
	if err := Check(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("Check on a missing directory = nil")
	}
	// Something in the way of the probe file: the write really fails
	// (as root, permissions would not stop it).
	if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); err == nil {
		t.Fatal("Check with the probe path blocked = nil")
	}
}

// TestRunReportsChanges: OnChange hears the first result and each flip,
// a probe that hangs past Timeout counts as a failure, and Run ends with
// its context.
func TestRunReportsChanges(t *testing.T) {
	var mu sync.Mutex
	results := []error{nil, syscall.EROFS, syscall.EROFS, nil, nil}
	hang := make(chan struct{})
	calls := 0
	check := func(string) error {
		mu.Lock()
		i := calls
		calls++
		mu.Unlock()
		if i < len(results) {
			return results[i]
		}
		if i == len(results) {
			<-hang // a hung disk
		}
		return nil
	}
	changes := make(chan error, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Options{Interval: time.Millisecond, Timeout: 50 * time.Millisecond, Check: check,
			OnChange: func(err error) { changes <- err }})
	}()
	want := []bool{true, false, true, false} // healthy?
	for i, ok := range want {
		select {
		case err := <-changes:
			if (err == nil) != ok {
				t.Fatalf("change %d = %v, want healthy=%v", i, err, ok)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("change %d not reported", i)
		}
	}
	close(hang)
	select {
	case err := <-changes:
		if err != nil {
			t.Fatalf("after the hung probe finished: %v, want healthy", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("recovery after the hung probe not reported")
	}
	cancel()
	<-done
}
