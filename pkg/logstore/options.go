package logstore

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"go.uber.org/zap"
)

// SyncMode says when appended data is fsynced.
type SyncMode int

// Sync modes.
const (
	// SyncNever leaves flushing to the operating system; replication is the
	// durability.
	SyncNever SyncMode = iota
	// SyncInterval fsyncs the active segment every SyncPolicy.Interval from a
	// goroutine owned by the Log.
	SyncInterval
	// SyncAlways fsyncs before Append returns; concurrent appenders share one
	// fsync (group commit).
	SyncAlways
)

// SyncPolicy says when appended data is fsynced.
type SyncPolicy struct {
	Mode     SyncMode
	Interval time.Duration // only for SyncInterval; > 0
}

// ParseSyncPolicy parses "always", "never" or "interval:<time.Duration>".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	switch {
	case s == "always":
		return SyncPolicy{Mode: SyncAlways}, nil
	case s == "never":
		return SyncPolicy{Mode: SyncNever}, nil
	case strings.HasPrefix(s, "interval:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "interval:"))
		if err != nil {
			return SyncPolicy{}, fmt.Errorf("logstore: sync policy %q: %w", s, err)
		}
		if d <= 0 {
			return SyncPolicy{}, fmt.Errorf("logstore: sync policy %q: interval must be positive", s)
		}
		return SyncPolicy{Mode: SyncInterval, Interval: d}, nil
	}
	return SyncPolicy{}, fmt.Errorf("logstore: sync policy %q: want always, never or interval:<duration>", s)
}

// String round-trips through ParseSyncPolicy.
func (p SyncPolicy) String() string {
	switch p.Mode {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval:" + p.Interval.String()
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncMode(%d)", int(p.Mode))
}

func (p SyncPolicy) validate() error {
	switch p.Mode {
	case SyncNever, SyncAlways:
		return nil
	case SyncInterval:
		if p.Interval <= 0 {
			return errors.New("logstore: Sync.Interval must be positive for SyncInterval")
		}
		return nil
	}
	return fmt.Errorf("logstore: unknown sync mode %d", int(p.Mode))
}

// Defaults for zero Options fields.
const (
	DefaultMaxSegmentBytes = 256 << 20
	DefaultMaxIndexBytes   = 10 << 20 / indexEntrySize * indexEntrySize
	DefaultSegmentMaxAge   = 7 * 24 * time.Hour
	DefaultMaxRecordBytes  = 1 << 20
)

// Options configure a Log. Zero values mean the documented defaults.
type Options struct {
	// MaxSegmentBytes rolls the active segment when its store would exceed
	// this; 0 = 256 MiB. A single batch larger than this still goes into one
	// (new, empty) segment.
	MaxSegmentBytes int64
	// MaxIndexBytes rolls when the index reaches this; 0 = 10 MiB. Rounded
	// down to a multiple of 12 bytes (one entry).
	MaxIndexBytes int64
	// SegmentMaxAge rolls a non-empty active segment older than this,
	// measured from its first append (after a reopen, from its first
	// record's timestamp); 0 = 7 days.
	SegmentMaxAge time.Duration
	// RetentionBytes deletes the oldest sealed segments while the total
	// bytes exceed this; <= 0 = unlimited.
	RetentionBytes int64
	// RetentionAge deletes sealed segments whose newest record is older than
	// this; 0 = unlimited.
	RetentionAge time.Duration
	// MaxRecordBytes is the largest payload of one record; 0 = 1 MiB.
	// Larger records get ErrRecordTooLarge; larger length prefixes on disk
	// are corruption.
	MaxRecordBytes int
	// Sync is the fsync policy; the zero value is SyncNever.
	Sync SyncPolicy
	// Logger receives the engine's logs; nil = zap.NewNop().
	Logger *zap.Logger
	// FS is the file layer; nil = the real operating system (OSFS).
	FS FS
	// Now is the clock for segment age and retention; nil = time.Now.
	Now func() time.Time
	// ObserveFsync, when set, is called with the duration of every fsync of
	// a store file (a metrics hook; it must not block).
	ObserveFsync func(time.Duration)

	// staticRecoveryPoint keeps the recovery point where it was before it
	// followed every fsync (moved only at roll, Sync, Truncate and Close),
	// so that BenchmarkRecoveryPoint can measure what following costs.
	staticRecoveryPoint bool
}

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if o.MaxSegmentBytes < 0 {
		return o, errors.New("logstore: MaxSegmentBytes must not be negative")
	}
	if o.MaxSegmentBytes == 0 {
		o.MaxSegmentBytes = DefaultMaxSegmentBytes
	}
	if o.MaxIndexBytes < 0 {
		return o, errors.New("logstore: MaxIndexBytes must not be negative")
	}
	if o.MaxIndexBytes == 0 {
		o.MaxIndexBytes = DefaultMaxIndexBytes
	}
	o.MaxIndexBytes -= o.MaxIndexBytes % indexEntrySize
	if o.MaxIndexBytes < indexEntrySize {
		return o, fmt.Errorf("logstore: MaxIndexBytes must hold at least one %d-byte entry", indexEntrySize)
	}
	if max := int64(math.MaxUint32) * indexEntrySize; o.MaxIndexBytes > max {
		o.MaxIndexBytes = max
	}
	if o.SegmentMaxAge < 0 {
		return o, errors.New("logstore: SegmentMaxAge must not be negative")
	}
	if o.SegmentMaxAge == 0 {
		o.SegmentMaxAge = DefaultSegmentMaxAge
	}
	if o.RetentionAge < 0 {
		return o, errors.New("logstore: RetentionAge must not be negative")
	}
	if o.MaxRecordBytes < 0 {
		return o, errors.New("logstore: MaxRecordBytes must not be negative")
	}
	if o.MaxRecordBytes == 0 {
		o.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if o.MaxRecordBytes > math.MaxUint32-frameHeaderSize {
		return o, errors.New("logstore: MaxRecordBytes too large for a u32 length prefix")
	}
	if err := o.Sync.validate(); err != nil {
		return o, err
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.FS == nil {
		o.FS = OSFS{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}
