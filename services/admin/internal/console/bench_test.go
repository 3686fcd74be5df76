package console

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/admin/internal/clusterview"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// bigCluster is 1,000 topics of 3 partitions on 3 nodes, with 15 minutes
// of scrapes of every topic.
func bigCluster() (*fakeCluster, *fakeMetrics) {
	c := &fakeCluster{snap: clusterview.Snapshot{ControllerID: 1, ClusterID: "bench",
		Brokers: []*stratav1.BrokerInfo{{Id: 1, Alive: true, RaftRole: "leader"}, {Id: 2, Alive: true, RaftRole: "follower"},
			{Id: 3, Alive: true, RaftRole: "follower"}},
		Reach: []clusterview.Reach{{Addr: "b1:9092"}, {Addr: "b2:9092"}, {Addr: "b3:9092"}}}}
	for i := range 1000 {
		t := &stratav1.TopicMetadata{Name: fmt.Sprintf("topic-%04d", i), Config: &stratav1.TopicConfig{Partitions: 3, ReplicationFactor: 3}}
		for p := range int32(3) {
			isr := []int32{1, 2, 3}
			if i%50 == 0 {
				isr = isr[:2]
			}
			t.Partitions = append(t.Partitions, &stratav1.PartitionMetadata{Partition: p, LeaderId: p + 1, LeaderEpoch: 4,
				Replicas: []int32{1, 2, 3}, Isr: isr, LogEndOffset: 1_000_000, HighWatermark: 999_999})
		}
		c.snap.Topics = append(c.snap.Topics, t)
	}
	m := &fakeMetrics{}
	now := time.Now()
	for k := 180; k >= 0; k-- {
		pt := scrape.Point{At: now.Add(-time.Duration(k) * 5 * time.Second), Topics: map[string]scrape.Rates{}}
		for i := range 1000 {
			pt.Topics[fmt.Sprintf("topic-%04d", i)] = scrape.Rates{ProduceRecords: float64(i + k), ProduceBytes: float64(1024 * (i + k)),
				ConsumeRecords: float64(i), ConsumeBytes: float64(1024 * i), LagRecords: float64(k % 7)}
		}
		m.points = append(m.points, pt)
	}
	return c, m
}

// BenchmarkPages renders each console page through the whole admin
// handler (guard, ACL checks, template) against a fake cluster of 1,000
// topics x 3 partitions. The target is <= 200 ms a page.
func BenchmarkPages(b *testing.B) {
	c, m := bigCluster()
	f := newFixture(b, c, m)
	for _, path := range []string{"/", "/topics", "/topics/topic-0500", "/charts", "/acl", "/certs"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			var bytes int
			for b.Loop() {
				rec := f.do(b, "operator", http.MethodGet, DefaultBase+path, nil)
				if rec.Code != http.StatusOK {
					b.Fatalf("%s: %d", path, rec.Code)
				}
				bytes = rec.Body.Len()
			}
			b.SetBytes(int64(bytes))
		})
	}
}
