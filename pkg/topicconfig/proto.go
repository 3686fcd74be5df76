package topicconfig

import stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"

// FromProto converts the wire form; nil is the zero Config (every
// setting left to its default).
func FromProto(p *stratav1.TopicConfig) Config {
	return Config{
		Partitions:            p.GetPartitions(),
		ReplicationFactor:     p.GetReplicationFactor(),
		RetentionBytes:        p.GetRetentionBytes(),
		RetentionMs:           p.GetRetentionMs(),
		SegmentBytes:          p.GetSegmentBytes(),
		SegmentMs:             p.GetSegmentMs(),
		MaxRecordBytes:        p.GetMaxRecordBytes(),
		Fsync:                 p.GetFsync(),
		MinInsyncReplicas:     p.GetMinInsyncReplicas(),
		UncleanLeaderElection: p.GetUncleanLeaderElection(),
		CleanupPolicy:         p.GetCleanupPolicy(),
		DeleteRetentionMs:     p.GetDeleteRetentionMs(),
	}
}

// Proto converts c to its wire form.
func (c Config) Proto() *stratav1.TopicConfig {
	return &stratav1.TopicConfig{
		Partitions:            c.Partitions,
		ReplicationFactor:     c.ReplicationFactor,
		RetentionBytes:        c.RetentionBytes,
		RetentionMs:           c.RetentionMs,
		SegmentBytes:          c.SegmentBytes,
		SegmentMs:             c.SegmentMs,
		MaxRecordBytes:        c.MaxRecordBytes,
		Fsync:                 c.Fsync,
		MinInsyncReplicas:     c.MinInsyncReplicas,
		UncleanLeaderElection: c.UncleanLeaderElection,
		CleanupPolicy:         c.CleanupPolicy,
		DeleteRetentionMs:     c.DeleteRetentionMs,
	}
}
