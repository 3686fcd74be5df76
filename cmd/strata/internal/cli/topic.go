package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// parseTopicConfig applies k=v settings to cfg. Keys use Kafka-like dotted
// names (retention.ms) or the proto's names (retention_ms).
func parseTopicConfig(cfg *stratav1.TopicConfig, kvs []string) error {
	for _, kv := range kvs {
		k, v, err := parseKV(kv)
		if err != nil {
			return usagef("--config %v", err)
		}
		k = strings.ReplaceAll(strings.ToLower(k), "_", ".")
		i64 := func() (int64, error) {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, usagef("--config %s=%q: not an integer", k, v)
			}
			return n, nil
		}
		i32 := func() (int32, error) {
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil {
				return 0, usagef("--config %s=%q: not a 32-bit integer", k, v)
			}
			return int32(n), nil
		}
		dur := func() (int64, error) {
			if d, err := time.ParseDuration(v); err == nil {
				return d.Milliseconds(), nil
			}
			return i64()
		}
		switch k {
		case "retention.bytes":
			cfg.RetentionBytes, err = i64()
		case "retention.ms", "retention":
			cfg.RetentionMs, err = dur()
		case "segment.bytes":
			cfg.SegmentBytes, err = i64()
		case "segment.ms", "segment.age":
			cfg.SegmentMs, err = dur()
		case "max.record.bytes":
			cfg.MaxRecordBytes, err = i32()
		case "fsync":
			cfg.Fsync = v
		case "min.insync.replicas":
			cfg.MinInsyncReplicas, err = i32()
		case "unclean.leader.election":
			var b bool
			b, err = strconv.ParseBool(v)
			cfg.UncleanLeaderElection = b
		default:
			return usagef("--config: unknown key %q (retention.bytes, retention.ms, segment.bytes, segment.ms, max.record.bytes, fsync, min.insync.replicas, unclean.leader.election)", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func runTopicCreate(ctx context.Context, e *env, args []string) error {
	fs := e.flagSet()
	parts := fs.Int("partitions", 1, "number of `partitions`")
	rf := fs.Int("replication-factor", 1, "number of `replicas` per partition")
	var cfgs multiFlag
	fs.Var(&cfgs, "config", "topic setting `key=value` (repeatable): retention.bytes, retention.ms, segment.bytes, fsync=always|never|interval:100ms, ...")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	// On the wire 0 means the brokers' default; typed here it is a mistake.
	if *parts < 1 || *rf < 1 {
		return usagef("--partitions and --replication-factor must be at least 1")
	}
	cfg := &stratav1.TopicConfig{Partitions: int32(*parts), ReplicationFactor: int32(*rf)}
	if err := parseTopicConfig(cfg, cfgs); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	tm, err := cl.CreateTopic(ctx, pos[0], cfg)
	if err != nil {
		return fmt.Errorf("create topic %q: %w", pos[0], err)
	}
	if e.g.json {
		return printProto(e.io.Out, tm)
	}
	_, err = fmt.Fprintf(e.io.Out, "created topic %q with %d partitions\n", tm.GetName(), len(tm.GetPartitions()))
	return err
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

// configNum shows a numeric topic setting as stored: 0 is the brokers'
// default and -1 (retention only) no limit, not the numbers themselves.
func configNum(v int64) string {
	switch v {
	case 0:
		return "(default)"
	case -1:
		return "unlimited"
	}
	return strconv.FormatInt(v, 10)
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
	ct.row("retention.bytes", configNum(c.GetRetentionBytes()))
	ct.row("retention.ms", configNum(c.GetRetentionMs()))
	ct.row("segment.bytes", configNum(c.GetSegmentBytes()))
	ct.row("segment.ms", configNum(c.GetSegmentMs()))
	ct.row("max.record.bytes", configNum(int64(c.GetMaxRecordBytes())))
	ct.row("fsync", orDefault(c.GetFsync()))
	ct.row("min.insync.replicas", configNum(int64(c.GetMinInsyncReplicas())))
	ct.row("unclean.leader.election", c.GetUncleanLeaderElection())
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
	fs.Var(&cfgs, "config", "topic setting `key=value` (repeatable)")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if len(cfgs) == 0 {
		return usagef("topic alter: at least one --config key=value is required")
	}
	cfg := &stratav1.TopicConfig{}
	if err := parseTopicConfig(cfg, cfgs); err != nil {
		return err
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	cl, err := e.connect(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	tm, err := cl.AlterTopicConfig(ctx, pos[0], cfg)
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

func newTopicConfig() *stratav1.TopicConfig { return &stratav1.TopicConfig{} }
