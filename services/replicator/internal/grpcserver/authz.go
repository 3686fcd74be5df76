package grpcserver

import (
	"github.com/strata-log/strata/pkg/acl"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// MethodTable maps every method the replicator serves to the action and
// object the caller's identity needs (pkg/acl); a method missing from it is
// denied. Topics needs the same permission as on a broker (create, delete,
// alter, describe on the named topic; list on cluster); Metadata needs
// describe on cluster; Controller (ISR changes, a leader's resignation)
// needs replicate on cluster, which only broker and replicator identities
// hold. A broker forwarding its clients' topic calls, and a replicator
// forwarding to the controller, pass under their own identities, which the
// default policy allows for exactly these actions.
func MethodTable() acl.MethodTable {
	return acl.Merge(acl.HealthAndReflection(), acl.MethodTable{
		stratav1.Metadata_Metadata_FullMethodName:              {Action: acl.ActionDescribe},
		stratav1.Controller_AlterPartition_FullMethodName:      {Action: acl.ActionReplicate},
		stratav1.Controller_ResignLeadership_FullMethodName:    {Action: acl.ActionReplicate},
		stratav1.Controller_AllocateProducerIds_FullMethodName: {Action: acl.ActionReplicate},
		stratav1.Topics_CreateTopic_FullMethodName: {
			Action: acl.ActionCreate, Object: acl.TopicOf((*stratav1.CreateTopicRequest).GetName),
		},
		stratav1.Topics_DeleteTopic_FullMethodName: {
			Action: acl.ActionDelete, Object: acl.TopicOf((*stratav1.DeleteTopicRequest).GetName),
		},
		stratav1.Topics_DescribeTopic_FullMethodName: {
			Action: acl.ActionDescribe, Object: acl.TopicOf((*stratav1.DescribeTopicRequest).GetName),
		},
		stratav1.Topics_ListTopics_FullMethodName: {Action: acl.ActionDescribe},
		stratav1.Topics_AlterTopicConfig_FullMethodName: {
			Action: acl.ActionAlter, Object: acl.TopicOf((*stratav1.AlterTopicConfigRequest).GetName),
		},
	})
}
