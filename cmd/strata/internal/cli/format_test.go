package cli

import (
	"errors"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/client"
)

func TestFormat(t *testing.T) {
	r := &client.Record{Topic: "t", Partition: 2, Offset: 41, Key: []byte("k1"), Value: []byte("hello"),
		Timestamp: time.UnixMilli(1700000000123), Headers: []client.Header{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}}}
	for _, tc := range []struct{ format, want string }{
		{DefaultFormat, "hello\n"},
		{`%t/%p@%o %k=%s\n`, "t/2@41 k1=hello\n"},
		{`%T\t%h\t%K %S 100%%\\`, "1700000000123\ta=1,b=2\t2 5 100%\\"},
		{`plain`, "plain"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			f, err := parseFormat(tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if got := string(f.append(nil, r)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`%x`, `%`, `\`, `\q`} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, err := parseFormat(bad); err == nil {
				t.Fatalf("parseFormat(%q) succeeded", bad)
			}
		})
	}
}

func TestParseFrom(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in         string
		start, end int64
		want       client.Position
	}{
		{"earliest", 5, 100, client.Earliest()},
		{"latest", 5, 100, client.AtOffset(100)},
		{"42", 5, 100, client.AtOffset(42)},
		{"-10", 5, 100, client.AtOffset(90)},
		{"-1000", 5, 100, client.AtOffset(5)}, // clamped to the log start
		{"2026-01-02T03:04:05Z", 5, 100, client.AtTime(ts)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			f, err := parseFrom(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := f.position(tc.start, tc.end); got.String() != tc.want.String() {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	var ue *usageError
	if _, err := parseFrom("yesterday"); !errors.As(err, &ue) {
		t.Fatalf("bad --from: got %v, want a usage error", err)
	}
}

func TestParseTopicConfig(t *testing.T) {
	cfg, err := parseTopicConfig([]string{"fsync=always", "retention.ms=1h", "segment_bytes=1024", "min.insync.replicas=2"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fsync != "always" || cfg.RetentionMs != 3600000 || cfg.SegmentBytes != 1024 || cfg.MinInsyncReplicas != 2 {
		t.Fatalf("got %+v", cfg)
	}
	// Out of range is refused here as the brokers refuse it; 0 would go out
	// as "the default" and be silently ignored.
	for _, bad := range []string{"nope=1", "segment.bytes=x", "novalue", "max.record.bytes=104857600", "retention.bytes=0"} {
		var ue *usageError
		if _, err := parseTopicConfig([]string{bad}); !errors.As(err, &ue) {
			t.Errorf("%q: got %v, want a usage error", bad, err)
		}
	}
}
