package client

import (
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// offsets is a partition's log start, log end and high watermark.
type offsets struct{ start, end, hw int64 }

func offsetsOf(p *stratav1.PartitionMetadata) offsets {
	return offsets{p.GetLogStartOffset(), p.GetLogEndOffset(), p.GetHighWatermark()}
}

// TestDescribeTopicAsksEachLeader: the broker that answers DescribeTopic
// knows the offsets of the partitions it leads only; the client asks the
// other leaders, and reports a partition whose leader does not answer as
// unknown (-1), never as an empty log.
func TestDescribeTopicAsksEachLeader(t *testing.T) {
	fc := newFakeCluster(t, 3)
	fc.addTopic("t", 3) // partition i led by broker i
	for p, n := range []int{5, 7, 9} {
		fill(fc, "t", p, n)
	}
	cl := newTestClient(t, fc)
	ctx := testCtx(t)

	tm, err := cl.DescribeTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range tm.GetPartitions() {
		n := int64([]int{5, 7, 9}[i])
		if got, want := offsetsOf(p), (offsets{0, n, n}); got != want {
			t.Errorf("partition %d (leader %d): offsets %+v, want %+v", p.GetPartition(), p.GetLeaderId(), got, want)
		}
	}

	fc.brokers[2].srv.Stop()
	tm, err = cl.DescribeTopic(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := offsetsOf(tm.GetPartitions()[2]), (offsets{-1, -1, -1}); got != want {
		t.Errorf("partition 2, its leader down: offsets %+v, want %+v (unknown)", got, want)
	}
	if got, want := offsetsOf(tm.GetPartitions()[1]), (offsets{0, 7, 7}); got != want {
		t.Errorf("partition 1: offsets %+v, want %+v", got, want)
	}
}

// TestPartitionOffsetsFollowsLeaderMove: a cached leader that no longer
// leads the partition does not know its offsets; the client refreshes its
// metadata and asks the new leader instead of reporting an empty log.
func TestPartitionOffsetsFollowsLeaderMove(t *testing.T) {
	fc := newFakeCluster(t, 2)
	fc.addTopic("t", 1) // leader: broker 0
	fill(fc, "t", 0, 4)
	cl := newTestClient(t, fc)
	ctx := testCtx(t)
	fc.setLeader("t", 0, 1) // the client's cache still says broker 0
	start, hw, err := cl.PartitionOffsets(ctx, "t", 0)
	if err != nil || start != 0 || hw != 4 {
		t.Fatalf("PartitionOffsets = %d, %d, %v; want 0, 4 from the new leader", start, hw, err)
	}
}
