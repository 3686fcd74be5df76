package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// groupName checks a group name argument (the rules of topic names)
// before anything is sent.
func groupName(name string) error {
	if err := topicconfig.ValidateName(name); err != nil {
		return usagef("group name: %v", err)
	}
	return nil
}

// groupErr makes "group "x" not found" out of the client's error.
func groupErr(group string, err error) error {
	if errors.Is(err, client.ErrGroupNotFound) {
		return fmt.Errorf("group %q not found", group)
	}
	return err
}

func runGroupList(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	groups, err := cl.ListGroups(ctx)
	if groups == nil && err != nil {
		return err
	}
	if e.g.json {
		if perr := printProto(e.io.Out, &stratav1.ListGroupsResponse{Groups: groups}); perr != nil {
			return perr
		}
	} else {
		t := newTable(e.io.Out, "GROUP", "STATE", "MEMBERS", "COORDINATOR")
		for _, g := range groups {
			t.row(g.GetGroup(), g.GetState(), g.GetMembers(), g.GetCoordinatorId())
		}
		if ferr := t.flush(); ferr != nil {
			return ferr
		}
	}
	if err != nil {
		return fmt.Errorf("the list lacks the groups of brokers that did not answer: %w", err)
	}
	return nil
}

// groupPartitionRow is one partition of group describe.
type groupPartitionRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	MemberID  string `json:"member_id"`
	ClientID  string `json:"client_id"`
	// Committed is the next offset the group consumes; -1 none.
	Committed int64 `json:"committed"`
	// LogEnd is the partition's high watermark, the end a consumer
	// reads to; -1 when no leader reported it.
	LogEnd int64 `json:"log_end"`
	// Lag is LogEnd - Committed; -1 when either is unknown.
	Lag int64 `json:"lag"`
}

type groupMemberJSON struct {
	MemberID    string   `json:"member_id"`
	InstanceID  string   `json:"instance_id,omitempty"`
	ClientID    string   `json:"client_id"`
	Identity    string   `json:"identity"`
	MemberEpoch int64    `json:"member_epoch"`
	Topics      []string `json:"topics"`
	Assigned    []string `json:"assigned"`
	Pending     []string `json:"pending"`
}

type groupDescribeJSON struct {
	Group         string              `json:"group"`
	State         string              `json:"state"`
	GroupEpoch    int64               `json:"group_epoch"`
	Assignor      string              `json:"assignor"`
	CoordinatorID int32               `json:"coordinator_id"`
	Members       []groupMemberJSON   `json:"members"`
	Partitions    []groupPartitionRow `json:"partitions"`
	TotalLag      int64               `json:"total_lag"`
}

// tpList is "orders/0", "orders/1" ... for a member's partitions.
func tpList(tps []*stratav1.TopicPartitions) []string {
	out := []string{}
	for _, t := range tps {
		for _, p := range t.GetPartitions() {
			out = append(out, fmt.Sprintf("%s/%d", t.GetTopic(), p))
		}
	}
	return out
}

func assignorName(a stratav1.Assignor) string {
	switch a {
	case stratav1.Assignor_ASSIGNOR_RANGE:
		return "range"
	case stratav1.Assignor_ASSIGNOR_ROUND_ROBIN:
		return "round-robin"
	}
	return "cooperative-sticky"
}

// groupPartitions is describe's partition rows: every partition of the
// topics the members subscribe to or the group has offsets in, with its
// owner, committed offset, log end (asked of each partition's leader, as
// topic describe does) and lag.
func groupPartitions(ctx context.Context, cl *client.Client, d *client.GroupDescription) ([]groupPartitionRow, int64, error) {
	type tp struct {
		topic string
		part  int32
	}
	owner := map[tp]*stratav1.GroupMember{}
	committed := map[tp]int64{}
	var topics []string
	addTopic := func(t string) {
		if !slices.Contains(topics, t) {
			topics = append(topics, t)
		}
	}
	for _, m := range d.GetMembers() {
		for _, t := range m.GetTopics() {
			addTopic(t)
		}
		for _, a := range m.GetAssigned() {
			addTopic(a.GetTopic())
			for _, p := range a.GetPartitions() {
				owner[tp{a.GetTopic(), p}] = m
			}
		}
	}
	for _, o := range d.GetOffsets() {
		addTopic(o.GetTopic())
		committed[tp{o.GetTopic(), o.GetPartition()}] = o.GetOffset()
	}
	slices.Sort(topics)
	var rows []groupPartitionRow
	var total int64
	for _, topic := range topics {
		ends := map[int32]int64{}
		var parts []int32
		tm, err := cl.DescribeTopic(ctx, topic)
		switch {
		case errors.Is(err, client.ErrTopicNotFound):
			// Subscribed but not created yet, or deleted: only what the
			// group holds of it.
		case err != nil:
			return nil, 0, topicErr(topic, err)
		default:
			for _, p := range tm.GetPartitions() {
				parts = append(parts, p.GetPartition())
				ends[p.GetPartition()] = p.GetHighWatermark()
			}
		}
		for k := range committed {
			if k.topic == topic && !slices.Contains(parts, k.part) {
				parts = append(parts, k.part)
			}
		}
		slices.Sort(parts)
		for _, p := range parts {
			k := tp{topic, p}
			row := groupPartitionRow{Topic: topic, Partition: p, Committed: -1, LogEnd: -1, Lag: -1}
			if m := owner[k]; m != nil {
				row.MemberID, row.ClientID = m.GetMemberId(), m.GetClientId()
			}
			if c, ok := committed[k]; ok {
				row.Committed = c
			}
			if end, ok := ends[p]; ok && end >= 0 {
				row.LogEnd = end
			}
			if row.Committed >= 0 && row.LogEnd >= 0 {
				row.Lag = max(0, row.LogEnd-row.Committed)
				total += row.Lag
			}
			rows = append(rows, row)
		}
	}
	return rows, total, nil
}

func runGroupDescribe(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := groupName(name); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	d, err := cl.DescribeGroup(ctx, name)
	if err != nil {
		return groupErr(name, err)
	}
	rows, total, err := groupPartitions(ctx, cl, d)
	if err != nil {
		return err
	}
	if e.g.json {
		out := groupDescribeJSON{Group: d.GetGroup(), State: d.GetState(), GroupEpoch: d.GetGroupEpoch(), Assignor: assignorName(d.GetAssignor()),
			CoordinatorID: d.GetCoordinatorId(), Members: []groupMemberJSON{}, Partitions: rows, TotalLag: total}
		if out.Partitions == nil {
			out.Partitions = []groupPartitionRow{}
		}
		for _, m := range d.GetMembers() {
			out.Members = append(out.Members, groupMemberJSON{MemberID: m.GetMemberId(), InstanceID: m.GetInstanceId(), ClientID: m.GetClientId(),
				Identity: m.GetIdentity(), MemberEpoch: m.GetMemberEpoch(), Topics: m.GetTopics(), Assigned: tpList(m.GetAssigned()), Pending: tpList(m.GetPending())})
		}
		return printJSON(e.io.Out, out)
	}
	w := e.io.Out
	fmt.Fprintf(w, "GROUP        %s\n", d.GetGroup())
	fmt.Fprintf(w, "STATE        %s\n", d.GetState())
	fmt.Fprintf(w, "EPOCH        %d\n", d.GetGroupEpoch())
	fmt.Fprintf(w, "ASSIGNOR     %s\n", assignorName(d.GetAssignor()))
	fmt.Fprintf(w, "COORDINATOR  %d\n", d.GetCoordinatorId())
	fmt.Fprintf(w, "TOTAL-LAG    %d\n", total)
	fmt.Fprintf(w, "\nMEMBERS (%d)\n", len(d.GetMembers()))
	mt := newTable(w, "MEMBER-ID", "INSTANCE-ID", "CLIENT-ID", "IDENTITY", "EPOCH", "ASSIGNED", "PENDING")
	for _, m := range d.GetMembers() {
		mt.row(m.GetMemberId(), dash(m.GetInstanceId()), dash(m.GetClientId()), dash(m.GetIdentity()), m.GetMemberEpoch(),
			dash(strings.Join(tpList(m.GetAssigned()), ",")), dash(strings.Join(tpList(m.GetPending()), ",")))
	}
	if err := mt.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPARTITIONS")
	pt := newTable(w, "TOPIC", "PARTITION", "MEMBER-ID", "CLIENT-ID", "COMMITTED", "LOG-END", "LAG")
	for _, r := range rows {
		pt.row(r.Topic, r.Partition, dash(r.MemberID), dash(r.ClientID), offsetCell(r.Committed), offsetCell(r.LogEnd), offsetCell(r.Lag))
	}
	return pt.flush()
}

func runGroupDelete(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := groupName(name); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.DeleteGroup(ctx, name); err != nil {
		return groupErr(name, err)
	}
	if e.g.json {
		return printJSON(e.io.Out, map[string]string{"deleted": name})
	}
	_, err = fmt.Fprintf(e.io.Out, "deleted group %q\n", name)
	return err
}

// resetTarget is reset-offsets' --to-* choice.
type resetTarget struct {
	kind  string // earliest, latest, offset, time, shift
	n     int64
	time  time.Time
	flags []string // the --to-* flags given, for the usage error
}

// int64Flag is a number flag that remembers whether it was given.
type int64Flag struct {
	set bool
	v   int64
}

func (f *int64Flag) String() string { return strconv.FormatInt(f.v, 10) }

func (f *int64Flag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("not a number")
	}
	f.v, f.set = n, true
	return nil
}

type resetRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Old is the committed offset before; -1 none.
	Old int64 `json:"old"`
	New int64 `json:"new"`
}

func runGroupResetOffsets(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	topic := fs.String("topic", "", "the `topic` whose offsets to reset (required)")
	var partition partitionFlag
	fs.Var(&partition, "partition", "reset only this `partition` (default: all of the topic's)")
	earliest := fs.Bool("to-earliest", false, "to each partition's log start")
	latest := fs.Bool("to-latest", false, "to each partition's end (its high watermark): skip everything there now")
	var toOffset, shift int64Flag
	fs.Var(&toOffset, "to-offset", "to `offset` N (kept within each partition's log start and end)")
	toTime := fs.String("to-time", "", "to the first record at or after `time` (RFC3339); the end when the last record is older")
	fs.Var(&shift, "shift-by", "move each committed offset by `N` (negative: back), kept within the log")
	dry := fs.Bool("dry-run", false, "print the old and new offsets without changing them")
	force := fs.Bool("force", false, "reset even while the group has members (they keep their positions until their next rebalance)")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := groupName(name); err != nil {
		return err
	}
	if *topic == "" {
		return usagef("group reset-offsets: --topic is required")
	}
	if err := topicName(*topic); err != nil {
		return err
	}
	var target resetTarget
	choose := func(on bool, flag, kind string) {
		if on {
			target.flags = append(target.flags, flag)
			target.kind = kind
		}
	}
	choose(*earliest, "--to-earliest", "earliest")
	choose(*latest, "--to-latest", "latest")
	choose(toOffset.set, "--to-offset", "offset")
	choose(*toTime != "", "--to-time", "time")
	choose(shift.set, "--shift-by", "shift")
	if len(target.flags) != 1 {
		return usagef("group reset-offsets: give exactly one of --to-earliest, --to-latest, --to-offset, --to-time, --shift-by (got %d)", len(target.flags))
	}
	switch target.kind {
	case "offset":
		if toOffset.v < 0 {
			return usagef("--to-offset %d: must not be negative", toOffset.v)
		}
		target.n = toOffset.v
	case "shift":
		target.n = shift.v
	case "time":
		t, err := time.Parse(time.RFC3339Nano, *toTime)
		if err != nil {
			return usagef("--to-time %q: want an RFC3339 time such as 2024-05-01T12:00:00Z", *toTime)
		}
		target.time = t
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	n, err := cl.Partitions(ctx, *topic)
	if err != nil {
		return topicErr(*topic, err)
	}
	var parts []int32
	if partition.set {
		if partition.v >= n {
			return usagef("--partition %d: topic %q has %d partitions", partition.v, *topic, n)
		}
		parts = []int32{partition.v}
	} else {
		for p := range n {
			parts = append(parts, p)
		}
	}
	current, err := cl.FetchGroupOffsets(ctx, name, *topic)
	if err != nil {
		return groupErr(name, err)
	}
	old := map[int32]int64{}
	for _, o := range current {
		old[o.GetPartition()] = o.GetOffset()
	}
	var rows []resetRow
	var offsets []*client.PartitionOffset
	for _, p := range parts {
		nw, err := resolveReset(ctx, cl, *topic, p, target, old)
		if err != nil {
			return err
		}
		o, ok := old[p]
		if !ok {
			o = -1
		}
		rows = append(rows, resetRow{Topic: *topic, Partition: p, Old: o, New: nw})
		offsets = append(offsets, &client.PartitionOffset{Topic: *topic, Partition: p, Offset: nw})
	}
	if !*dry {
		if err := cl.ResetGroupOffsets(ctx, name, offsets, *force); err != nil {
			if client.Code(err) == codes.FailedPrecondition && !*force {
				return fmt.Errorf("reset offsets of group %q: %w\n(the group has live members; stop them, or pass --force: they then keep their positions until their next rebalance)", name, err)
			}
			return fmt.Errorf("reset offsets of group %q: %w", name, err)
		}
	}
	if e.g.json {
		return printJSON(e.io.Out, map[string]any{"group": name, "dry_run": *dry, "offsets": rows})
	}
	t := newTable(e.io.Out, "TOPIC", "PARTITION", "OLD", "NEW")
	for _, r := range rows {
		t.row(r.Topic, r.Partition, offsetCell(r.Old), r.New)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if *dry {
		_, err = fmt.Fprintln(e.io.Out, "dry run: nothing changed")
	}
	return err
}

// resolveReset is partition p's new offset for target, against its
// leader's log start and high watermark.
func resolveReset(ctx context.Context, cl *client.Client, topic string, p int32, target resetTarget, old map[int32]int64) (int64, error) {
	start, hw, err := cl.PartitionOffsets(ctx, topic, p)
	if err != nil {
		return 0, topicErr(topic, err)
	}
	clamp := func(o int64) int64 { return min(max(o, start), hw) }
	switch target.kind {
	case "earliest":
		return start, nil
	case "latest":
		return hw, nil
	case "offset":
		return clamp(target.n), nil
	case "time":
		o, err := cl.OffsetForTime(ctx, topic, p, target.time)
		if err != nil {
			return 0, topicErr(topic, err)
		}
		return clamp(o), nil
	}
	cur, ok := old[p]
	if !ok {
		return 0, fmt.Errorf("--shift-by: partition %d of %q has no committed offset to move; use --to-earliest, --to-latest or --to-offset (with --partition %d)", p, topic, p)
	}
	return clamp(cur + target.n), nil
}
