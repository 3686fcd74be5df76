package telemetry

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Log formats.
const (
	// FormatJSON is one JSON object a line, times in ISO 8601.
	FormatJSON = "json"
	// FormatConsole is zap's development text, coloured on a terminal.
	FormatConsole = "console"
)

// LogOptions configure NewLogger. The zero value logs info and above to
// stderr, as console text when stderr is a terminal and JSON otherwise
// (containers, files, pipes).
type LogOptions struct {
	// Level is the lowest level logged: debug, info, warn or error; empty
	// means info.
	Level string
	// Format is FormatJSON, FormatConsole or empty: console on a
	// terminal, JSON otherwise.
	Format string
	// Out receives the log lines and zap's own errors; nil means
	// os.Stderr.
	Out io.Writer
}

// Validate says exactly what is wrong, naming the flags the services
// give these options (--log-level, --log-format).
func (o LogOptions) Validate() error {
	var errs []error
	if _, err := o.level(); err != nil {
		errs = append(errs, err)
	}
	switch o.Format {
	case "", FormatJSON, FormatConsole:
	default:
		errs = append(errs, fmt.Errorf("log-format must be %s or %s (or empty: %s on a terminal, else %s), got %q",
			FormatJSON, FormatConsole, FormatConsole, FormatJSON, o.Format))
	}
	return errors.Join(errs...)
}

func (o LogOptions) level() (zapcore.Level, error) {
	switch o.Level {
	case "":
		return zapcore.InfoLevel, nil
	case "debug", "info", "warn", "error":
		return zapcore.ParseLevel(o.Level)
	}
	return 0, fmt.Errorf("log-level must be debug, info, warn or error, got %q", o.Level)
}

// NewLogger builds a service's logger. JSON logs are sampled as zap's
// production configuration does (past 100 lines a second with one
// message, every 100th); both formats carry the caller, and a stack trace
// from error up.
func NewLogger(o LogOptions) (*zap.Logger, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	lvl, _ := o.level() // checked by Validate
	out := o.Out
	if out == nil {
		out = os.Stderr
	}
	terminal := isTerminal(out)
	format := o.Format
	if format == "" {
		format = FormatJSON
		if terminal {
			format = FormatConsole
		}
	}
	ws := zapcore.Lock(zapcore.AddSync(out))
	var core zapcore.Core
	if format == FormatConsole {
		enc := zap.NewDevelopmentEncoderConfig()
		enc.EncodeTime = zapcore.ISO8601TimeEncoder
		if terminal {
			enc.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
		core = zapcore.NewCore(zapcore.NewConsoleEncoder(enc), ws, lvl)
	} else {
		enc := zap.NewProductionEncoderConfig()
		enc.EncodeTime = zapcore.ISO8601TimeEncoder
		core = zapcore.NewSamplerWithOptions(zapcore.NewCore(zapcore.NewJSONEncoder(enc), ws, lvl), time.Second, 100, 100)
	}
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel), zap.ErrorOutput(ws)), nil
}

// SyncLogger flushes lg; an output that cannot be synced (a terminal or a
// pipe) is not an error.
func SyncLogger(lg *zap.Logger) error {
	err := lg.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EBADF) {
		return nil
	}
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
