package adminapi

import "time"

// GroupList is the answer of GET PathGroups: every group the caller may
// describe, by name.
type GroupList struct {
	Groups []GroupSummary `json:"groups"`
	// Unreached names the cluster nodes that did not answer; groups they
	// coordinate are missing from the list.
	Unreached []string `json:"unreached,omitempty"`
}

// GroupSummary is one group in a GroupList.
type GroupSummary struct {
	Group string `json:"group"`
	// State is empty (no members), stable or reconciling.
	State         string `json:"state"`
	Members       int32  `json:"members"`
	CoordinatorID int32  `json:"coordinator_id"`
}

// Group is the answer of GET GroupPath: members, assignment, and the
// committed offset, log end and lag of every partition the group has
// committed or been assigned.
type Group struct {
	Group         string `json:"group"`
	State         string `json:"state"`
	GroupEpoch    int64  `json:"group_epoch"`
	Assignor      string `json:"assignor"`
	CoordinatorID int32  `json:"coordinator_id"`
	// Members are in member id order.
	Members []GroupMember `json:"members"`
	// Partitions are in topic and partition order.
	Partitions []GroupPartition `json:"partitions"`
	// Lag is the sum of the partitions' known lags.
	Lag int64 `json:"lag"`
}

// GroupMember is one member of a Group.
type GroupMember struct {
	MemberID   string `json:"member_id"`
	InstanceID string `json:"instance_id,omitempty"`
	ClientID   string `json:"client_id,omitempty"`
	// Identity is the member's certificate identity.
	Identity    string   `json:"identity"`
	MemberEpoch int64    `json:"member_epoch"`
	Topics      []string `json:"topics"`
	// Assigned are the partitions it owns; Pending those it will own once
	// their current owners have given them up.
	Assigned []TopicPartitions `json:"assigned"`
	Pending  []TopicPartitions `json:"pending,omitempty"`
}

// TopicPartitions is a set of partitions of one topic.
type TopicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// GroupPartition is one partition of a Group. Offsets are -1 when
// unknown: no commit, or a leader that did not answer.
type GroupPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// MemberID is the member that owns it; empty when none does.
	MemberID string `json:"member_id,omitempty"`
	// CommittedOffset is the next offset the group will consume.
	CommittedOffset int64      `json:"committed_offset"`
	Metadata        string     `json:"metadata,omitempty"`
	CommitTime      *time.Time `json:"commit_time,omitempty"`
	// LogStartOffset, LogEndOffset and HighWatermark are the partition
	// leader's; a consumer reads up to the high watermark.
	LogStartOffset int64 `json:"log_start_offset"`
	LogEndOffset   int64 `json:"log_end_offset"`
	HighWatermark  int64 `json:"high_watermark"`
	// Lag is HighWatermark minus CommittedOffset: the records the group
	// has yet to consume.
	Lag int64 `json:"lag"`
}

// ResetOffsetsRequest is the body of POST GroupOffsetsPath: where to set
// the group's committed offsets of one topic. Exactly one of ToEarliest,
// ToLatest, ToOffset, ToTime and ShiftBy is given; each is resolved
// against the partitions' leaders and kept within [log start, high
// watermark].
type ResetOffsetsRequest struct {
	Topic string `json:"topic"`
	// Partitions limits the reset; empty means every partition.
	Partitions []int32 `json:"partitions,omitempty"`
	ToEarliest bool    `json:"to_earliest,omitempty"`
	ToLatest   bool    `json:"to_latest,omitempty"`
	ToOffset   *int64  `json:"to_offset,omitempty"`
	// ToTime is the first record with a timestamp at or after it (RFC
	// 3339), or the high watermark when the newest record is older.
	ToTime *time.Time `json:"to_time,omitempty"`
	// ShiftBy moves each committed offset by this many records (negative:
	// back); every partition must have one.
	ShiftBy *int64 `json:"shift_by,omitempty"`
	// DryRun answers the offsets without storing them.
	DryRun bool `json:"dry_run,omitempty"`
	// Force resets a group that has members (they keep their positions
	// until their next rebalance or restart).
	Force bool `json:"force,omitempty"`
}

// ResetOffsetsResult is the answer of POST GroupOffsetsPath.
type ResetOffsetsResult struct {
	Group   string           `json:"group"`
	DryRun  bool             `json:"dry_run"`
	Offsets []PartitionReset `json:"offsets"`
}

// PartitionReset is one partition's reset.
type PartitionReset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Previous is the committed offset before; -1 when there was none.
	Previous int64 `json:"previous"`
	Offset   int64 `json:"offset"`
}
