// Package dirprobe finds out, by trying, whether a data directory still
// takes writes. A partition notices a read-only remount, a revoked
// permission or a dead disk only when it next writes; a broker whose
// partitions are idle would go on reporting healthy, lead partitions it
// cannot append to, and be elected again after each failover. Probing
// the directory lets the broker report itself down at once.
package dirprobe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FileName is the probe file written in the directory. Its name is fixed
// so that a leftover from a crash is simply overwritten.
const FileName = ".strata-write-probe"

// Check creates FileName in dir, writes and fsyncs a byte, and removes it
// again: nil when the directory takes writes. A full disk (ENOSPC) is not
// a failure here: the logs refuse writes for lack of space themselves and
// retry when space returns, and reads go on.
func Check(dir string) error {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("dirprobe: create %s: %w", path, err)
	}
	_, werr := f.Write([]byte{1})
	if werr == nil {
		werr = f.Sync()
	}
	err = errors.Join(werr, f.Close())
	if rerr := os.Remove(path); rerr != nil && err == nil {
		err = rerr
	}
	if err != nil && !errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("dirprobe: write %s: %w", path, err)
	}
	return nil
}

// Options configures Run.
type Options struct {
	// Dir is the directory probed.
	Dir string
	// Interval between probes; zero means one second.
	Interval time.Duration
	// Timeout is how long a probe may take before the directory counts
	// as failed (a hung disk blocks in fsync); zero means five seconds.
	Timeout time.Duration
	// OnChange is called with the first result and every time the result
	// changes from nil to an error or back (not for every failed probe).
	OnChange func(err error)
	// Check replaces the package's Check; nil means Check. For tests.
	Check func(dir string) error
}

// Run probes until ctx ends. A probe still blocked when ctx ends is left
// to finish on its own: a system call cannot be cancelled.
func Run(ctx context.Context, opts Options) {
	interval, timeout, check := opts.Interval, opts.Timeout, opts.Check
	if interval <= 0 {
		interval = time.Second
	}
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if check == nil {
		check = Check
	}
	first, last := true, error(nil)
	report := func(err error) {
		if first || (err == nil) != (last == nil) {
			opts.OnChange(err)
		}
		first, last = false, err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		done := make(chan error, 1)
		go func() { done <- check(opts.Dir) }()
		to := time.NewTimer(timeout)
		select {
		case err := <-done:
			report(err)
		case <-to.C:
			report(fmt.Errorf("dirprobe: a write to %s did not finish within %v", opts.Dir, timeout))
			// Wait for the stuck probe before the next, so probes never
			// pile up on a hung disk.
			select {
			case err := <-done:
				report(err)
			case <-ctx.Done():
				return
			}
		case <-ctx.Done():
			to.Stop()
			return
		}
		to.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
