package broker

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/strata-log/strata/pkg/client"
	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

// disk is the state of fullFS: while full, writes to store files fail with
// ENOSPC, writing nothing or, with half, the first half of their bytes.
type disk struct {
	full atomic.Bool
	half atomic.Bool
}

// fullFS is the real file system with a disk that can fill up.
type fullFS struct {
	logstore.OSFS
	d *disk
}

// OpenFile implements logstore.FS.
func (f fullFS) OpenFile(name string, flag int, perm fs.FileMode) (logstore.File, error) {
	fl, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return fl, err
	}
	return &fullFile{File: fl, name: name, d: f.d}, nil
}

type fullFile struct {
	logstore.File
	name string
	d    *disk
}

// WriteAt implements io.WriterAt.
func (f *fullFile) WriteAt(p []byte, off int64) (int, error) {
	if !f.d.full.Load() {
		return f.File.WriteAt(p, off)
	}
	n := 0
	if f.d.half.Load() {
		var err error
		if n, err = f.File.WriteAt(p[:len(p)/2], off); err != nil {
			return n, err
		}
	}
	return n, &fs.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
}

// TestFullDiskFailsAtOnceAndResumes is reproduction 5 of the storage-faults
// issue without a real tmpfs: while the partition's disk is full, produce
// fails at once with ResourceExhausted naming the directory (not after the
// client's delivery timeout); once space returns produce goes on at the
// next offset with nothing lost, without a restart.
func TestFullDiskFailsAtOnceAndResumes(t *testing.T) {
	d := &disk{}
	dir := t.TempDir()
	b, err := Start(context.Background(), testConfig(dir), zaptest.NewLogger(t), Options{
		Getenv: func(string) string { return "" },
		OpenLog: func(dir string, o logstore.Options) (partition.Log, error) {
			o.FS = fullFS{d: d}
			return logstore.Open(dir, o)
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
	c := dial(t, b)
	ctx := ctxT(t)
	createTopic(t, c, "full", &stratav1.TopicConfig{Partitions: 1})
	partDir := filepath.Join(dir, "topics", "full", "0")

	cl, err := client.New(ctx, client.Config{Brokers: []string{b.Addr().String()}, Insecure: true,
		// The broker advertises a fixed address: dial the real one.
		DialOptions: []grpc.DialOption{grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var nd net.Dialer
			return nd.DialContext(ctx, "tcp", b.Addr().String())
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	prod, err := cl.NewProducer(client.ProducerOptions{Acks: client.AcksAll, DeliveryTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close(context.Background()) })

	var acked []string // the values acknowledged, by offset
	produce := func(t *testing.T, acks stratav1.Acks, value string) (*stratav1.ProduceResponse, error) {
		t.Helper()
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return c.log.Produce(pctx, &stratav1.ProduceRequest{Topic: "full", Acks: acks, Records: []*stratav1.Record{{Value: []byte(value)}}})
	}
	mustProduce := func(t *testing.T, value string) {
		t.Helper()
		r, err := produce(t, stratav1.Acks_ACKS_ALL, value)
		if err != nil {
			t.Fatal(err)
		}
		if r.BaseOffset != int64(len(acked)) {
			t.Fatalf("%q landed at offset %d, want the next offset %d", value, r.BaseOffset, len(acked))
		}
		acked = append(acked, value)
	}
	wantNoSpace := func(t *testing.T, code codes.Code, msg string) {
		t.Helper()
		if code != codes.ResourceExhausted || !strings.Contains(msg, partDir) {
			t.Fatalf("code %v, message %q; want ResourceExhausted naming %s", code, msg, partDir)
		}
	}

	mustProduce(t, "before-0")
	mustProduce(t, "before-1")
	for _, tc := range []struct {
		name string
		half bool
	}{
		{"nothing written", false},
		{"half written", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d.half.Store(tc.half)
			d.full.Store(true)
			for _, acks := range []stratav1.Acks{stratav1.Acks_ACKS_LEADER, stratav1.Acks_ACKS_ALL} {
				_, err := produce(t, acks, "refused")
				st := wantCode(t, err, codes.ResourceExhausted)
				wantNoSpace(t, st.Code(), st.Message())
			}

			ps, err := c.log.ProduceStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := ps.Send(&stratav1.ProduceRequest{Topic: "full", Acks: stratav1.Acks_ACKS_ALL, Records: []*stratav1.Record{{Value: []byte("refused")}}}); err != nil {
				t.Fatal(err)
			}
			r, err := ps.Recv()
			if err != nil {
				t.Fatal(err)
			}
			wantNoSpace(t, codes.Code(r.GetError().GetCode()), r.GetError().GetMessage())
			if err := ps.CloseSend(); err != nil {
				t.Fatal(err)
			}

			// The client fails the record at once: a full disk is not
			// retried until the delivery timeout.
			start := time.Now()
			_, err = prod.ProduceSync(ctx, &client.Record{Topic: "full", Value: []byte("refused")})
			if took := time.Since(start); took > 5*time.Second || errors.Is(err, client.ErrDeliveryTimeout) {
				t.Fatalf("client produce failed after %v with %v; want at once", took, err)
			}
			if client.Code(err) != codes.ResourceExhausted {
				t.Fatalf("client produce: %v, want ResourceExhausted", err)
			}

			d.full.Store(false)
			mustProduce(t, "after-"+tc.name)
			m, err := prod.ProduceSync(ctx, &client.Record{Topic: "full", Value: []byte("client-after-" + tc.name)})
			if err != nil || m.Offset != int64(len(acked)) {
				t.Fatalf("client produce after space returned: offset %d, %v; want offset %d", m.Offset, err, len(acked))
			}
			acked = append(acked, "client-after-"+tc.name)
		})
	}

	// The refusals are counted, and the log is healthy: nothing failed.
	body := scrape(t, b)
	if !strings.Contains(body, `strata_broker_log_healthy{partition="0",topic="full"} 1`) ||
		strings.Contains(body, `strata_broker_log_no_space_errors_total{partition="0",topic="full"} 0`) ||
		!strings.Contains(body, `strata_broker_log_no_space_errors_total{partition="0",topic="full"}`) {
		t.Fatalf("metrics after a full disk:\n%s", metricLines(body, "full"))
	}

	r, err := c.log.Consume(ctx, &stratav1.ConsumeRequest{Topic: "full", Offset: 0, MaxRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rec := range r.Records {
		got = append(got, string(rec.Value))
	}
	if strings.Join(got, ",") != strings.Join(acked, ",") {
		t.Fatalf("log holds %q, want exactly the acknowledged %q", got, acked)
	}
}
