package logstore

import (
	"errors"
	"testing"
)

// TestFaults: a failing write or fsync is never retried nor acknowledged,
// fails the log (read-only, unhealthy) until reopened, and reopening
// recovers every acknowledged record.
func TestFaults(t *testing.T) {
	tests := []struct {
		name   string
		policy SyncPolicy
		inject func(f *faultFS)
		write  func(l *Log) error
	}{
		{name: "write, never", policy: SyncPolicy{Mode: SyncNever}, inject: func(f *faultFS) { f.failWrite.Store(true) }},
		{name: "write, always", policy: SyncPolicy{Mode: SyncAlways}, inject: func(f *faultFS) { f.failWrite.Store(true) }},
		{name: "fsync, always", policy: SyncPolicy{Mode: SyncAlways}, inject: func(f *faultFS) { f.failSync.Store(true) }},
		{name: "fsync on Sync, never", policy: SyncPolicy{Mode: SyncNever}, inject: func(f *faultFS) { f.failSync.Store(true) },
			write: func(l *Log) error { return l.Sync() }},
		{name: "write via AppendFrames", policy: SyncPolicy{Mode: SyncNever}, inject: func(f *faultFS) { f.failWrite.Store(true) },
			write: func(l *Log) error {
				_, err := l.AppendFrames(0, AppendFrame(nil, l.LogEndOffset(), 0, payload(l.LogEndOffset())))
				return err
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			ffs := &faultFS{}
			opts := Options{Sync: tt.policy, FS: ffs, MaxSegmentBytes: 300}
			l := openLog(t, dir, opts)
			appendN(t, l, 0, 10, 2)
			tt.inject(ffs)
			write := tt.write
			if write == nil {
				write = func(l *Log) error {
					_, err := l.Append(0, []Record{{Payload: payload(10)}, {Payload: payload(11)}})
					return err
				}
			}
			if err := write(l); !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
				t.Fatalf("write under fault: %v", err)
			}
			if tt.write == nil && l.LogEndOffset() != 10 {
				t.Fatalf("failed batch became visible: end %d", l.LogEndOffset())
			}
			if !errors.Is(l.Healthy(), ErrFailed) {
				t.Fatalf("Healthy = %v", l.Healthy())
			}
			ffs.failWrite.Store(false)
			ffs.failSync.Store(false)
			// Sticky: no retry even once the fault is gone.
			if _, err := l.Append(0, []Record{{Payload: payload(10)}}); !errors.Is(err, ErrFailed) {
				t.Fatalf("append after failure: %v", err)
			}
			if err := l.Truncate(5); !errors.Is(err, ErrFailed) {
				t.Fatalf("truncate after failure: %v", err)
			}
			// Reads still work.
			if f, err := l.Read(3); err != nil || f.Offset != 3 {
				t.Fatalf("read from a failed log: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatalf("Close of a failed log: %v", err)
			}
			l = openLog(t, dir, Options{Sync: tt.policy, MaxSegmentBytes: 300})
			defer closeLog(t, l)
			if l.Healthy() != nil {
				t.Fatalf("reopened log unhealthy: %v", l.Healthy())
			}
			end := l.LogEndOffset()
			if end < 10 {
				t.Fatalf("lost acknowledged records: end %d", end)
			}
			checkRange(t, l, 0, end)
			appendN(t, l, 0, 2, 2)
		})
	}
}
