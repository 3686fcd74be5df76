package client

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Partitioner picks a partition for a record without an explicit one.
// Implementations must be safe for concurrent use.
type Partitioner interface {
	// Partition returns a partition in [0, partitions).
	Partition(rec *Record, partitions int32) int32
}

// HashPartitioner is the default partitioner, compatible with Kafka's:
// keyed records go to murmur2(key) & 0x7fffffff % partitions (the same
// partition Kafka's Java client would choose), records without a key are
// spread round-robin from a random first partition, so that short-lived
// producers (one `strata produce` each) do not all start on partition 0
// (Kafka's sticky partitioner likewise starts at a random partition).
type HashPartitioner struct {
	start sync.Once
	next  atomic.Uint32
}

// Partition implements Partitioner.
func (p *HashPartitioner) Partition(rec *Record, partitions int32) int32 {
	if partitions <= 0 {
		return 0
	}
	if rec.Key == nil {
		p.start.Do(func() { p.next.Store(rand.Uint32()) })
		return int32((p.next.Add(1) - 1) % uint32(partitions))
	}
	return KeyPartition(rec.Key, partitions)
}

// KeyPartition is the partition of key among partitions: Kafka's
// toPositive(murmur2(key)) % partitions.
func KeyPartition(key []byte, partitions int32) int32 {
	return int32((murmur2(key) & 0x7fffffff) % uint32(partitions))
}

// murmur2 is Kafka's variant of MurmurHash2 (seed 0x9747b28c).
func murmur2(data []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	n := len(data)
	h := uint32(seed) ^ uint32(n)
	for i := 0; i+4 <= n; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := data[n&^3:]
	switch len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}
