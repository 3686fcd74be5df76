package acl

// Actions.
const (
	ActionProduce   = "produce"
	ActionConsume   = "consume"
	ActionDescribe  = "describe"
	ActionCreate    = "create"
	ActionDelete    = "delete"
	ActionAlter     = "alter"
	ActionReplicate = "replicate"
	ActionAdmin     = "admin"
	// ActionDescribeACL on cluster reads the ACL policy: its rules name
	// every identity and what it may do, more than describe (metadata)
	// should reveal. Kafka's DescribeAcls.
	ActionDescribeACL = "describe_acl"
	// ActionAll in a rule means every action. It is not a request action.
	ActionAll = "*"
)

// ObjectCluster is the object of cluster-wide and internal operations.
const ObjectCluster = "cluster"

// GroupPrefix starts the object of a consumer group: "group:NAME" (a topic
// name cannot hold ":"). Group rules name groups the same way, with
// patterns: "group:orders-*".
const GroupPrefix = "group:"

// GroupObject is the ACL object of consumer group name.
func GroupObject(name string) string { return GroupPrefix + name }

// Effects.
const (
	EffectAllow = "allow"
	EffectDeny  = "deny"
)

// Actions returns every request action.
func Actions() []string {
	return []string{ActionProduce, ActionConsume, ActionDescribe, ActionCreate,
		ActionDelete, ActionAlter, ActionReplicate, ActionAdmin, ActionDescribeACL}
}

func isAction(a string) bool {
	for _, v := range Actions() {
		if a == v {
			return true
		}
	}
	return false
}
