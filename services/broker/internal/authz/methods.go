// Package authz wires pkg/acl into the broker: the table of what every gRPC
// method the broker serves means to the policy, and the Authorizer and
// interceptors built from the configuration.
package authz

import (
	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// MethodTable maps every strata.v1 method to the action it needs and the
// object it acts on, plus health checks and reflection for any
// authenticated caller. A method missing from it is denied, so a new RPC
// must be added here before anyone can call it.
//
// Data plane: Produce, ProduceStream, ProduceBulk and InitProducer need
// produce on the request's topic, Consume and ConsumeStream consume on it (streams are
// checked on every message). Topics: CreateTopic create, DeleteTopic
// delete, AlterTopicConfig alter and DescribeTopic describe on the named
// topic; ListTopics and Metadata describe on cluster. The replica services
// (ReplicaFetch, LocalReplica, ReplicaTools; cluster mode only) need
// replicate on cluster. The Groups service's handlers check consume,
// describe, delete or alter on the group ("group:NAME") and consume on its
// topics themselves; FindCoordinator needs only a verified certificate.
func MethodTable() acl.MethodTable {
	produce := acl.MethodRule{Action: acl.ActionProduce, Object: acl.TopicOf((*stratav1.ProduceRequest).GetTopic)}
	onCluster := func(action string) acl.MethodRule { return acl.MethodRule{Action: action} }
	replicate := onCluster(acl.ActionReplicate)
	inHandler := acl.MethodRule{AnyAuthenticated: true}
	return acl.Merge(acl.HealthAndReflection(), acl.MethodTable{
		stratav1.Log_Produce_FullMethodName:       produce,
		stratav1.Log_ProduceStream_FullMethodName: produce,
		stratav1.Log_ProduceBulk_FullMethodName:   produce,
		// A producer id is asked for with a topic the caller may produce to.
		stratav1.Log_InitProducer_FullMethodName: {
			Action: acl.ActionProduce, Object: acl.TopicOf((*stratav1.InitProducerRequest).GetTopic),
		},
		stratav1.Log_Consume_FullMethodName: {
			Action: acl.ActionConsume, Object: acl.TopicOf((*stratav1.ConsumeRequest).GetTopic),
		},
		stratav1.Log_ConsumeStream_FullMethodName: {
			Action: acl.ActionConsume, Object: acl.TopicOf((*stratav1.ConsumeStreamRequest).GetTopic),
		},

		stratav1.Metadata_Metadata_FullMethodName: onCluster(acl.ActionDescribe),

		stratav1.Topics_CreateTopic_FullMethodName: {
			Action: acl.ActionCreate, Object: acl.TopicOf((*stratav1.CreateTopicRequest).GetName),
		},
		stratav1.Topics_DeleteTopic_FullMethodName: {
			Action: acl.ActionDelete, Object: acl.TopicOf((*stratav1.DeleteTopicRequest).GetName),
		},
		stratav1.Topics_DescribeTopic_FullMethodName: {
			Action: acl.ActionDescribe, Object: acl.TopicOf((*stratav1.DescribeTopicRequest).GetName),
		},
		stratav1.Topics_ListTopics_FullMethodName: onCluster(acl.ActionDescribe),
		stratav1.Topics_AlterTopicConfig_FullMethodName: {
			Action: acl.ActionAlter, Object: acl.TopicOf((*stratav1.AlterTopicConfigRequest).GetName),
		},

		// Groups: a call names several objects (its topics and its
		// group), checked in the handlers (internal/group).
		stratav1.Groups_FindCoordinator_FullMethodName: inHandler,
		stratav1.Groups_Session_FullMethodName:         inHandler,
		stratav1.Groups_CommitOffsets_FullMethodName:   inHandler,
		stratav1.Groups_FetchOffsets_FullMethodName:    inHandler,
		stratav1.Groups_ListGroups_FullMethodName:      inHandler,
		stratav1.Groups_DescribeGroup_FullMethodName:   inHandler,
		stratav1.Groups_DeleteGroup_FullMethodName:     inHandler,
		stratav1.Groups_ResetOffsets_FullMethodName:    inHandler,

		// Replication (cluster mode only): replicate on cluster, which
		// only broker and replicator identities hold. The handlers check
		// the caller further: a Fetch comes only from the replicator of
		// the replica it names, and LocalReplica answers only this node's
		// own replicator (ApplyPartitionState above all).
		stratav1.ReplicaFetch_Fetch_FullMethodName:                replicate,
		stratav1.ReplicaFetch_OffsetForLeaderEpoch_FullMethodName: replicate,

		stratav1.LocalReplica_ApplyPartitionState_FullMethodName:  replicate,
		stratav1.LocalReplica_Append_FullMethodName:               replicate,
		stratav1.LocalReplica_AppendStream_FullMethodName:         replicate, // checked once, when the stream opens
		stratav1.LocalReplica_Truncate_FullMethodName:             replicate,
		stratav1.LocalReplica_ReleaseUnknownTopics_FullMethodName: replicate,
		stratav1.LocalReplica_StorageId_FullMethodName:            replicate,

		stratav1.ReplicaTools_ReadReplica_FullMethodName:     replicate,
		stratav1.ReplicaTools_PartitionStatus_FullMethodName: replicate,
	})
}
