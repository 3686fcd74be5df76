package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-log/strata/cmd/strata/internal/verify"
)

// TestVerifyProduce runs verify produce against the real (single, not
// clustered) broker: every record gets exactly one line, every ack a
// distinct offset, and each partition's acked offsets are exactly
// 0..n-1 (a single broker answers every produce); the log says the
// producers were idempotent (the default).
func TestVerifyProduce(t *testing.T) {
	mustStrata(t, "", "topic", "create", "cliverify", "--partitions", "3")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	summary := mustStrata(t, "", "verify", "produce", "--topic", "cliverify", "--producers", "3",
		"--records-per-producer", "400", "--out", out, "--run", "e2e")
	if !strings.Contains(summary, "1200 acked, 0 indefinite, 0 failed") {
		t.Fatalf("summary: %s", summary)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := verify.ReadLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.Header.Topic != "cliverify" || l.Header.Run != "e2e" || l.Header.Producers != 3 || !l.Header.Idempotent || len(l.Outcomes) != 1200 {
		t.Fatalf("header %+v, %d outcomes", l.Header, len(l.Outcomes))
	}
	offsets := make(map[int32]map[int64]bool)
	for _, o := range l.Outcomes {
		if o.Kind != verify.KindAck || !strings.HasPrefix(o.Value, "e2e-p") {
			t.Fatalf("outcome %+v", o)
		}
		if offsets[o.Partition] == nil {
			offsets[o.Partition] = make(map[int64]bool)
		}
		if offsets[o.Partition][o.Offset] {
			t.Fatalf("offset %d of partition %d acked twice", o.Offset, o.Partition)
		}
		offsets[o.Partition][o.Offset] = true
	}
	for p := int32(0); p < 3; p++ {
		if n := len(offsets[p]); n != 400 || !offsets[p][0] || !offsets[p][399] {
			t.Errorf("partition %d: %d acked offsets, want 0..399", p, n)
		}
	}
}

// TestVerifyProduceNotIdempotent: --idempotent=false is in the summary
// and the log's header, so that verify check only counts duplicates and
// reorders.
func TestVerifyProduceNotIdempotent(t *testing.T) {
	mustStrata(t, "", "topic", "create", "cliverifyplain", "--partitions", "2")
	out := filepath.Join(t.TempDir(), "out.jsonl")
	summary := mustStrata(t, "", "verify", "produce", "--topic", "cliverifyplain", "--producers", "2",
		"--records-per-producer", "100", "--out", out, "--idempotent=false")
	if !strings.Contains(summary, "idempotent=false") || !strings.Contains(summary, "200 acked, 0 indefinite, 0 failed") {
		t.Fatalf("summary: %s", summary)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := verify.ReadLog(f)
	if err != nil {
		t.Fatal(err)
	}
	if l.Header.Idempotent || len(l.Outcomes) != 200 || l.Outcomes[0].Idempotent {
		t.Fatalf("header %+v, %d outcomes", l.Header, len(l.Outcomes))
	}
}
