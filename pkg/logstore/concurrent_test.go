package logstore

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// TestConcurrentReadersWithRetention runs readers against a writer that
// rolls tiny segments, truncates now and then, and lets retention delete
// segments under the readers. Readers never see garbage: every record they
// get carries its own offset's payload; a reader that loses its segment gets
// OutOfRange and restarts from the new start.
func TestConcurrentReadersWithRetention(t *testing.T) {
	frame := int64(FrameSize(len(payload(0))))
	l := openLog(t, t.TempDir(), Options{MaxSegmentBytes: 8 * frame, RetentionBytes: 40 * frame})
	defer closeLog(t, l)
	const total = 3000
	done := make(chan struct{})
	errc := make(chan error, 8)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- follow(l, done)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			off := l.LogEndOffset() - 1
			if off < 0 {
				off = 0
			}
			f, err := l.Read(off)
			switch {
			case err == nil && string(f.Payload) != string(payload(off)):
				errc <- fmt.Errorf("Read(%d) = %q", off, f.Payload)
				return
			case err != nil && !errors.Is(err, ErrOffsetOutOfRange):
				errc <- fmt.Errorf("Read(%d): %w", off, err)
				return
			}
		}
	}()
	for l.LogEndOffset() < total {
		appendN(t, l, 0, 7, 7)
		if l.LogEndOffset()%11 == 0 {
			if err := l.Truncate(l.LogEndOffset() - 3); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(done)
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	if l.Stats().DeletedSegments == 0 {
		t.Fatal("retention deleted nothing; the test did not test it")
	}
}

// follow reads the log as a streaming consumer: Next until EOF, then wait on
// Changed (or done).
func follow(l *Log, done <-chan struct{}) (err error) {
	// Retention may delete the start between reading it and opening the
	// reader: open again from the new start.
	r, err := l.NewReader(l.LogStartOffset())
	for errors.Is(err, ErrOffsetOutOfRange) {
		r, err = l.NewReader(l.LogStartOffset())
	}
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.Close()) }()
	for {
		ch := l.Changed()
		f, err := r.Next()
		switch {
		case err == nil:
			if string(f.Payload) != string(payload(f.Offset)) {
				return fmt.Errorf("offset %d carries %q", f.Offset, f.Payload)
			}
		case errors.Is(err, io.EOF):
			select {
			case <-ch:
			case <-done:
				return nil
			}
		case errors.Is(err, ErrOffsetOutOfRange):
			if err := r.Close(); err != nil {
				return err
			}
			if r, err = l.NewReader(l.LogStartOffset()); err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
				return err
			}
			if r == nil {
				r = &Reader{l: l, closed: true}
			}
		default:
			return err
		}
	}
}

// TestPolicies is the conformance suite: the same behaviour under every
// sync policy.
func TestPolicies(t *testing.T) {
	policies := []SyncPolicy{{Mode: SyncNever}, {Mode: SyncInterval, Interval: time.Millisecond}, {Mode: SyncAlways}}
	for _, p := range policies {
		t.Run(p.String(), func(t *testing.T) {
			t.Run("concurrent appenders", func(t *testing.T) {
				dir := t.TempDir()
				opts := Options{Sync: p, MaxSegmentBytes: 2000}
				l := openLog(t, dir, opts)
				const writers, each = 8, 40
				var wg sync.WaitGroup
				bases := make(chan int64, writers*each)
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; i < each; i++ {
							b, err := l.Append(0, []Record{{Payload: []byte("a")}, {Payload: []byte("b")}})
							if err != nil {
								t.Error(err)
								return
							}
							// Once Append returns, the batch is readable.
							if f, err := l.Read(b + 1); err != nil || string(f.Payload) != "b" {
								t.Errorf("Read(%d) after Append: %q %v", b+1, f.Payload, err)
							}
							bases <- b
						}
					}()
				}
				wg.Wait()
				close(bases)
				seen := map[int64]bool{}
				for b := range bases {
					if seen[b] || b%2 != 0 {
						t.Fatalf("base %d reused or split", b)
					}
					seen[b] = true
				}
				if got := l.LogEndOffset(); got != 2*writers*each {
					t.Fatalf("end %d", got)
				}
				if p.Mode == SyncAlways && l.Stats().Fsyncs > uint64(writers*each)+uint64(l.Stats().Rolls)*2+2 {
					t.Fatalf("more fsyncs (%d) than appends", l.Stats().Fsyncs)
				}
				closeLog(t, l)
				l = openLog(t, dir, opts)
				defer closeLog(t, l)
				if got := l.LogEndOffset(); got != 2*writers*each {
					t.Fatalf("end after reopen %d", got)
				}
			})
			t.Run("append read truncate reopen", func(t *testing.T) {
				dir := t.TempDir()
				opts := Options{Sync: p, MaxSegmentBytes: 300}
				l := openLog(t, dir, opts)
				appendN(t, l, 1, 40, 3)
				if err := l.Truncate(25); err != nil {
					t.Fatal(err)
				}
				appendN(t, l, 2, 5, 2)
				checkRange(t, l, 0, 30)
				closeLog(t, l)
				l = openLog(t, dir, opts)
				defer closeLog(t, l)
				checkRange(t, l, 0, 30)
				if e, end := l.EndOffsetForEpoch(1); e != 1 || end != 25 {
					t.Fatalf("EndOffsetForEpoch(1) = %d, %d", e, end)
				}
			})
		})
	}
}
