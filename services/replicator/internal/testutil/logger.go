package testutil

import (
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Logger is a zap logger writing to t.Log at level and above, that goes
// quiet once the test has finished. Serf and memberlist keep background
// goroutines that may still log for a moment after Shutdown returns; with
// zaptest's logger such a line panics the whole test binary ("Log in
// goroutine after Test... has completed").
func Logger(tb testing.TB, level zapcore.Level) *zap.Logger {
	w := &testWriter{tb: tb}
	// Registered first, so it runs last: after the nodes' own cleanups.
	tb.Cleanup(w.stop)
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), level))
}

type testWriter struct {
	tb   testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.tb.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
