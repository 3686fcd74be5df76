// Package verify decides whether a replicated topic kept what its
// producers were told: it compares a history of produce outcomes (the
// JSONL log that `strata verify produce` writes) with every replica's copy
// of every partition, and reports acknowledged records lost, replicas that
// diverge below their high watermarks, duplicates, gaps, and what became of
// produces whose outcome the producer never learned. It does no I/O besides
// encoding and decoding the log, so every finding can be proved by a table
// of hand-made replicas.
package verify

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// The log is JSON Lines: a header line, then one line per produced record
// once its fate is known:
//
//	{"kind":"run","run":"a1b2c3","topic":"t","producers":4,"idempotent":true,"started_ms":...}
//	{"kind":"ack","value":"a1b2c3-p0-17","producer":0,"seq":17,"partition":2,"offset":5,"produced_ms":...,"ts_ms":...}
//	{"kind":"indefinite","value":"a1b2c3-p1-9","producer":1,"seq":9,"partition":0,"offset":-1,"error":"...","produced_ms":...,"ts_ms":...}
//	{"kind":"failed","value":"a1b2c3-p1-10","producer":1,"seq":10,"partition":-1,"offset":-1,"error":"...","produced_ms":...,"ts_ms":...}
//
// A line is written only when complete, so a log cut short by a crash ends
// in at most one partial line, which ReadLog skips. A header without
// "idempotent" (a log from before the field) reads as not idempotent:
// its duplicates and reorders are counted, not failed.

// Kind says what a producer learned about one record.
type Kind string

const (
	// KindAck: the partition leader acknowledged the record at an offset.
	KindAck Kind = "ack"
	// KindIndefinite: the record was sent, and then the answer was lost,
	// timed out or never came. It may or may not be in the log.
	KindIndefinite Kind = "indefinite"
	// KindFailed: the record was refused or never sent; it should not be
	// in the log.
	KindFailed Kind = "failed"
)

const kindRun = "run"

// Header is the first line of a log.
type Header struct {
	Run       string `json:"run"`
	Topic     string `json:"topic"`
	Producers int    `json:"producers"`
	// Idempotent: the producers were idempotent (producer ids and
	// sequences), so no value may be stored twice and each producer's
	// values must be stored in the order produced on each partition.
	Idempotent bool  `json:"idempotent"`
	StartedMs  int64 `json:"started_ms"`
}

// Outcome is one produced record's fate as its producer saw it.
type Outcome struct {
	Kind Kind `json:"kind"`
	// Value is unique across every log checked together.
	Value    string `json:"value"`
	Producer int    `json:"producer"`
	Seq      int64  `json:"seq"`
	// Partition is where the record was sent; -1 when it never was.
	Partition int32 `json:"partition"`
	// Offset is the acknowledged offset; -1 unless Kind is KindAck.
	Offset int64  `json:"offset"`
	Error  string `json:"error,omitempty"`
	// ProducedMs is when the producer accepted the record and TimeMs when
	// its outcome was known (Unix milliseconds): how long each fault held
	// records up.
	ProducedMs int64 `json:"produced_ms"`
	TimeMs     int64 `json:"ts_ms"`

	// Run and Idempotent are the log header's (ReadLog sets them; they are
	// not in the line): a producer's values are ordered per (Run,
	// Producer), and Idempotent says whether a duplicate or a reorder of
	// them is a failure.
	Run        string `json:"-"`
	Idempotent bool   `json:"-"`
}

// Log is one decoded log file.
type Log struct {
	Header   Header
	Outcomes []Outcome
	// Truncated is set when the last line was incomplete and skipped.
	Truncated bool
}

// Errors of ReadLog.
var (
	ErrNoHeader  = errors.New("verify: log does not start with a run header")
	ErrBadLine   = errors.New("verify: malformed log line")
	ErrDupValue  = errors.New("verify: a value appears twice in the logs")
	ErrWrongKind = errors.New("verify: unknown outcome kind")
)

// EncodeHeader writes the header line.
func EncodeHeader(w io.Writer, h Header) error {
	return encodeLine(w, struct {
		Kind string `json:"kind"`
		Header
	}{kindRun, h})
}

// EncodeOutcome writes one outcome line.
func EncodeOutcome(w io.Writer, o Outcome) error { return encodeLine(w, o) }

func encodeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("verify: encode log line: %w", err)
	}
	if _, err := w.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("verify: write log line: %w", err)
	}
	return nil
}

// ReadLog decodes a log; every outcome carries the header's Run and
// Idempotent. A final line without its newline is the trace of
// a writer that died mid-line: it is skipped and Truncated is set. Any
// other malformed line is an error naming its line number.
func ReadLog(r io.Reader) (*Log, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	l := &Log{}
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if n == 1 {
				return nil, ErrNoHeader
			}
			l.Truncated = len(line) > 0
			return l, nil
		}
		if err != nil {
			return nil, fmt.Errorf("verify: read log: %w", err)
		}
		var k struct {
			Kind string `json:"kind"`
		}
		if err := json.Unmarshal(line, &k); err != nil {
			return nil, fmt.Errorf("%w %d: %w", ErrBadLine, n, err)
		}
		if n == 1 {
			if k.Kind != kindRun {
				return nil, ErrNoHeader
			}
			if err := json.Unmarshal(line, &l.Header); err != nil {
				return nil, fmt.Errorf("%w %d: %w", ErrBadLine, n, err)
			}
			continue
		}
		var o Outcome
		if err := json.Unmarshal(line, &o); err != nil {
			return nil, fmt.Errorf("%w %d: %w", ErrBadLine, n, err)
		}
		switch o.Kind {
		case KindAck, KindIndefinite, KindFailed:
		default:
			return nil, fmt.Errorf("%w %d: %w %q", ErrBadLine, n, ErrWrongKind, o.Kind)
		}
		o.Run, o.Idempotent = l.Header.Run, l.Header.Idempotent
		l.Outcomes = append(l.Outcomes, o)
	}
}
