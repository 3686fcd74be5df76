package verify

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
)

// Record is one record of a replica's copy.
type Record struct {
	Offset int64
	Value  string
}

// Replica is one broker's copy of a partition.
type Replica struct {
	Broker int32
	// Role and LeaderEpoch are what the broker says it is; shown, not
	// relied on.
	Role        string
	LeaderEpoch int32
	LogStart    int64
	LogEnd      int64
	// HW is the broker's own high watermark (a follower's is the leader's
	// as last heard). Every record below it is committed.
	HW int64
	// Records are the copy's records in the order read, normally exactly
	// the offsets [LogStart, LogEnd).
	Records []Record
	// Err is why the copy could not be read; the fields above are then
	// unset and the check is incomplete.
	Err string
}

// Partition is one partition's metadata and every replica's copy.
//
// The leader's copy must be read before the others. A follower in the ISR
// must hold every offset below the leader's high watermark, and it can only
// gain records while it stays in the ISR; read the other way round, the
// leader's high watermark could pass a follower's log end between the two
// reads and look like divergence.
type Partition struct {
	ID int32
	// Leader is the broker that leads the partition; -1 when none.
	Leader   int32
	ISR      []int32
	Replicas []Replica
}

// Input is what Check compares.
type Input struct {
	// Outcomes of every producer of the topic; values are unique.
	Outcomes   []Outcome
	Partitions []Partition
	// MaxExamples bounds the findings kept per partition and kind; 0
	// means 20, a negative value keeps all. Counts are always exact.
	MaxExamples int
}

const defaultMaxExamples = 20

// location is where a value is stored on a partition's reference copy.
type location struct {
	partition int32
	offset    int64
}

func (l location) String() string { return fmt.Sprintf("%d@%d", l.partition, l.offset) }

// copyIndex answers "what is at offset o" for one replica's copy.
type copyIndex struct {
	r      *Replica
	sorted bool             // strictly ascending offsets: binary search
	byOff  map[int64]string // otherwise
}

func newCopyIndex(r *Replica) *copyIndex {
	ix := &copyIndex{r: r, sorted: true}
	for i := 1; i < len(r.Records); i++ {
		if r.Records[i].Offset <= r.Records[i-1].Offset {
			ix.sorted = false
			break
		}
	}
	if !ix.sorted {
		// The first record at an offset wins; the repeat is a gap finding.
		ix.byOff = make(map[int64]string, len(r.Records))
		for _, rec := range r.Records {
			if _, ok := ix.byOff[rec.Offset]; !ok {
				ix.byOff[rec.Offset] = rec.Value
			}
		}
	}
	return ix
}

func (ix *copyIndex) at(off int64) (string, bool) {
	if !ix.sorted {
		v, ok := ix.byOff[off]
		return v, ok
	}
	recs := ix.r.Records
	i := sort.Search(len(recs), func(i int) bool { return recs[i].Offset >= off })
	if i < len(recs) && recs[i].Offset == off {
		return recs[i].Value, true
	}
	return "", false
}

// checker is the state of one Check call.
type checker struct {
	max      int
	findings []Finding
	omitted  int
	kept     map[findingKey]int
}

type findingKey struct {
	partition int32
	kind      FindingKind
}

func (c *checker) add(f Finding) {
	k := findingKey{f.Partition, f.Kind}
	if c.max >= 0 && c.kept[k] >= c.max {
		c.omitted++
		return
	}
	c.kept[k]++
	c.findings = append(c.findings, f)
}

// partState is one partition while it is checked.
type partState struct {
	p      *Partition
	rep    *PartitionReport
	leader *copyIndex // the leader's copy when readable
	ref    *copyIndex // the copy values are looked up in: the leader's, else the longest in-sync one
	isr    []*copyIndex
	all    []*copyIndex
}

// Check compares the outcomes with the replicas' copies. It fails only on
// inconsistent input (a value twice in the outcomes).
func Check(in Input) (*Report, error) {
	outcomes := make(map[string]*Outcome, len(in.Outcomes))
	for i := range in.Outcomes {
		o := &in.Outcomes[i]
		if _, dup := outcomes[o.Value]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDupValue, o.Value)
		}
		outcomes[o.Value] = o
	}
	c := &checker{max: in.MaxExamples, kept: make(map[findingKey]int)}
	if c.max == 0 {
		c.max = defaultMaxExamples
	}
	rep := &Report{Partitions: make([]PartitionReport, len(in.Partitions))}
	parts := make(map[int32]*partState, len(in.Partitions))
	order := make([]*partState, len(in.Partitions))
	for i := range in.Partitions {
		ps := c.preparePartition(&in.Partitions[i], &rep.Partitions[i])
		parts[ps.p.ID] = ps
		order[i] = ps
	}
	stored := make(map[string][]location)
	for _, ps := range order {
		c.checkGaps(ps)
		c.checkDivergence(ps)
		if ps.ref != nil {
			for _, rec := range ps.ref.r.Records {
				stored[rec.Value] = append(stored[rec.Value], location{ps.p.ID, rec.Offset})
			}
			ps.rep.Records = len(ps.ref.r.Records)
		}
	}

	var orphan Counts // outcomes for partitions the topic lacks
	counts := func(p int32) *Counts {
		if ps := parts[p]; ps != nil {
			return &ps.rep.Counts
		}
		return &orphan
	}
	for i := range in.Outcomes {
		o := &in.Outcomes[i]
		found := stored[o.Value]
		switch o.Kind {
		case KindAck:
			cn := counts(o.Partition)
			cn.Acked++
			ps := parts[o.Partition]
			if ps == nil {
				cn.Lost++
				c.add(Finding{Kind: FindingLost, Partition: o.Partition, Broker: -1, Offset: o.Offset, Value: o.Value,
					Detail: "acknowledged on a partition the topic does not have"})
				continue
			}
			c.checkAck(ps, o, found)
		case KindIndefinite:
			cn := counts(o.Partition)
			cn.Indefinite++
			if len(found) > 0 {
				cn.IndefiniteFound++
			} else {
				cn.IndefiniteNotFound++
			}
		case KindFailed:
			cn := counts(o.Partition)
			cn.Failed++
			if len(found) > 0 {
				cn.FailedPresent++
				c.add(Finding{Kind: FindingFailedPresent, Partition: found[0].partition, Broker: -1, Offset: found[0].offset,
					Value: o.Value, Detail: fmt.Sprintf("producer was told it failed (%s)", o.Error)})
			}
		}
	}
	c.checkStoredValues(order, stored, outcomes)
	c.checkOrder(order, stored, outcomes)

	for i := range rep.Partitions {
		rep.Total.add(rep.Partitions[i].Counts)
	}
	rep.Total.add(orphan)
	slices.SortStableFunc(c.findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Kind, b.Kind),
			cmp.Compare(a.Offset, b.Offset), cmp.Compare(a.Broker, b.Broker))
	})
	rep.Findings, rep.FindingsOmitted = c.findings, c.omitted
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	return rep, nil
}

// preparePartition summarizes the replicas and picks the copies to check
// against.
func (c *checker) preparePartition(p *Partition, pr *PartitionReport) *partState {
	ps := &partState{p: p, rep: pr}
	pr.Partition, pr.Leader, pr.ISR = p.ID, p.Leader, p.ISR
	if pr.ISR == nil {
		pr.ISR = []int32{}
	}
	if p.Leader < 0 {
		pr.Unreadable++
		c.add(Finding{Kind: FindingUnreadable, Partition: p.ID, Broker: -1, Offset: -1, Detail: "partition has no leader"})
	}
	for i := range p.Replicas {
		r := &p.Replicas[i]
		inISR := slices.Contains(p.ISR, r.Broker)
		pr.Replicas = append(pr.Replicas, ReplicaSummary{Broker: r.Broker, Role: r.Role, LeaderEpoch: r.LeaderEpoch, Leader: r.Broker == p.Leader, InISR: inISR,
			LogStart: r.LogStart, LogEnd: r.LogEnd, HW: r.HW, Records: len(r.Records), Err: r.Err})
		if r.Err != "" {
			pr.Unreadable++
			c.add(Finding{Kind: FindingUnreadable, Partition: p.ID, Broker: r.Broker, Offset: -1, Detail: r.Err})
			continue
		}
		ix := newCopyIndex(r)
		ps.all = append(ps.all, ix)
		if r.Broker == p.Leader {
			ps.leader = ix
		}
		if inISR {
			ps.isr = append(ps.isr, ix)
		}
	}
	ps.ref = ps.leader
	if ps.ref == nil {
		// Without the leader, duplicates and indefinite outcomes are
		// looked up on the in-sync copy that got furthest.
		for _, ix := range ps.isr {
			if ps.ref == nil || ix.r.LogEnd > ps.ref.r.LogEnd {
				ps.ref = ix
			}
		}
	}
	return ps
}

// checkGaps walks each copy from its log start to its log end.
func (c *checker) checkGaps(ps *partState) {
	for _, ix := range ps.all {
		r := ix.r
		next := r.LogStart
		for _, rec := range r.Records {
			switch {
			case rec.Offset < next:
				ps.rep.Gaps++
				c.add(Finding{Kind: FindingGap, Partition: ps.p.ID, Broker: r.Broker, Offset: rec.Offset,
					Detail: fmt.Sprintf("offset %d read after offset %d (out of order or repeated)", rec.Offset, next-1)})
				continue
			case rec.Offset > next:
				ps.rep.Gaps += int(rec.Offset - next)
				c.add(Finding{Kind: FindingGap, Partition: ps.p.ID, Broker: r.Broker, Offset: next,
					Detail: fmt.Sprintf("offsets [%d, %d) missing", next, rec.Offset)})
			}
			next = rec.Offset + 1
		}
		if next < r.LogEnd {
			ps.rep.Gaps += int(r.LogEnd - next)
			c.add(Finding{Kind: FindingGap, Partition: ps.p.ID, Broker: r.Broker, Offset: next,
				Detail: fmt.Sprintf("offsets [%d, %d) missing before the log end", next, r.LogEnd)})
		}
	}
}

// checkDivergence compares every two copies up to the offset both must
// hold: the lower of their high watermarks, or the leader's high watermark
// when both are in the ISR. Above it, replicas may differ (an uncommitted
// tail that a new leader's followers truncate).
func (c *checker) checkDivergence(ps *partState) {
	inISR := func(ix *copyIndex) bool { return slices.Contains(ps.isr, ix) }
	divergent := make(map[int64]bool)
	for i, a := range ps.all {
		for _, b := range ps.all[i+1:] {
			bound := min(a.r.HW, b.r.HW)
			if ps.leader != nil && inISR(a) && inISR(b) {
				bound = ps.leader.r.HW
			}
			// Past both log ends every offset is missing on both: a bogus
			// high watermark must not make this loop endless.
			bound = min(bound, max(a.r.LogEnd, b.r.LogEnd))
			for off := max(a.r.LogStart, b.r.LogStart); off < bound; off++ {
				va, oka := a.at(off)
				vb, okb := b.at(off)
				if oka == okb && va == vb || !oka && !okb {
					// Missing on both is a gap of each, reported as such.
					continue
				}
				divergent[off] = true
				c.add(Finding{Kind: FindingDivergent, Partition: ps.p.ID, Broker: a.r.Broker, Offset: off,
					Detail: fmt.Sprintf("below HW %d: broker %d has %s, broker %d has %s",
						bound, a.r.Broker, describe(va, oka), b.r.Broker, describe(vb, okb))})
			}
		}
	}
	ps.rep.Divergent = len(divergent)
}

func describe(v string, ok bool) string {
	if !ok {
		return "nothing"
	}
	return fmt.Sprintf("%q", v)
}

// checkAck looks for an acknowledged record at its offset on the leader's
// copy, whatever the high watermark, and on every in-sync copy below that
// copy's high watermark.
func (c *checker) checkAck(ps *partState, o *Outcome, found []location) {
	lost := false
	verify := func(ix *copyIndex, why string) {
		v, ok := ix.at(o.Offset)
		if ok && v == o.Value {
			return
		}
		lost = true
		var detail string
		switch {
		case ok:
			detail = fmt.Sprintf("%s: offset holds %q", why, v)
		case o.Offset >= ix.r.LogEnd:
			detail = fmt.Sprintf("%s: offset is past the log end %d", why, ix.r.LogEnd)
		default:
			detail = why + ": offset missing"
		}
		if ix == ps.ref && len(found) > 0 {
			detail += fmt.Sprintf("; the value is stored at %v (partition@offset)", found)
		}
		c.add(Finding{Kind: FindingLost, Partition: ps.p.ID, Broker: ix.r.Broker, Offset: o.Offset, Value: o.Value, Detail: detail})
	}
	if l := ps.leader; l != nil {
		if o.Offset < l.r.LogStart {
			ps.rep.AckedExpired++
			return
		}
		verify(l, "leader")
	}
	for _, ix := range ps.isr {
		if ix != ps.leader && o.Offset >= ix.r.LogStart && o.Offset < ix.r.HW {
			verify(ix, "in-sync replica below its HW")
		}
	}
	if lost {
		ps.rep.Lost++
	}
}

// checkStoredValues counts duplicates and values no log knows, over the
// reference copies, in partition and offset order so that the examples
// kept are the same on every run.
func (c *checker) checkStoredValues(order []*partState, stored map[string][]location, outcomes map[string]*Outcome) {
	for _, ps := range order {
		if ps.ref == nil {
			continue
		}
		for _, rec := range ps.ref.r.Records {
			locs := stored[rec.Value]
			if locs[0] != (location{ps.p.ID, rec.Offset}) {
				continue // counted at its first location
			}
			o := outcomes[rec.Value]
			if o == nil {
				ps.rep.Unknown += len(locs)
				c.add(Finding{Kind: FindingUnknown, Partition: ps.p.ID, Broker: -1, Offset: rec.Offset, Value: rec.Value,
					Detail: "value is in no log"})
				continue
			}
			if len(locs) < 2 {
				continue
			}
			switch o.Kind {
			case KindAck:
				ps.rep.DupAcked++
			case KindIndefinite:
				ps.rep.DupIndefinite++
			default:
				ps.rep.DupOther++
			}
			detail := fmt.Sprintf("%s record stored %d times, at %v (partition@offset)", o.Kind, len(locs), locs)
			if o.Idempotent {
				// Retries of an idempotent producer resend the same
				// sequence numbers, which the leader answers with the
				// original offsets: whatever the outcome, a second copy
				// is a failure.
				ps.rep.DupIdempotent++
				detail += "; its producer was idempotent"
			}
			c.add(Finding{Kind: FindingDuplicate, Partition: ps.p.ID, Broker: -1, Offset: rec.Offset, Value: rec.Value, Detail: detail})
		}
	}
}

// stream is one producer of one run: its values carry increasing
// sequence numbers.
type stream struct {
	run      string
	producer int
}

// checkOrder walks each partition's reference copy in offset order and
// counts the records stored after a record of the same producer with a
// higher sequence. Only a value's first location is walked (a repeat is a
// duplicate, counted as such), and values no log knows are skipped. Each
// reordered record is counted, so a batch stored ahead of an earlier one
// counts every record of the earlier one.
func (c *checker) checkOrder(order []*partState, stored map[string][]location, outcomes map[string]*Outcome) {
	type mark struct {
		seq    int64
		offset int64
	}
	for _, ps := range order {
		if ps.ref == nil {
			continue
		}
		highest := make(map[stream]mark)
		for _, rec := range ps.ref.r.Records {
			o := outcomes[rec.Value]
			if o == nil || stored[rec.Value][0] != (location{ps.p.ID, rec.Offset}) {
				continue
			}
			k := stream{o.Run, o.Producer}
			h, seen := highest[k]
			if !seen || o.Seq > h.seq {
				highest[k] = mark{o.Seq, rec.Offset}
				continue
			}
			if o.Seq == h.seq {
				continue // two values with one sequence: hand-made outcomes only
			}
			ps.rep.Reordered++
			detail := fmt.Sprintf("producer %d of run %q: sequence %d (%s) stored after its sequence %d at offset %d",
				o.Producer, o.Run, o.Seq, o.Kind, h.seq, h.offset)
			if o.Idempotent {
				ps.rep.ReorderedIdempotent++
				detail += "; the producer was idempotent"
			}
			c.add(Finding{Kind: FindingReordered, Partition: ps.p.ID, Broker: ps.ref.r.Broker, Offset: rec.Offset, Value: rec.Value, Detail: detail})
		}
	}
}
