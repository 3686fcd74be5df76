package topicconfig

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/strata-log/strata/pkg/logstore"
)

// A Setting is one topic setting that `--config key=value` sets and an
// alter changes. Partitions and the replication factor are not settings:
// they have their own flags and are fixed at creation.
type Setting struct {
	// Key names the setting in the CLI, the docs and every error:
	// "max.record.bytes".
	Key string
	// Doc says in a line what the setting does.
	Doc string
	// Allowed says which values are allowed: "in [1, 67108864]".
	Allowed string

	aliases []string
	// set parses a value into c.
	set func(c *Config, v string) error
	// get shows c's value; "" when the field is zero (unset).
	get func(c Config) string
	// check describes what is wrong with c's value, "" when nothing is.
	check func(c Config) string
}

// Format shows the setting's value in c: "" when c leaves it unset (zero),
// "unlimited" for a retention of -1.
func (s Setting) Format(c Config) string { return s.get(c) }

// settings is the table of every setting, in the order the CLI shows them.
func settings() []Setting {
	return []Setting{
		int64Setting("retention.bytes", "delete a partition's oldest segments while it holds more bytes than this",
			valueRange{min: 1, max: math.MaxInt64, unlimited: true}, false,
			func(c *Config) *int64 { return &c.RetentionBytes }),
		int64Setting("retention.ms", "delete segments older than this (milliseconds, or a duration such as 168h)",
			valueRange{min: 1, max: MaxMs, unlimited: true}, true,
			func(c *Config) *int64 { return &c.RetentionMs }, "retention"),
		int64Setting("segment.bytes", "roll a partition's active segment at this size",
			valueRange{min: MinSegmentBytes, max: math.MaxInt64}, false,
			func(c *Config) *int64 { return &c.SegmentBytes }),
		int64Setting("segment.ms", "roll a non-empty active segment older than this (milliseconds, or a duration such as 24h)",
			valueRange{min: 1, max: MaxMs}, true,
			func(c *Config) *int64 { return &c.SegmentMs }, "segment.age"),
		int32Setting("max.record.bytes", "the largest record (key, value and headers) a partition accepts; at most segment.bytes",
			valueRange{min: 1, max: MaxRecordBytesLimit},
			func(c *Config) *int32 { return &c.MaxRecordBytes }),
		{
			Key:     "fsync",
			Doc:     "when a partition's log is fsynced",
			Allowed: "always, never or interval:<duration> (such as interval:100ms)",
			set:     func(c *Config, v string) error { c.Fsync = v; return nil },
			get:     func(c Config) string { return c.Fsync },
			check: func(c Config) string {
				if _, err := logstore.ParseSyncPolicy(c.Fsync); err != nil {
					return fmt.Sprintf("fsync must be always, never or interval:<duration> with a positive duration, got %q", c.Fsync)
				}
				return ""
			},
		},
		int32Setting("min.insync.replicas", "the fewest in-sync replicas that acknowledge acks=ALL; at most the replication factor",
			valueRange{min: 1, max: math.MaxInt32},
			func(c *Config) *int32 { return &c.MinInsyncReplicas }),
		{
			Key:     "unclean.leader.election",
			Doc:     "let a replica outside the ISR lead when no in-sync replica is alive (acknowledged records may be lost)",
			Allowed: "true or false",
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%w: unclean.leader.election=%q: must be true or false", ErrInvalid, v)
				}
				c.UncleanLeaderElection = b
				return nil
			},
			get:   func(c Config) string { return strconv.FormatBool(c.UncleanLeaderElection) },
			check: func(Config) string { return "" },
		},
		{
			Key:     "cleanup.policy",
			Doc:     "delete: retention deletes old segments; compact: keep the latest record of each key (retention off); compact,delete: both",
			Allowed: "delete, compact or compact,delete",
			set: func(c *Config, v string) error {
				if c.CleanupPolicy = normalizePolicy(v); c.CleanupPolicy == "" {
					return fmt.Errorf("%w: cleanup.policy must be delete, compact or compact,delete, got %q", ErrInvalid, v)
				}
				return nil
			},
			get: func(c Config) string { return c.CleanupPolicy },
			check: func(c Config) string {
				switch c.CleanupPolicy {
				case "", CleanupDelete, CleanupCompact, CleanupCompactDelete:
					return ""
				}
				return fmt.Sprintf("cleanup.policy must be delete, compact or compact,delete, got %q", c.CleanupPolicy)
			},
		},
		int64Setting("delete.retention.ms", "how long compaction keeps a tombstone, so readers from the start see the deletion (milliseconds, or a duration such as 24h)",
			valueRange{min: 1, max: MaxMs}, true,
			func(c *Config) *int64 { return &c.DeleteRetentionMs }),
	}
}

// normalizePolicy accepts the policies in either order and with spaces.
func normalizePolicy(v string) string {
	parts := strings.Split(strings.ReplaceAll(v, " ", ""), ",")
	if len(parts) == 2 && parts[0] == CleanupDelete && parts[1] == CleanupCompact {
		return CleanupCompactDelete
	}
	return strings.Join(parts, ",")
}

// Settings returns every setting, in the order the CLI shows them.
func Settings() []Setting { return settings() }

// Keys returns every setting's key, in the order of Settings.
func Keys() []string {
	var keys []string
	for _, s := range settings() {
		keys = append(keys, s.Key)
	}
	return keys
}

// Lookup finds a setting by key. Keys are case-insensitive, '_' may stand
// for '.' (retention_ms, the proto's spelling), and a few aliases
// (retention, segment.age) name the broker flags' spelling.
func Lookup(key string) (Setting, bool) {
	k := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(key)), "_", ".")
	for _, s := range settings() {
		if s.Key == k {
			return s, true
		}
		for _, a := range s.aliases {
			if a == k {
				return s, true
			}
		}
	}
	return Setting{}, false
}

// Set parses value as the setting named key and stores it in c. A value
// out of the setting's range is refused, with the range; relations
// between settings are Validate's.
func (c *Config) Set(key, value string) error {
	s, ok := Lookup(key)
	if !ok {
		return fmt.Errorf("%w: unknown setting %q; the settings are %s", ErrInvalid, key, strings.Join(Keys(), ", "))
	}
	next := *c
	if err := s.set(&next, strings.TrimSpace(value)); err != nil {
		return err
	}
	if p := s.check(next); p != "" {
		return invalid([]string{p})
	}
	*c = next
	return nil
}

// valueRange is the allowed range of a numeric setting.
type valueRange struct {
	min, max int64
	// unlimited allows -1 too, meaning no limit.
	unlimited bool
}

// open reports whether r's maximum is only its type's.
func (r valueRange) open() bool { return r.max == math.MaxInt64 || r.max == math.MaxInt32 }

func (r valueRange) String() string {
	s := fmt.Sprintf("in [%d, %d]", r.min, r.max)
	if r.open() {
		s = fmt.Sprintf("at least %d", r.min)
	}
	if r.unlimited {
		s = "-1 (unlimited) or " + s
	}
	return s
}

// problem describes v out of r as "key must be in [1, 10], got 11"; "" when v is in r.
func (r valueRange) problem(key string, v int64) string {
	if v >= r.min && v <= r.max || r.unlimited && v == -1 {
		return ""
	}
	if v > r.max && r.open() {
		return fmt.Sprintf("%s must be at most %d, got %d", key, r.max, v)
	}
	return fmt.Sprintf("%s must be %s, got %d", key, r, v)
}

func (r valueRange) format(v int64) string {
	switch {
	case v == 0:
		return ""
	case v == -1 && r.unlimited:
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
}

// parseInt reads an integer, or for a setting in milliseconds (ms) also a
// Go duration ("168h").
func parseInt(key, v string, ms bool) (int64, error) {
	if ms {
		if d, err := time.ParseDuration(v); err == nil {
			return d.Milliseconds(), nil
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		want := "an integer"
		if ms {
			want = "milliseconds or a duration such as 168h"
		}
		return 0, fmt.Errorf("%w: %s=%q: must be %s", ErrInvalid, key, v, want)
	}
	return n, nil
}

func int64Setting(key, doc string, r valueRange, ms bool, field func(*Config) *int64, aliases ...string) Setting {
	return Setting{
		Key: key, Doc: doc, Allowed: r.String(), aliases: aliases,
		set: func(c *Config, v string) error {
			n, err := parseInt(key, v, ms)
			if err != nil {
				return err
			}
			*field(c) = n
			return nil
		},
		get:   func(c Config) string { return r.format(*field(&c)) },
		check: func(c Config) string { return r.problem(key, *field(&c)) },
	}
}

func int32Setting(key, doc string, r valueRange, field func(*Config) *int32, aliases ...string) Setting {
	return Setting{
		Key: key, Doc: doc, Allowed: r.String(), aliases: aliases,
		set: func(c *Config, v string) error {
			n, err := parseInt(key, v, false)
			if err != nil {
				return err
			}
			if p := r.problem(key, n); p != "" { // before it is narrowed to 32 bits
				return invalid([]string{p})
			}
			*field(c) = int32(n)
			return nil
		},
		get:   func(c Config) string { return r.format(int64(*field(&c))) },
		check: func(c Config) string { return r.problem(key, int64(*field(&c))) },
	}
}
