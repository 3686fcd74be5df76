package grpcserver

import (
	"testing"

	"google.golang.org/grpc"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestMethodTableCoversEveryMethod fails when an RPC is added to a service
// the replicator serves without an entry (it would be denied to everyone).
func TestMethodTableCoversEveryMethod(t *testing.T) {
	table := MethodTable()
	for _, sd := range []grpc.ServiceDesc{stratav1.Topics_ServiceDesc, stratav1.Metadata_ServiceDesc, stratav1.Controller_ServiceDesc} {
		for _, m := range sd.Methods {
			if full := "/" + sd.ServiceName + "/" + m.MethodName; table[full].Action == "" {
				t.Errorf("%s is missing from the method table", full)
			}
		}
		if len(sd.Streams) != 0 {
			t.Errorf("%s has streams: add them here and to the table", sd.ServiceName)
		}
	}
}
