package logbridge

import (
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestWriterMapsLevels(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	lg := zap.New(core)
	std := StdLogger(lg)
	std.Print("[ERR] memberlist: boom")
	std.Print("[WARN] serf: hmm")
	std.Print("[INFO] serf: fine\n[DEBUG] memberlist: chatter")
	HCLogger("raft", lg).Info("elected", "term", 3)
	want := []zapcore.Level{zapcore.ErrorLevel, zapcore.WarnLevel, zapcore.DebugLevel, zapcore.DebugLevel, zapcore.DebugLevel}
	got := logs.All()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d: %v", len(got), len(want), got)
	}
	for i, e := range got {
		if e.Level != want[i] {
			t.Errorf("entry %d %q: level %v, want %v", i, e.ContextMap()["line"], e.Level, want[i])
		}
	}
}
