// Package logbridge routes the log output of hashicorp libraries (Serf and
// memberlist's *log.Logger, Raft's hclog) into zap.
package logbridge

import (
	"bytes"
	"io"
	"log"
	"strings"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Writer turns each written line into one zap entry. The level comes from a
// bracketed tag in the line ([ERR]/[ERROR], [WARN]); everything else is
// logged at debug level.
type Writer struct{ lg *zap.Logger }

// NewWriter returns a Writer logging through lg.
func NewWriter(lg *zap.Logger) *Writer { return &Writer{lg: lg} }

// Write logs p, one entry per line. It never fails.
func (w *Writer) Write(p []byte) (int, error) {
	for line := range bytes.SplitSeq(bytes.TrimRight(p, "\n"), []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		lvl := zapcore.DebugLevel
		switch {
		case strings.Contains(s, "[ERR]"), strings.Contains(s, "[ERROR]"):
			lvl = zapcore.ErrorLevel
		case strings.Contains(s, "[WARN]"):
			lvl = zapcore.WarnLevel
		}
		if ce := w.lg.Check(lvl, "library log"); ce != nil {
			ce.Write(zap.String("line", s))
		}
	}
	return len(p), nil
}

// StdLogger returns a *log.Logger writing into lg.
func StdLogger(lg *zap.Logger) *log.Logger { return log.New(NewWriter(lg), "", 0) }

// HCLogger returns an hclog.Logger writing into lg. Raft's info chatter
// lands at debug level; warnings and errors keep theirs.
func HCLogger(name string, lg *zap.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:            name,
		Level:           hclog.Info,
		Output:          io.Writer(NewWriter(lg)),
		DisableTime:     true,
		IncludeLocation: false,
	})
}
