package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/client"
)

// flipRecordOnDisk flips one payload byte of the record at offset off in
// the store file name, in place, as a bad sector would: one write at its
// position while the broker has the file open.
func flipRecordOnDisk(t *testing.T, name string, off int64) {
	t.Helper()
	// Frame layout (pkg/logstore/frame.go): u32 length of what follows,
	// u32 crc, u64 offset, i64 timestamp, payload.
	const headerSize, lenSize = 24, 4
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	for pos := int64(0); pos+headerSize < int64(len(b)); pos += lenSize + int64(binary.BigEndian.Uint32(b[pos:])) {
		if int64(binary.BigEndian.Uint64(b[pos+8:])) != off {
			continue
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteAt([]byte{b[pos+headerSize] ^ 0x10}, pos+headerSize)
		if err := errors.Join(err, f.Close()); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no record %d in %s", off, name)
}

// TestCorruptLeaderHandsOverAndRepairs is DESIGN.md §8 on a real cluster:
// a record flipped on the leader's disk below its log end is found by a
// read; the leader asks the controller to move leadership, which goes to
// an ISR member in a higher epoch; acks=ALL produce goes on; the old
// leader, now a follower, truncates before the damage, fetches the range
// again and rejoins the ISR; every copy ends identical, holding every
// acknowledged record, the damaged one included.
func TestCorruptLeaderHandsOverAndRepairs(t *testing.T) {
	c := newCluster(t)
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	before := waitFullISR(t, cl, 30*time.Second)[0]
	acks := produceAll(t, cl, "a", 200)
	c.checkReplicas(t, acks, 1)

	old := c.nodes[before.GetLeaderId()-1]
	const damaged = 100
	flipRecordOnDisk(t, filepath.Join(old.brokerDir, "topics", topic, "0", "00000000000000000000.log"), damaged)
	// A read finds it: the leader's copy answers DataLoss at it.
	if _, _, err := readAll(ctx, c.replica(old), topic, 0); status.Code(err) != codes.DataLoss {
		t.Fatalf("read of the leader's copy: %v, want DataLoss at offset %d", err, damaged)
	}
	found := time.Now()

	eventually(t, 15*time.Second, func() error {
		ps, err := describe(cl)
		if err != nil {
			return err
		}
		p := ps[0]
		if p.GetLeaderId() == int32(old.id) || p.GetLeaderId() < 0 || p.GetLeaderEpoch() <= before.GetLeaderEpoch() {
			return fmt.Errorf("leader %d epoch %d (was %d in %d)", p.GetLeaderId(), p.GetLeaderEpoch(), old.id, before.GetLeaderEpoch())
		}
		if !slices.Contains(before.GetIsr(), p.GetLeaderId()) {
			return fmt.Errorf("new leader %d was not in the ISR %v", p.GetLeaderId(), before.GetIsr())
		}
		return nil
	})
	t.Logf("leadership moved off the corrupt leader %d %s after the read found the damage", old.id, time.Since(found).Round(10*time.Millisecond))

	acks = append(acks, produceAll(t, cl, "b", 200)...)
	waitFullISR(t, cl, 60*time.Second)
	t.Logf("the old leader was back in the ISR %s after the read found the damage", time.Since(found).Round(10*time.Millisecond))
	acks = append(acks, produceAll(t, cl, "c", 100)...)
	c.checkReplicas(t, acks, 1)
}
