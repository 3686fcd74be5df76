package verify

import "fmt"

// FindingKind names one kind of problem (or notable fact) Check reports.
type FindingKind string

const (
	// FindingLost: an acknowledged record is not at its acknowledged
	// offset with its value, on the leader's copy or on an in-sync
	// replica below that replica's high watermark.
	FindingLost FindingKind = "lost"
	// FindingDivergent: two replicas disagree about an offset below the
	// high watermark they must agree to.
	FindingDivergent FindingKind = "divergent"
	// FindingGap: a replica's copy misses offsets inside its
	// [log start, log end) or holds them out of order.
	FindingGap FindingKind = "gap"
	// FindingDuplicate: a value is stored at more than one offset of the
	// leaders' copies. Expected for retried produces of a producer that is
	// not idempotent, never for a value produced once and answered at
	// once; a failure when its producer was idempotent.
	FindingDuplicate FindingKind = "duplicate"
	// FindingReordered: on a partition's leader copy, a producer's value
	// is stored after a value that producer produced later (a higher
	// sequence). Possible when a producer that is not idempotent retries;
	// a failure when it was idempotent.
	FindingReordered FindingKind = "reordered"
	// FindingFailedPresent: a record its producer was told had failed is in
	// the log. Not a loss, but the failure was not definite after all.
	FindingFailedPresent FindingKind = "failed-present"
	// FindingUnknown: a stored value that no log mentions (another run's
	// records, or a log left out of the check).
	FindingUnknown FindingKind = "unknown"
	// FindingUnreadable: a replica could not be read, or a partition has no
	// leader: the check is incomplete.
	FindingUnreadable FindingKind = "unreadable"
)

// Finding is one instance of a FindingKind.
type Finding struct {
	Kind      FindingKind `json:"kind"`
	Partition int32       `json:"partition"`
	// Broker is the replica concerned; -1 when the finding is not about one.
	Broker int32 `json:"broker"`
	// Offset is the first offset concerned; -1 when none.
	Offset int64  `json:"offset"`
	Value  string `json:"value,omitempty"`
	Detail string `json:"detail"`
}

// Counts are the tallies of one partition or of the whole topic.
type Counts struct {
	// Records on the leader's copy.
	Records int `json:"records"`
	// Acked records, and how many of them are lost somewhere.
	Acked int `json:"acked"`
	Lost  int `json:"lost"`
	// AckedExpired acks are below the leader's log start (retention
	// deleted them): not checked.
	AckedExpired int `json:"acked_expired"`
	// Indefinite outcomes, and whether each record turned up.
	Indefinite         int `json:"indefinite"`
	IndefiniteFound    int `json:"indefinite_found"`
	IndefiniteNotFound int `json:"indefinite_not_found"`
	// Failed records, and those found in the log anyway.
	Failed        int `json:"failed"`
	FailedPresent int `json:"failed_present"`
	// Divergent offsets: where some two replicas disagree below their
	// common high watermark.
	Divergent int `json:"divergent"`
	// Gaps: offsets missing (or out of order) inside replicas' copies,
	// summed over replicas.
	Gaps int `json:"gaps"`
	// Values stored more than once, by what their producer was told.
	DupAcked      int `json:"dup_acked"`
	DupIndefinite int `json:"dup_indefinite"`
	DupOther      int `json:"dup_other"`
	// DupIdempotent are the values above whose producer was idempotent:
	// each one is a failure.
	DupIdempotent int `json:"dup_idempotent"`
	// Reordered records: stored after a record of the same producer
	// (run and producer) with a higher sequence, on the same partition's
	// leader copy; a value's first location counts, its repeats are
	// duplicates. ReorderedIdempotent are those of idempotent producers:
	// each one is a failure.
	Reordered           int `json:"reordered"`
	ReorderedIdempotent int `json:"reordered_idempotent"`
	// Unknown stored records: their value is in no log.
	Unknown int `json:"unknown"`
	// Unreadable replicas and leaderless partitions.
	Unreadable int `json:"unreadable"`
}

func (c *Counts) add(o Counts) {
	c.Records += o.Records
	c.Acked += o.Acked
	c.Lost += o.Lost
	c.AckedExpired += o.AckedExpired
	c.Indefinite += o.Indefinite
	c.IndefiniteFound += o.IndefiniteFound
	c.IndefiniteNotFound += o.IndefiniteNotFound
	c.Failed += o.Failed
	c.FailedPresent += o.FailedPresent
	c.Divergent += o.Divergent
	c.Gaps += o.Gaps
	c.DupAcked += o.DupAcked
	c.DupIndefinite += o.DupIndefinite
	c.DupOther += o.DupOther
	c.DupIdempotent += o.DupIdempotent
	c.Reordered += o.Reordered
	c.ReorderedIdempotent += o.ReorderedIdempotent
	c.Unknown += o.Unknown
	c.Unreadable += o.Unreadable
}

// ReplicaSummary is one replica's state as read.
type ReplicaSummary struct {
	Broker      int32  `json:"broker"`
	Role        string `json:"role"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Leader      bool   `json:"leader"`
	InISR       bool   `json:"in_isr"`
	LogStart    int64  `json:"log_start_offset"`
	LogEnd      int64  `json:"log_end_offset"`
	HW          int64  `json:"high_watermark"`
	Records     int    `json:"records"`
	Err         string `json:"error,omitempty"`
}

// PartitionReport is one partition's part of a Report.
type PartitionReport struct {
	Partition int32            `json:"partition"`
	Leader    int32            `json:"leader"`
	ISR       []int32          `json:"isr"`
	Replicas  []ReplicaSummary `json:"replicas"`
	Counts
}

// Report is what Check found.
type Report struct {
	Partitions []PartitionReport `json:"partitions"`
	// Outcomes whose partition the topic does not have are counted in
	// Total only.
	Total Counts `json:"total"`
	// Findings are sorted by partition, kind and offset; at most
	// Input.MaxExamples of each kind per partition.
	Findings []Finding `json:"findings"`
	// FindingsOmitted counts the findings left out by that cap.
	FindingsOmitted int `json:"findings_omitted"`
}

// Problems lists what makes the check fail, one phrase each: lost acks,
// divergence, gaps, duplicates and reorders of idempotent producers'
// records, and an incomplete read. Empty means the history passed.
func (r *Report) Problems() []string {
	var out []string
	t := r.Total
	if t.Lost > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged records lost", t.Lost))
	}
	if t.Divergent > 0 {
		out = append(out, fmt.Sprintf("%d divergent offsets", t.Divergent))
	}
	if t.Gaps > 0 {
		out = append(out, fmt.Sprintf("%d offsets missing inside replicas (gaps)", t.Gaps))
	}
	if t.DupIdempotent > 0 {
		out = append(out, fmt.Sprintf("%d records of idempotent producers stored more than once", t.DupIdempotent))
	}
	if t.ReorderedIdempotent > 0 {
		out = append(out, fmt.Sprintf("%d records of idempotent producers stored out of their producer's order", t.ReorderedIdempotent))
	}
	if t.Unreadable > 0 {
		out = append(out, fmt.Sprintf("%d replicas or partitions could not be read (check incomplete)", t.Unreadable))
	}
	return out
}
