package partition

import (
	"errors"
	"strings"
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestRecordTooLargeMessage: the refusal names the setting by the CLI's
// key and says how to raise it, or that no topic takes the record.
func TestRecordTooLargeMessage(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *RecordTooLargeError
		want []string
	}{
		{"within the largest limit", &RecordTooLargeError{Topic: "orders", Index: 0, Size: 2 << 20, Max: 1 << 20},
			[]string{`max.record.bytes of topic "orders" (1048576)`, "strata topic alter orders --config max.record.bytes=2097152", "at most 67108864"}},
		{"above any topic's limit", &RecordTooLargeError{Topic: "orders", Index: 3, Size: stratav1.MaxRecordBytes + 1, Max: 1 << 20},
			[]string{"record 3", "max.record.bytes is at most 67108864", "split the record"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			if strings.Contains(msg, "max_record_bytes") {
				t.Errorf("%q names the proto field, not the CLI's key", msg)
			}
			if !errors.Is(tc.err, ErrRecordTooLarge) {
				t.Error("errors.Is(ErrRecordTooLarge) does not hold")
			}
		})
	}
}
