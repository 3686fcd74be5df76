package config

import (
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// TestDefaultMessageLimitsHoldTheLargestRecord: the broker's default gRPC
// limits hold a record of the largest max.record.bytes a topic may have,
// with its framing (they were 16 MiB against a 64 MiB max.record.bytes:
// such records failed with "grpc: received message larger than max").
// The wire's record limit and the topic setting's are the same number.
func TestDefaultMessageLimitsHoldTheLargestRecord(t *testing.T) {
	if topicconfig.MaxRecordBytesLimit != stratav1.MaxRecordBytes {
		t.Fatalf("topicconfig.MaxRecordBytesLimit %d, stratav1.MaxRecordBytes %d: the gRPC limits follow the latter",
			topicconfig.MaxRecordBytesLimit, stratav1.MaxRecordBytes)
	}
	c := Default()
	want := topicconfig.MaxRecordBytesLimit + stratav1.MessageHeadroomBytes
	if c.MaxRecvMsgBytes < want || c.MaxSendMsgBytes < want {
		t.Fatalf("default max-recv-msg-bytes %d, max-send-msg-bytes %d; want at least %d", c.MaxRecvMsgBytes, c.MaxSendMsgBytes, want)
	}
}
