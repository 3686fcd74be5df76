package authz

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// notServed are the strata.v1 services a broker does not serve.
var notServed = map[protoreflect.FullName]bool{
	"strata.v1.Controller": true, // the replicators'
}

// TestMethodTableCoversEveryMethod fails when a strata.v1 service or RPC
// is added without an entry (it would be denied to everyone), or when an
// entry names a method that no longer exists. The services come from the
// generated descriptors, so a new service cannot be forgotten here either.
func TestMethodTableCoversEveryMethod(t *testing.T) {
	table := MethodTable()
	declared := map[string]bool{}
	services := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("strata.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			if notServed[sd.FullName()] {
				continue
			}
			services++
			for j := range sd.Methods().Len() {
				full := "/" + string(sd.FullName()) + "/" + string(sd.Methods().Get(j).Name())
				declared[full] = true
				if _, ok := table[full]; !ok {
					t.Errorf("%s is missing from the method table", full)
				}
			}
		}
		return true
	})
	for _, m := range []string{stratav1.Log_Produce_FullMethodName, stratav1.ReplicaFetch_Fetch_FullMethodName,
		stratav1.LocalReplica_ApplyPartitionState_FullMethodName, stratav1.ReplicaTools_ReadReplica_FullMethodName} {
		if !declared[m] {
			t.Errorf("%s not among the %d services found in the descriptors", m, services)
		}
	}
	for full := range table {
		if strings.HasPrefix(full, "/strata.v1.") && !declared[full] {
			t.Errorf("%s is in the method table but no served service declares it", full)
		}
	}
	if _, ok := table["/grpc.health.v1.Health/Check"]; !ok {
		t.Error("health check is missing from the method table")
	}
}

func TestMethodTableRules(t *testing.T) {
	table := MethodTable()
	tests := []struct {
		method     string
		req        any
		wantAction string
		wantObject string // acl.ObjectCluster for a rule without Object
	}{
		{stratav1.Log_Produce_FullMethodName, &stratav1.ProduceRequest{Topic: "t1"}, acl.ActionProduce, "t1"},
		{stratav1.Log_ProduceStream_FullMethodName, &stratav1.ProduceRequest{Topic: "t2"}, acl.ActionProduce, "t2"},
		{stratav1.Log_ProduceBulk_FullMethodName, &stratav1.ProduceRequest{Topic: "t3"}, acl.ActionProduce, "t3"},
		{stratav1.Log_Consume_FullMethodName, &stratav1.ConsumeRequest{Topic: "t4"}, acl.ActionConsume, "t4"},
		{stratav1.Log_ConsumeStream_FullMethodName, &stratav1.ConsumeStreamRequest{Topic: "t5"}, acl.ActionConsume, "t5"},
		{stratav1.Metadata_Metadata_FullMethodName, &stratav1.MetadataRequest{}, acl.ActionDescribe, acl.ObjectCluster},
		{stratav1.Topics_CreateTopic_FullMethodName, &stratav1.CreateTopicRequest{Name: "t6"}, acl.ActionCreate, "t6"},
		{stratav1.Topics_DeleteTopic_FullMethodName, &stratav1.DeleteTopicRequest{Name: "t7"}, acl.ActionDelete, "t7"},
		{stratav1.Topics_DescribeTopic_FullMethodName, &stratav1.DescribeTopicRequest{Name: "t8"}, acl.ActionDescribe, "t8"},
		{stratav1.Topics_ListTopics_FullMethodName, &stratav1.ListTopicsRequest{}, acl.ActionDescribe, acl.ObjectCluster},
		{stratav1.Topics_AlterTopicConfig_FullMethodName, &stratav1.AlterTopicConfigRequest{Name: "t9"}, acl.ActionAlter, "t9"},
		{stratav1.ReplicaFetch_Fetch_FullMethodName, &stratav1.FetchRequest{Topic: "t10"}, acl.ActionReplicate, acl.ObjectCluster},
		{stratav1.LocalReplica_Truncate_FullMethodName, &stratav1.TruncateRequest{Topic: "t11"}, acl.ActionReplicate, acl.ObjectCluster},
		{stratav1.LocalReplica_ApplyPartitionState_FullMethodName, &stratav1.ApplyPartitionStateRequest{Topic: "t12"}, acl.ActionReplicate, acl.ObjectCluster},
		{stratav1.ReplicaTools_ReadReplica_FullMethodName, &stratav1.ReadReplicaRequest{Topic: "t13"}, acl.ActionReplicate, acl.ObjectCluster},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			r, ok := table[tt.method]
			if !ok {
				t.Fatal("missing")
			}
			if r.AnyAuthenticated || r.Action != tt.wantAction {
				t.Fatalf("rule = %+v, want action %s", r, tt.wantAction)
			}
			obj := acl.ObjectCluster
			if r.Object != nil {
				var err error
				if obj, err = r.Object(tt.req); err != nil {
					t.Fatal(err)
				}
			}
			if obj != tt.wantObject {
				t.Fatalf("object = %q, want %q", obj, tt.wantObject)
			}
		})
	}
}
