package verify

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestLogRoundTrip(t *testing.T) {
	h := Header{Run: "r1", Topic: "t", Producers: 2, Idempotent: true, StartedMs: 1700000000000}
	outs := []Outcome{
		{Kind: KindAck, Value: "r1-p0-0", Producer: 0, Seq: 0, Partition: 0, Offset: 0, ProducedMs: 1, TimeMs: 1},
		{Kind: KindIndefinite, Value: "r1-p1-0", Producer: 1, Seq: 0, Partition: 2, Offset: -1, Error: "deadline", TimeMs: 2},
		{Kind: KindFailed, Value: "r1-p1-1", Producer: 1, Seq: 1, Partition: -1, Offset: -1, Error: "denied", TimeMs: 3},
	}
	var buf bytes.Buffer
	if err := EncodeHeader(&buf, h); err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		if err := EncodeOutcome(&buf, o); err != nil {
			t.Fatal(err)
		}
	}
	full := buf.String()
	l, err := ReadLog(strings.NewReader(full))
	if err != nil {
		t.Fatal(err)
	}
	// Each outcome read carries its header's run and idempotence.
	for i := range outs {
		outs[i].Run, outs[i].Idempotent = h.Run, h.Idempotent
	}
	if l.Header != h || !reflect.DeepEqual(l.Outcomes, outs) || l.Truncated {
		t.Fatalf("read back %+v", l)
	}

	// A writer killed mid-line leaves a partial last line: skipped.
	l, err = ReadLog(strings.NewReader(full + `{"kind":"ack","val`))
	if err != nil {
		t.Fatal(err)
	}
	if !l.Truncated || len(l.Outcomes) != len(outs) {
		t.Errorf("truncated log: Truncated=%v, %d outcomes", l.Truncated, len(l.Outcomes))
	}
}

func TestReadLogWithoutIdempotent(t *testing.T) {
	// A log from before the field: not idempotent.
	l, err := ReadLog(strings.NewReader(`{"kind":"run","run":"r","topic":"t","producers":1,"started_ms":1}` + "\n" +
		`{"kind":"ack","value":"r-p0-0","producer":0,"seq":0,"partition":0,"offset":0}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Header.Idempotent || len(l.Outcomes) != 1 || l.Outcomes[0].Idempotent || l.Outcomes[0].Run != "r" {
		t.Fatalf("read %+v", l)
	}
}

func TestReadLogErrors(t *testing.T) {
	header := `{"kind":"run","run":"r","topic":"t","producers":1,"started_ms":1}` + "\n"
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", "", ErrNoHeader},
		{"partial header", `{"kind":"run"`, ErrNoHeader},
		{"no header", `{"kind":"ack","value":"a","partition":0,"offset":0}` + "\n", ErrNoHeader},
		{"garbage line", header + "not json\n", ErrBadLine},
		{"unknown kind", header + `{"kind":"maybe","value":"a"}` + "\n", ErrWrongKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadLog(strings.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadLog = %v, want %v", err, tt.want)
			}
		})
	}
}
