package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// parseTopicConfig reads --config key=value settings with
// topicconfig.Config.Set: the keys, values and ranges the controller and
// every broker check, so a mistake is caught here with the same message.
func parseTopicConfig(kvs []string) (topicconfig.Config, error) {
	var cfg topicconfig.Config
	for _, kv := range kvs {
		k, v, err := parseKV(kv)
		if err != nil {
			return cfg, usagef("--config %v", err)
		}
		if err := cfg.Set(k, v); err != nil {
			return cfg, usagef("--config: %v", err)
		}
	}
	return cfg, nil
}

// configUsage is the --config flag's help: every setting, what it does
// and its allowed values.
func configUsage() string {
	var b strings.Builder
	b.WriteString("topic setting `key=value` (repeatable); unset settings take the defaults:")
	for _, s := range topicconfig.Settings() {
		fmt.Fprintf(&b, "\n%s: %s; %s", s.Key, s.Doc, s.Allowed)
	}
	return b.String()
}

// topicName checks a topic name argument with the brokers' rules before
// anything is sent.
func topicName(name string) error {
	if err := topicconfig.ValidateName(name); err != nil {
		return usagef("%v", err)
	}
	return nil
}

// countFlag is a --partitions or --replication-factor: 0 (not sent, the
// server decides) until given, and at least 1 when given.
type countFlag int32

func (c *countFlag) String() string { return strconv.Itoa(int(*c)) }

func (c *countFlag) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 32)
	switch {
	case err != nil:
		return errors.New("not a number")
	case n < 1:
		return errors.New("must be at least 1")
	}
	*c = countFlag(n)
	return nil
}

func runTopicCreate(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var parts, rf countFlag
	fs.Var(&parts, "partitions", fmt.Sprintf("number of `partitions` (default: the brokers' default, %d)", topicconfig.Default().Partitions))
	fs.Var(&rf, "replication-factor", fmt.Sprintf("`replicas` per partition (default: the cluster's, %d or every live broker when fewer are alive; 1 on a single broker)",
		topicconfig.ClusterReplicationFactor))
	var cfgs multiFlag
	fs.Var(&cfgs, "config", configUsage())
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := topicName(pos[0]); err != nil {
		return err
	}
	cfg, err := parseTopicConfig(cfgs)
	if err != nil {
		return err
	}
	cfg.Partitions, cfg.ReplicationFactor = int32(parts), int32(rf)
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	tm, err := cl.CreateTopic(ctx, pos[0], cfg.Proto())
	if err != nil {
		return fmt.Errorf("create topic %q: %w", pos[0], err)
	}
	if e.g.json {
		return printProto(e.io.Out, tm)
	}
	_, err = fmt.Fprintf(e.io.Out, "created topic %q with %s, replication factor %d\n", tm.GetName(),
		plural(len(tm.GetPartitions()), "partition"), tm.GetConfig().GetReplicationFactor())
	return err
}

// plural is "1 partition", "3 partitions".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func runTopicList(ctx context.Context, e *env, args []string) error {
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
	topics, err := cl.ListTopics(ctx)
	if err != nil {
		return err
	}
	if e.g.json {
		return printProto(e.io.Out, &stratav1.ListTopicsResponse{Topics: topics})
	}
	t := newTable(e.io.Out, "NAME", "PARTITIONS", "REPLICAS", "FSYNC")
	for _, tm := range topics {
		t.row(tm.GetName(), len(tm.GetPartitions()), tm.GetConfig().GetReplicationFactor(), orDefault(tm.GetConfig().GetFsync()))
	}
	return t.flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// configRows are describe's CONFIG table: every setting as the topic has
// it, "(default)" for one left to the brokers' default (a cluster's
// metadata keeps 0 for topics created before the controller wrote the
// defaults down) and "unlimited" for a retention of -1.
func configRows(c *stratav1.TopicConfig) [][2]string {
	cfg := topicconfig.FromProto(c)
	var rows [][2]string
	for _, s := range topicconfig.Settings() {
		rows = append(rows, [2]string{s.Key, orDefault(s.Format(cfg))})
	}
	return rows
}

func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}

func runTopicDescribe(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := topicName(pos[0]); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	tm, err := cl.DescribeTopic(ctx, pos[0])
	if err != nil {
		return topicErr(pos[0], err)
	}
	if e.g.json {
		return printProto(e.io.Out, tm)
	}
	c := tm.GetConfig()
	w := e.io.Out
	fmt.Fprintf(w, "NAME          %s\n", tm.GetName())
	fmt.Fprintf(w, "PARTITIONS    %d\n", len(tm.GetPartitions()))
	fmt.Fprintf(w, "REPLICATION   %d\n", c.GetReplicationFactor())
	fmt.Fprintln(w, "\nCONFIG")
	ct := newTable(w, "KEY", "VALUE")
	for _, r := range configRows(c) {
		ct.row(r[0], r[1])
	}
	if err := ct.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nPARTITIONS")
	pt := newTable(w, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "LOG-END", "HW")
	for _, p := range tm.GetPartitions() {
		leader := fmt.Sprint(p.GetLeaderId())
		if p.GetOffline() || p.GetLeaderId() < 0 {
			leader = "offline"
		}
		// DescribeTopic asked each leader for its partitions' offsets.
		pt.row(p.GetPartition(), leader, p.GetLeaderEpoch(), joinInts(p.GetReplicas()), joinInts(p.GetIsr()),
			offsetCell(p.GetLogStartOffset()), offsetCell(p.GetLogEndOffset()), offsetCell(p.GetHighWatermark()))
	}
	return pt.flush()
}

// offsetCell formats a partition offset; "-" when no leader reported it (-1),
// which is not the same as an empty log.
func offsetCell(o int64) string {
	if o < 0 {
		return "-"
	}
	return strconv.FormatInt(o, 10)
}

func runTopicAlter(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	var cfgs multiFlag
	fs.Var(&cfgs, "config", configUsage())
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := topicName(pos[0]); err != nil {
		return err
	}
	if len(cfgs) == 0 {
		return usagef("topic alter: at least one --config key=value is required")
	}
	cfg, err := parseTopicConfig(cfgs)
	if err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	tm, err := cl.AlterTopicConfig(ctx, pos[0], cfg.Proto())
	if err != nil {
		return topicErr(pos[0], err)
	}
	if e.g.json {
		return printProto(e.io.Out, tm)
	}
	_, err = fmt.Fprintf(e.io.Out, "altered topic %q\n", pos[0])
	return err
}

func runTopicDelete(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if err := topicName(pos[0]); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.DeleteTopic(ctx, pos[0]); err != nil {
		return topicErr(pos[0], err)
	}
	if e.g.json {
		return printJSON(e.io.Out, map[string]string{"deleted": pos[0]})
	}
	_, err = fmt.Fprintf(e.io.Out, "deleted topic %q\n", pos[0])
	return err
}

func runClusterInfo(ctx context.Context, e *env, args []string) error {
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
	md, err := cl.Metadata(ctx)
	if err != nil {
		return err
	}
	if e.g.json {
		return printProto(e.io.Out, md)
	}
	ctrl := "none"
	if md.GetControllerId() >= 0 {
		ctrl = fmt.Sprint(md.GetControllerId())
	}
	fmt.Fprintf(e.io.Out, "CLUSTER     %s\nCONTROLLER  %s\nTOPICS      %d\n\n", dash(md.GetClusterId()), ctrl, len(md.GetTopics()))
	t := newTable(e.io.Out, "ID", "ADDRESS", "ALIVE", "RAFT-ROLE")
	for _, b := range md.GetBrokers() {
		role := b.GetRaftRole()
		if role == "" {
			role = "-"
		}
		t.row(b.GetId(), b.GetAddress(), b.GetAlive(), role)
	}
	return t.flush()
}
