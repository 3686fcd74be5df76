package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestNegativePartitionRefused: --partition -1 (any negative number) is a
// usage error before any network call; it meant "all partitions" (consume)
// or "the partitioner's choice" (produce) without a word.
func TestNegativePartitionRefused(t *testing.T) {
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "ctx.json")}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"consume -1", []string{"consume", "t", "--partition", "-1"}},
		{"consume -7", []string{"consume", "t", "--partition=-7"}},
		{"produce -1", []string{"produce", "t", "--partition", "-1"}},
		{"consume not a number", []string{"consume", "t", "--partition", "one"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			io, out, errb := testIO(vars)
			// No broker listens on port 1: a network call would fail
			// with exit 1, not the usage error's 2.
			args := append([]string{"--brokers", "127.0.0.1:1", "--insecure"}, tc.args...)
			if code := Run(context.Background(), args, io); code != exitUsage {
				t.Fatalf("exit %d, want %d (usage)\n%s%s", code, exitUsage, out, errb)
			}
			if !strings.Contains(errb.String(), "partition") {
				t.Fatalf("message does not name --partition: %s", errb)
			}
		})
	}
}
