package topicconfig

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestSettingLimits is every setting's allowed range, tried at and just
// past each end through Set (the CLI's parser) and through Validate of a
// resolved config (the controller's and every broker's check): both
// accept and refuse the same values, and a refusal names the key as the
// CLI spells it and says the range.
func TestSettingLimits(t *testing.T) {
	i64 := func(v int64) string { return fmt.Sprint(v) }
	cases := []struct {
		key     string
		ok      []string
		bad     []string
		allowed string
	}{
		{"retention.bytes", []string{"-1", "1", i64(math.MaxInt64)}, []string{"0", "-2"}, "-1 (unlimited) or at least 1"},
		{"retention.ms", []string{"-1", "1", "168h", i64(MaxMs)}, []string{"0", "-2", i64(MaxMs + 1), "-1h"}, fmt.Sprintf("-1 (unlimited) or in [1, %d]", MaxMs)},
		{"segment.bytes", []string{"1024", "1048576", i64(math.MaxInt64)}, []string{"1023", "0", "-1"}, "at least 1024"},
		{"segment.ms", []string{"1", "1h", i64(MaxMs)}, []string{"0", "-1", i64(MaxMs + 1), "500us"}, fmt.Sprintf("in [1, %d]", MaxMs)},
		{"max.record.bytes", []string{"1", i64(MaxRecordBytesLimit)}, []string{"0", "-1", i64(MaxRecordBytesLimit + 1), "104857600", i64(math.MaxInt32 + 1)}, "in [1, 67108864]"},
		{"min.insync.replicas", []string{"1"}, []string{"0", "-1", i64(math.MaxInt32 + 1)}, "at least 1"},
		{"fsync", []string{"always", "never", "interval:1ms", "interval:1s"}, []string{"sometimes", "interval:0s", "interval:-1s", "interval:", ""}, "always, never or interval:<duration>"},
		{"unclean.leader.election", []string{"true", "false"}, []string{"maybe"}, "true or false"},
		{"cleanup.policy", []string{"delete", "compact", "compact,delete", "delete, compact"}, []string{"", "shred", "compact,compact", "compact,"}, "delete, compact or compact,delete"},
		{"delete.retention.ms", []string{"1", "24h", i64(MaxMs)}, []string{"0", "-1", i64(MaxMs + 1)}, fmt.Sprintf("in [1, %d]", MaxMs)},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.key] = true
		s, ok := Lookup(tc.key)
		if !ok {
			t.Fatalf("no setting %q", tc.key)
		}
		if !strings.Contains(s.Allowed, tc.allowed) {
			t.Errorf("%s: Allowed = %q, want %q", tc.key, s.Allowed, tc.allowed)
		}
		for _, v := range tc.ok {
			t.Run(tc.key+"="+v, func(t *testing.T) {
				c := Default()
				if err := c.Set(tc.key, v); err != nil {
					t.Fatalf("Set: %v", err)
				}
				// Relations are TestValidate's.
				if tc.key == "max.record.bytes" {
					c.SegmentBytes = math.MaxInt64
				}
				if tc.key == "segment.bytes" {
					c.MaxRecordBytes = 1
				}
				if err := c.Validate(); err != nil {
					t.Fatalf("Validate: %v", err)
				}
			})
		}
		for _, v := range tc.bad {
			t.Run(tc.key+"="+v, func(t *testing.T) {
				c := Default()
				err := c.Set(tc.key, v)
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.key) {
					t.Fatalf("Set: got %v, want ErrInvalid naming %s", err, tc.key)
				}
				if c != Default() {
					t.Errorf("a refused Set changed the config: %+v", c)
				}
				field := fieldOf(tc.key)
				n, perr := strconv.ParseInt(v, 10, 64)
				if field == "" || perr != nil {
					return // not a number: Set's refusal is the test
				}
				bad := Default()
				f := reflect.ValueOf(&bad).Elem().FieldByName(field)
				if f.OverflowInt(n) {
					if !strings.Contains(err.Error(), s.Allowed) && !strings.Contains(err.Error(), fmt.Sprintf("%s must be at most %d", tc.key, math.MaxInt32)) {
						t.Errorf("Set: %q does not say the maximum", err)
					}
					return // no config can hold it
				}
				if !strings.Contains(err.Error(), s.Allowed) {
					t.Errorf("Set: %q does not say the allowed range %q", err, s.Allowed)
				}
				// The same value in a resolved config, as a broker or the
				// controller validates it.
				f.SetInt(n)
				verr := bad.Validate()
				if !errors.Is(verr, ErrInvalid) || !strings.Contains(verr.Error(), tc.key+" must be "+s.Allowed) {
					t.Errorf("Validate: got %v, want %q", verr, tc.key+" must be "+s.Allowed)
				}
			})
		}
	}
	for _, k := range Keys() {
		if !seen[k] {
			t.Errorf("setting %s has no limits case", k)
		}
	}
}

// fieldOf is the Config field a numeric setting sets.
func fieldOf(key string) string {
	return map[string]string{
		"retention.bytes": "RetentionBytes", "retention.ms": "RetentionMs", "segment.bytes": "SegmentBytes",
		"segment.ms": "SegmentMs", "max.record.bytes": "MaxRecordBytes", "min.insync.replicas": "MinInsyncReplicas",
	}[key]
}

// TestValidate covers what is not one setting's range: partitions, the
// replication factor, the relations between settings, and the report of
// every problem at once.
func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Config)
		want []string // "" = valid
	}{
		{"default", func(*Config) {}, nil},
		{"partitions max", func(c *Config) { c.Partitions = MaxPartitions }, nil},
		{"partitions zero", func(c *Config) { c.Partitions = 0 }, []string{"partitions must be in [1, 10000], got 0"}},
		{"partitions above max", func(c *Config) { c.Partitions = MaxPartitions + 1 }, []string{"partitions must be in [1, 10000], got 10001"}},
		{"replication factor zero", func(c *Config) { c.ReplicationFactor = 0 }, []string{"replication.factor must be at least 1, got 0"}},
		{"record above segment", func(c *Config) { c.SegmentBytes = 4096; c.MaxRecordBytes = 4097 },
			[]string{"max.record.bytes (4097) must not exceed segment.bytes (4096)"}},
		{"record equal to segment", func(c *Config) { c.SegmentBytes = 4096; c.MaxRecordBytes = 4096 }, nil},
		{"min isr above rf", func(c *Config) { c.ReplicationFactor = 3; c.MinInsyncReplicas = 4 },
			[]string{"min.insync.replicas (4) must not exceed replication.factor (3)"}},
		{"min isr equal to rf", func(c *Config) { c.ReplicationFactor = 3; c.MinInsyncReplicas = 3 }, nil},
		{"every problem", func(c *Config) { c.Partitions = 0; c.MaxRecordBytes = 100 << 20; c.Fsync = "x" },
			[]string{"partitions must be", "max.record.bytes must be in [1, 67108864], got 104857600", `fsync must be always, never or interval:<duration> with a positive duration, got "x"`}},
		{"zero config", func(c *Config) { *c = Config{} }, []string{"partitions", "replication.factor", "retention.bytes", "retention.ms",
			"segment.bytes", "segment.ms", "max.record.bytes", "fsync", "min.insync.replicas"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not say %q", err, w)
				}
			}
		})
	}
}

func TestAlter(t *testing.T) {
	cur := Default()
	cur.Partitions, cur.ReplicationFactor, cur.MinInsyncReplicas = 3, 3, 2

	next, err := cur.Alter(Config{RetentionMs: 60000, Partitions: 3, UncleanLeaderElection: true})
	if err != nil {
		t.Fatal(err)
	}
	want := cur
	want.RetentionMs, want.UncleanLeaderElection = 60000, true
	if next != want {
		t.Fatalf("got %+v, want %+v", next, want)
	}
	for name, tc := range map[string]struct {
		change Config
		want   string
	}{
		"partitions":          {Config{Partitions: 4}, "partitions cannot be changed (3, asked 4)"},
		"rf":                  {Config{ReplicationFactor: 1}, "replication.factor cannot be changed (3, asked 1)"},
		"record too large":    {Config{MaxRecordBytes: 100 << 20}, "max.record.bytes must be in [1, 67108864], got 104857600"},
		"min isr":             {Config{MinInsyncReplicas: 4}, "min.insync.replicas (4) must not exceed replication.factor (3)"},
		"record over segment": {Config{SegmentBytes: 2048}, fmt.Sprintf("max.record.bytes (%d) must not exceed segment.bytes (2048)", Default().MaxRecordBytes)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := cur.Alter(tc.change)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}

	// A config stored sparse (zero = default, as a cluster's metadata kept
	// topics before the controller wrote defaults down) is checked with
	// the defaults filled in, and stays sparse.
	sparse := Config{Partitions: 1, ReplicationFactor: 3}
	next, err = sparse.Alter(Config{RetentionMs: 1000})
	if err != nil || next != (Config{Partitions: 1, ReplicationFactor: 3, RetentionMs: 1000}) {
		t.Fatalf("sparse: %+v %v", next, err)
	}
	if _, err := sparse.Alter(Config{MaxRecordBytes: MaxRecordBytesLimit + 1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("sparse, record too large: got %v", err)
	}
}

func TestSetKeys(t *testing.T) {
	var c Config
	for _, kv := range [][2]string{
		{"RETENTION_MS", "1h"}, {"retention", "2h"}, {"segment.age", "90m"}, {"max_record_bytes", "2048"}, {" fsync ", "never"},
	} {
		if err := c.Set(kv[0], kv[1]); err != nil {
			t.Fatalf("Set(%q, %q): %v", kv[0], kv[1], err)
		}
	}
	want := Config{RetentionMs: 2 * 3600 * 1000, SegmentMs: 90 * 60 * 1000, MaxRecordBytes: 2048, Fsync: "never"}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
	err := c.Set("partitions", "3")
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `unknown setting "partitions"`) || !strings.Contains(err.Error(), strings.Join(Keys(), ", ")) {
		t.Fatalf("unknown key: %v", err)
	}
	if err := c.Set("segment.bytes", "big"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `segment.bytes="big": must be an integer`) {
		t.Fatalf("not a number: %v", err)
	}
}

func TestFormat(t *testing.T) {
	c := Config{RetentionBytes: -1, RetentionMs: 60000, Fsync: "always"}
	got := map[string]string{}
	for _, s := range Settings() {
		got[s.Key] = s.Format(c)
	}
	want := map[string]string{"retention.bytes": "unlimited", "retention.ms": "60000", "segment.bytes": "", "segment.ms": "",
		"max.record.bytes": "", "fsync": "always", "min.insync.replicas": "", "unclean.leader.election": "false",
		"cleanup.policy": "", "delete.retention.ms": ""}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// TestEverySettingIsOwned: every Config field is partitions, the
// replication factor or exactly one setting, and every strata.v1.TopicConfig
// field survives FromProto and Proto: a setting added to the proto or to
// Config but not to the table or the conversion fails here.
func TestEverySettingIsOwned(t *testing.T) {
	owner := map[string]string{"Partitions": "(flag)", "ReplicationFactor": "(flag)"}
	values := map[string]string{"retention.bytes": "5", "retention.ms": "5", "segment.bytes": "5000",
		"segment.ms": "5", "max.record.bytes": "5", "fsync": "never", "min.insync.replicas": "5", "unclean.leader.election": "true",
		"cleanup.policy": "compact", "delete.retention.ms": "5"}
	for _, s := range Settings() {
		var c Config
		v, ok := values[s.Key]
		if !ok {
			t.Fatalf("no test value for %s", s.Key)
		}
		if err := c.Set(s.Key, v); err != nil {
			t.Fatal(err)
		}
		rv := reflect.ValueOf(c)
		for i := range rv.NumField() {
			if rv.Field(i).IsZero() {
				continue
			}
			name := rv.Type().Field(i).Name
			if prev, ok := owner[name]; ok {
				t.Errorf("Config.%s is set by %s and %s", name, prev, s.Key)
			}
			owner[name] = s.Key
		}
	}
	for i := range reflect.TypeFor[Config]().NumField() {
		if name := reflect.TypeFor[Config]().Field(i).Name; owner[name] == "" {
			t.Errorf("Config.%s is no setting's", name)
		}
	}

	p := &stratav1.TopicConfig{}
	fields := p.ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		var v protoreflect.Value
		switch fd.Kind() {
		case protoreflect.Int32Kind:
			v = protoreflect.ValueOfInt32(int32(100 + i))
		case protoreflect.Int64Kind:
			v = protoreflect.ValueOfInt64(int64(100 + i))
		case protoreflect.StringKind:
			v = protoreflect.ValueOfString(fmt.Sprint("v", i))
		case protoreflect.BoolKind:
			v = protoreflect.ValueOfBool(true)
		default:
			t.Fatalf("TopicConfig.%s: kind %v not covered", fd.Name(), fd.Kind())
		}
		p.ProtoReflect().Set(fd, v)
	}
	if back := FromProto(p).Proto(); !proto.Equal(back, p) {
		t.Fatalf("round trip lost fields:\n got %v\nwant %v", back, p)
	}
	if FromProto(nil) != (Config{}) {
		t.Fatal("FromProto(nil) is not the zero Config")
	}
}

func TestDefaultReplicationFactor(t *testing.T) {
	for live, want := range map[int]int32{0: 1, 1: 1, 2: 2, 3: 3, 5: 3} {
		if got := DefaultReplicationFactor(live); got != want {
			t.Errorf("DefaultReplicationFactor(%d) = %d, want %d", live, got, want)
		}
	}
	if err := Default().Validate(); err != nil {
		t.Fatalf("the defaults are invalid: %v", err)
	}
}

func TestLogOptions(t *testing.T) {
	c := Default()
	c.Fsync, c.RetentionMs, c.SegmentMs = "interval:250ms", -1, MaxMs
	o, err := c.LogOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.Sync.String() != "interval:250ms" || o.RetentionAge != 0 || o.SegmentMaxAge <= 0 || o.MaxRecordBytes < MaxRecordBytesLimit {
		t.Fatalf("options %+v", o)
	}
}

// TestCompactOnlyTurnsRetentionOff: under cleanup.policy=compact the
// latest record of a key stays however old; compact,delete keeps both.
func TestCompactOnlyTurnsRetentionOff(t *testing.T) {
	c := Default()
	c.RetentionBytes, c.RetentionMs = 1<<20, 1000
	for policy, retained := range map[string]bool{CleanupDelete: true, CleanupCompact: false, CleanupCompactDelete: true} {
		c.CleanupPolicy = policy
		o, err := c.LogOptions()
		if err != nil {
			t.Fatal(err)
		}
		if got := o.RetentionAge > 0 && o.RetentionBytes > 0; got != retained {
			t.Errorf("%s: retention age %v bytes %d, want retention %v", policy, o.RetentionAge, o.RetentionBytes, retained)
		}
		if c.Compacted() == (policy == CleanupDelete) {
			t.Errorf("%s: Compacted() = %v", policy, c.Compacted())
		}
	}
}
