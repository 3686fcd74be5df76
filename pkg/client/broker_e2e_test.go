package client

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// End-to-end tests against the real broker (services/broker), built from
// the workspace with `go build`. They are skipped when the workspace or the
// broker is not available (e.g. the module is tested on its own), or with
// -short.

var (
	brokerOnce sync.Once
	brokerBin  string
	brokerDir  string
	brokerErr  error
)

func brokerBinary(tb testing.TB) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end test skipped in -short mode")
	}
	brokerOnce.Do(func() {
		root, err := filepath.Abs("../..")
		if err != nil {
			brokerErr = err
			return
		}
		if _, err := os.Stat(filepath.Join(root, "go.work")); err != nil {
			brokerErr = errors.New("no go.work above the module")
			return
		}
		if brokerDir, err = os.MkdirTemp("", "strata-client-e2e-"); err != nil {
			brokerErr = err
			return
		}
		brokerBin = filepath.Join(brokerDir, "strata-broker")
		cmd := exec.Command("go", "build", "-o", brokerBin, "./services/broker")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			brokerErr = errors.New("go build ./services/broker: " + err.Error() + "\n" + string(out))
		}
	})
	if brokerErr != nil {
		tb.Skipf("real broker not available: %v", brokerErr)
	}
	return brokerBin
}

func cleanupBrokerBinary() {
	if brokerDir != "" {
		os.RemoveAll(brokerDir)
	}
}

// realBroker is one broker process with a data directory that outlives
// restarts.
type realBroker struct {
	tb   testing.TB
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

func startRealBroker(tb testing.TB) *realBroker {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	b := &realBroker{tb: tb, bin: brokerBinary(tb), dir: tb.TempDir(), addr: addr}
	b.start()
	tb.Cleanup(b.stop)
	return b
}

func (b *realBroker) start() {
	b.tb.Helper()
	b.cmd = exec.Command(b.bin, "--data-dir", b.dir, "--listen", b.addr, "--log-level", "error",
		// No metrics listener: the default port is fixed, and other test
		// binaries running at the same time start brokers too.
		"--metrics-listen", "",
		// These tests exercise the data path in plaintext; mTLS and ACLs are
		// tested in services/broker and pkg/pki.
		"--insecure-no-auth")
	b.cmd.Stdout, b.cmd.Stderr = os.Stderr, os.Stderr
	if err := b.cmd.Start(); err != nil {
		b.tb.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.tb.Fatalf("broker did not listen on %s: %v", b.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port: no other signal exists
	}
}

func (b *realBroker) stop() {
	if b.cmd == nil {
		return
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err == nil {
		done := make(chan struct{})
		go func() { b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.cmd.Process.Kill()
			<-done
		}
	}
	b.cmd = nil
}

func (b *realBroker) restart() {
	b.tb.Helper()
	b.stop()
	b.start()
}

func produceN(tb testing.TB, ctx context.Context, p *Producer, topic string, from, to int) {
	tb.Helper()
	var rs []*Result
	for i := from; i < to; i++ {
		rs = append(rs, p.Produce(ctx, &Record{Topic: topic, Key: []byte("k"), Value: []byte(strconv.Itoa(i)),
			Headers: []Header{{Key: "i", Value: []byte(strconv.Itoa(i))}}}))
	}
	if err := p.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	for i, m := range waitAll(tb, ctx, rs) {
		if m.Offset != int64(from+i) {
			tb.Fatalf("record %d at offset %d", from+i, m.Offset)
		}
	}
}

func TestE2EProduceConsumeRoundTrip(t *testing.T) {
	b := startRealBroker(t)
	cl := dialTest(t, b.addr)
	ctx := testCtx(t)
	if _, err := cl.CreateTopic(ctx, "rt", &TopicConfig{Partitions: 1, ReplicationFactor: 1}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, cl, ProducerOptions{Linger: 5 * time.Millisecond})
	produceN(t, ctx, p, "rt", 0, 100)
	cs := newTestConsumer(t, cl, ConsumerOptions{Topic: "rt"})
	for i := 0; i < 100; i++ {
		r, err := cs.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r.Offset != int64(i) || string(r.Value) != strconv.Itoa(i) || string(r.Key) != "k" ||
			len(r.Headers) != 1 || string(r.Headers[0].Value) != strconv.Itoa(i) || r.Timestamp.IsZero() {
			t.Fatalf("offset %d: got %+v", i, r)
		}
	}
	if _, err := p.ProduceSync(ctx, &Record{Topic: "no-such-topic"}); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("unknown topic: %v", err)
	}
	if _, err := cl.DescribeTopic(ctx, "no-such-topic"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("describe unknown topic: %v", err)
	}
}

// TestE2EConsumerResumesAfterBrokerRestart restarts the real broker while a
// consumer is mid-way through a partition and while it waits at the end:
// every offset is delivered exactly once, in order.
func TestE2EConsumerResumesAfterBrokerRestart(t *testing.T) {
	b := startRealBroker(t)
	cl := dialTest(t, b.addr)
	ctx := testCtx(t)
	if _, err := cl.CreateTopic(ctx, "restart", &TopicConfig{Partitions: 1, ReplicationFactor: 1, Fsync: "always"}); err != nil {
		t.Fatal(err)
	}
	p := newTestProducer(t, cl, ProducerOptions{})
	produceN(t, ctx, p, "restart", 0, 3000)

	cs, err := cl.NewConsumer(ctx, ConsumerOptions{Topic: "restart", MaxBatchRecords: 50, Buffer: 1,
		RetryBackoff: 10 * time.Millisecond, RetryBackoffMax: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	expectRange(t, ctx, cs, 0, 1000) // the stream is mid-partition now
	b.restart()
	expectRange(t, ctx, cs, 1000, 3000) // resumed after the restart

	// Restart again while the consumer waits at the end of the log, then
	// produce through the restart (the producer reconnects and retries).
	b.restart()
	produceN(t, ctx, p, "restart", 3000, 3500)
	expectRange(t, ctx, cs, 3000, 3500)

	// Nothing more: no repeats after the end.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if r, err := cs.Next(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after the end: got offset %d (%v), want nothing", r.Offset, err)
	}
}
