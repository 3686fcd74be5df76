package telemetry_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/telemetry"
)

func TestNewLoggerJSON(t *testing.T) {
	for _, format := range []string{"", telemetry.FormatJSON} { // a buffer is no terminal
		t.Run("format="+format, func(t *testing.T) {
			var buf bytes.Buffer
			lg, err := telemetry.NewLogger(telemetry.LogOptions{Level: "info", Format: format, Out: &buf})
			if err != nil {
				t.Fatal(err)
			}
			lg.Debug("hidden")
			lg.Info("slow fsync", zap.Duration("took", time.Second), zap.String("partition", "orders/0"))
			if err := lg.Sync(); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("got %d lines, want the info line only:\n%s", len(lines), buf.String())
			}
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
				t.Fatalf("not JSON: %v: %s", err, lines[0])
			}
			if rec["level"] != "info" || rec["msg"] != "slow fsync" || rec["partition"] != "orders/0" || rec["caller"] == nil {
				t.Errorf("record %v", rec)
			}
			ts, _ := rec["ts"].(string)
			if _, err := time.Parse("2006-01-02T15:04:05.000Z0700", ts); err != nil {
				t.Errorf("ts %q is not ISO 8601: %v", ts, err)
			}
		})
	}
}

func TestNewLoggerConsole(t *testing.T) {
	var buf bytes.Buffer
	lg, err := telemetry.NewLogger(telemetry.LogOptions{Level: "debug", Format: telemetry.FormatConsole, Out: &buf})
	if err != nil {
		t.Fatal(err)
	}
	lg.Debug("shown", zap.Int("n", 1))
	out := buf.String()
	if !strings.Contains(out, "DEBUG") || !strings.Contains(out, "shown") || !strings.Contains(out, `{"n": 1}`) {
		t.Errorf("console line %q", out)
	}
	if strings.Contains(out, "\x1b[") || strings.HasPrefix(out, "{") {
		t.Errorf("console line to a non-terminal is coloured or JSON: %q", out)
	}
}

func TestLogOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    telemetry.LogOptions
		want string // "" means valid
	}{
		{"zero value", telemetry.LogOptions{}, ""},
		{"every level", telemetry.LogOptions{Level: "warn", Format: "console"}, ""},
		{"bad level", telemetry.LogOptions{Level: "loud"}, `log-level must be debug, info, warn or error, got "loud"`},
		{"zap-only level", telemetry.LogOptions{Level: "fatal"}, `log-level must be`},
		{"bad format", telemetry.LogOptions{Format: "xml"}, `log-format must be json or console`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := telemetry.NewLogger(tc.o); err == nil {
				t.Fatal("NewLogger accepted what Validate refuses")
			}
		})
	}
}

// TestSyncLoggerPipe: a pipe cannot be fsynced, which is not an error.
func TestSyncLoggerPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	lg, err := telemetry.NewLogger(telemetry.LogOptions{Out: w})
	if err != nil {
		t.Fatal(err)
	}
	if err := lg.Sync(); err == nil {
		t.Skip("this system syncs pipes")
	}
	if err := telemetry.SyncLogger(lg); err != nil {
		t.Fatalf("SyncLogger: %v", err)
	}
}
