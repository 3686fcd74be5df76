package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// failingFS is the real file system whose store writes fail with EIO
// while fail is set: the log goes sticky ErrFailed.
type failingFS struct {
	logstore.OSFS
	fail *atomic.Bool
}

// OpenFile implements logstore.FS.
func (f failingFS) OpenFile(name string, flag int, perm fs.FileMode) (logstore.File, error) {
	fl, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return fl, err
	}
	return &failingFile{File: fl, name: name, fail: f.fail}, nil
}

type failingFile struct {
	logstore.File
	name string
	fail *atomic.Bool
}

// WriteAt implements io.WriterAt.
func (f *failingFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fail.Load() {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EIO}
	}
	return f.File.WriteAt(p, off)
}

// flipStoredRecord flips one payload byte of the record at offset off in
// the store file name in place (one write at its position, as a bad disk
// sector would; the broker has the file open).
func flipStoredRecord(tb testing.TB, name string, off int64) {
	tb.Helper()
	// Frame layout (pkg/logstore/frame.go): u32 length of what follows,
	// u32 crc, u64 offset, i64 timestamp, payload.
	const headerSize, lenSize = 24, 4
	b, err := os.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	for pos := int64(0); pos+headerSize < int64(len(b)); pos += lenSize + int64(binary.BigEndian.Uint32(b[pos:])) {
		if int64(binary.BigEndian.Uint64(b[pos+8:])) != off {
			continue
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			tb.Fatal(err)
		}
		_, err = f.WriteAt([]byte{b[pos+headerSize] ^ 0x10}, pos+headerSize)
		if err := errors.Join(err, f.Close()); err != nil {
			tb.Fatal(err)
		}
		return
	}
	tb.Fatalf("no record %d in %s", off, name)
}

// TestDamagedLeaderResignsAndRepairsAsFollower: in a cluster, a leader
// whose log holds a corrupt record below its log end, or whose log failed,
// asks its replicator's controller to move leadership (DESIGN.md §8) when
// another replica is in sync; told it follows, it repairs: it truncates to
// just before the corrupt record, or reopens its failed log, and then
// takes the new leader's records. A leader alone in its ISR keeps serving
// what is intact and refuses only the damaged range.
func TestDamagedLeaderResignsAndRepairsAsFollower(t *testing.T) {
	certs := initClusterCerts(t)
	fr := startFakeReplicator(t, certs)
	dir := t.TempDir()
	cfg := tlsConfig(dir, certs)
	cfg.NodeID, cfg.ReplicatorAddr = 1, fr.addr
	cfg.ReplicaLagMax = 400 * time.Millisecond // the ISR manager checks every 100 ms
	var fail atomic.Bool
	b, err := Start(context.Background(), cfg, zaptest.NewLogger(t), Options{
		Getenv: func(string) string { return "" },
		OpenLog: func(d string, o logstore.Options) (partition.Log, error) {
			if strings.HasPrefix(d, filepath.Join(dir, "topics", "failed")) {
				o.FS = failingFS{fail: &fail}
			}
			return logstore.Open(d, o)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	ctx := ctxT(t)
	own := replicaClient(t, b, certs, "replicator-1")
	op := dialAs(t, b, certs, "operator")
	apply := func(t *testing.T, topic string, role stratav1.Role, epoch, leader int32, isr []int32) {
		t.Helper()
		if _, err := own.ApplyPartitionState(ctx, &stratav1.ApplyPartitionStateRequest{
			Topic: topic, Role: role, LeaderEpoch: epoch, LeaderId: leader, LeaderAddress: "b",
			Replicas: []int32{1, 2, 3}, Isr: isr,
			Config: &stratav1.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 1},
		}); err != nil {
			t.Fatalf("apply %s %v in epoch %d: %v", topic, role, epoch, err)
		}
	}
	produceN := func(t *testing.T, topic string, n int) {
		t.Helper()
		if _, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: topic, Records: values(n, topic)}); err != nil {
			t.Fatal(err)
		}
	}
	// readDamaged reads topic from 0 on the leader: the records before
	// the damage at offset 5, then DataLoss for it.
	readDamaged := func(t *testing.T, topic string) {
		t.Helper()
		flipStoredRecord(t, filepath.Join(dir, "topics", topic, "0", "00000000000000000000.log"), 5)
		r, err := op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, MaxRecords: 100})
		if err != nil || len(r.GetRecords()) != 5 {
			t.Fatalf("consume from 0: %d records, %v; want the 5 before the damage", len(r.GetRecords()), err)
		}
		_, err = op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: topic, Offset: 5, MaxRecords: 100})
		wantCode(t, err, codes.DataLoss)
	}
	status := func(t *testing.T, topic string) *stratav1.PartitionStatusResponse {
		t.Helper()
		st, err := own.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: topic})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	waitResigned := func(t *testing.T, topic string, epoch int32) *stratav1.ResignLeadershipRequest {
		t.Helper()
		eventually(t, 10*time.Second, func() bool { return len(fr.resignations(topic)) > 0 })
		rs := fr.resignations(topic)
		if len(rs) != 1 || rs[0].GetLeaderId() != 1 || rs[0].GetLeaderEpoch() != epoch || rs[0].GetPartition() != 0 {
			t.Fatalf("resignations %v, want one by broker 1 in epoch %d", rs, epoch)
		}
		return rs[0]
	}

	// Damaged first, so that the ISR manager has looked at it by the time
	// it resigns "corrupt", which sorts after it.
	apply(t, "alone", stratav1.Role_ROLE_LEADER, 1, 1, []int32{1})
	produceN(t, "alone", 10)
	readDamaged(t, "alone")

	t.Run("a leader with a corrupt record resigns and truncates before it as a follower", func(t *testing.T) {
		// Alone in the ISR at first, so that its HW reaches the damage
		// and a consumer's read finds it; then the followers are back in.
		apply(t, "corrupt", stratav1.Role_ROLE_LEADER, 1, 1, []int32{1})
		produceN(t, "corrupt", 10)
		readDamaged(t, "corrupt")
		apply(t, "corrupt", stratav1.Role_ROLE_LEADER, 1, 1, []int32{1, 2, 3})
		if r := waitResigned(t, "corrupt", 1); !strings.Contains(r.GetReason(), "corrupt record at offset 5") {
			t.Fatalf("reason %q does not name the corrupt record", r.GetReason())
		}
		apply(t, "corrupt", stratav1.Role_ROLE_FOLLOWER, 2, 2, []int32{2, 3})
		if st := status(t, "corrupt"); st.GetRole() != stratav1.Role_ROLE_FOLLOWER || st.GetLogEndOffset() != 5 {
			t.Fatalf("follower status %v, want log end 5: the fetcher copies the damaged range again", st)
		}
	})

	t.Run("a leader alone in its ISR keeps serving what is intact", func(t *testing.T) {
		if rs := fr.resignations("alone"); len(rs) != 0 {
			t.Fatalf("a leader alone in its ISR resigned: %v", rs)
		}
		if st := status(t, "alone"); st.GetRole() != stratav1.Role_ROLE_LEADER || st.GetLogEndOffset() != 10 {
			t.Fatalf("status %v, want the leader with its 10 records", st)
		}
		r, err := op.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "alone", Offset: 6, MaxRecords: 100})
		if err != nil || len(r.GetRecords()) != 4 {
			t.Fatalf("consume after the damage: %d records, %v; want 4", len(r.GetRecords()), err)
		}
		produceN(t, "alone", 1)
	})

	t.Run("a leader whose log failed resigns and reopens its log as a follower", func(t *testing.T) {
		apply(t, "failed", stratav1.Role_ROLE_LEADER, 1, 1, []int32{1, 2})
		produceN(t, "failed", 3)
		fail.Store(true)
		_, err := op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "failed", Records: values(1, "lost")})
		wantCode(t, err, codes.Unavailable)
		if r := waitResigned(t, "failed", 1); !strings.Contains(r.GetReason(), "log failed") {
			t.Fatalf("reason %q does not name the failure", r.GetReason())
		}
		fail.Store(false)
		_, err = op.log.Produce(ctx, &stratav1.ProduceRequest{Topic: "failed", Records: values(1, "lost")})
		wantCode(t, err, codes.Unavailable) // sticky while it leads

		apply(t, "failed", stratav1.Role_ROLE_FOLLOWER, 2, 2, []int32{2})
		p, err := b.reg.Partition("failed", 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Healthy(); err != nil {
			t.Fatalf("Healthy() = %v after the reopen, want nil", err)
		}
		if st := status(t, "failed"); st.GetLogEndOffset() != 3 {
			t.Fatalf("follower status %v, want log end 3", st)
		}
		// It takes the new leader's records, as its fetcher appends them.
		frames := leaderFrames(t, 2, 3, values(2, "new"))
		ar, err := own.Append(ctx, &stratav1.AppendRequest{Topic: "failed", LeaderEpoch: 2, RecordsEpoch: 2, Frames: frames, LeaderHighWatermark: 5})
		if err != nil || ar.GetLogEndOffset() != 5 {
			t.Fatalf("append after the reopen: %v, %v; want log end 5", ar, err)
		}
		if st := status(t, "failed"); st.GetLatestLocalEpoch() != 2 || st.GetHighWatermark() != 5 {
			t.Fatalf("follower status %v, want epoch 2 and HW 5", st)
		}
	})

	body := scrape(t, b)
	if !strings.Contains(body, `strata_broker_isr_changes_total{kind="resign"} 2`) {
		t.Fatalf("metrics lack two resignations:\n%s", body)
	}
}

// leaderFrames are recs as a leader stores them in epoch from offset base,
// raw frames as its Fetch sends them.
func leaderFrames(tb testing.TB, epoch int32, base int64, recs []*stratav1.Record) []byte {
	tb.Helper()
	l, err := logstore.Open(tb.TempDir(), logstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	if err := l.Reset(base); err != nil {
		tb.Fatal(err)
	}
	batch := make([]logstore.Record, len(recs))
	for i, r := range recs {
		batch[i] = logstore.Record{Timestamp: time.Now().UnixMilli(), Payload: partition.EncodePayload(nil, r)}
	}
	if _, err := l.Append(epoch, batch); err != nil {
		tb.Fatal(err)
	}
	rd, err := l.NewReader(base)
	if err != nil {
		tb.Fatal(err)
	}
	defer rd.Close()
	frames, _, err := rd.ReadFrames(nil, 1<<20)
	if err != nil && !errors.Is(err, io.EOF) {
		tb.Fatal(err)
	}
	return frames
}
