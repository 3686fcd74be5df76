package client

import (
	"fmt"
	"testing"
)

// Kafka's own murmur2 test vectors (org.apache.kafka.common.utils.UtilsTest).
func TestMurmur2KafkaVectors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		t.Run(tc.in, func(t *testing.T) {
			if got := int32(murmur2([]byte(tc.in))); got != tc.want {
				t.Fatalf("murmur2(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestHashPartitionerStableAndSpread(t *testing.T) {
	const parts, keys = 12, 120000
	var p HashPartitioner
	counts := make([]int, parts)
	for i := 0; i < keys; i++ {
		key := []byte(fmt.Sprintf("user-%d", i))
		a := p.Partition(&Record{Key: key}, parts)
		b := p.Partition(&Record{Key: append([]byte(nil), key...)}, parts)
		if a != b {
			t.Fatalf("key %q: partition %d then %d", key, a, b)
		}
		if a < 0 || a >= parts {
			t.Fatalf("key %q: partition %d out of range", key, a)
		}
		counts[a]++
	}
	want := keys / parts
	for i, n := range counts {
		if n < want*9/10 || n > want*11/10 {
			t.Errorf("partition %d got %d keys, want %d ±10%%", i, n, want)
		}
	}
}

func TestHashPartitionerRoundRobinWithoutKey(t *testing.T) {
	var p HashPartitioner
	first := p.Partition(&Record{}, 3)
	for i := 1; i < 30; i++ {
		if got, want := p.Partition(&Record{}, 3), (first+int32(i))%3; got != want {
			t.Fatalf("record %d: partition %d, want %d (the first went to %d)", i, got, want, first)
		}
	}
	// An empty, non-nil key is a key.
	if a, b := p.Partition(&Record{Key: []byte{}}, 3), p.Partition(&Record{Key: []byte{}}, 3); a != b {
		t.Fatalf("empty key: %d then %d", a, b)
	}
}

// TestHashPartitionerStartsAtRandom: each new partitioner (each producer,
// each `strata produce` run) sends its first keyless record to a random
// partition; they all went to partition 0.
func TestHashPartitionerStartsAtRandom(t *testing.T) {
	const parts, producers = 4, 400
	counts := make([]int, parts)
	for range producers {
		var p HashPartitioner
		counts[p.Partition(&Record{}, parts)]++
	}
	// Each count is Binomial(400, 1/4): mean 100, sd 8.7; 50 is 5.8 sd away.
	for i, n := range counts {
		if n < 50 {
			t.Errorf("partition %d was first for %d of %d producers, want about %d: %v", i, n, producers, producers/parts, counts)
		}
	}
}
