package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/strata-log/strata/pkg/client"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// bins holds the binaries TestMain builds from the workspace.
var bins struct {
	dir                       string
	broker, replicator, admin string
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-cluster-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bins.dir = dir
	for _, b := range []struct {
		out *string
		pkg string
	}{{&bins.broker, "./services/broker"}, {&bins.replicator, "./services/replicator"}, {&bins.admin, "./services/admin"}} {
		*b.out = filepath.Join(dir, filepath.Base(b.pkg))
		cmd := exec.Command("go", "build", "-o", *b.out, b.pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b.pkg, err, out)
			return 1
		}
	}
	return m.Run()
}

// node is one broker and its replicator, as processes.
type node struct {
	id                         int
	broker, repl, serf, raft   string // listen addresses
	brokerMetrics, replMetrics string // their /metrics (plain HTTP)
	brokerDir, replDir         string
	brokerCmd, replCmd         *exec.Cmd
	brokerLog, replLog         string
	brokerExited, replExited   chan struct{}
}

// cluster is three nodes on loopback with mutual TLS.
type cluster struct {
	t     *testing.T
	pki   string
	nodes []*node
	tls   func(serverName string) *tls.Config // the operator's client config
	env   []string                            // added to every process's environment
}

// handedOut is every address freeAddr returned in this test binary.
var handedOut sync.Map

// freeAddr is a loopback address free a moment ago, below Linux's
// ephemeral port range (32768-60999 by default), so that an outgoing
// connection cannot take it before the process started here binds it; in
// 20000-25999, while the replicator's tests (run at the same time by make
// test) pick from 26000-31999, so the two never race for one port (CI
// failed once on a replicator that found its port taken).
func freeAddr(t *testing.T) string {
	t.Helper()
	for range 200 {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(20000+mrand.IntN(6000)))
		// A port handed out earlier may not be bound yet by its process:
		// never hand it out twice (two services of one cluster on one port).
		if _, dup := handedOut.LoadOrStore(addr, true); dup {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		pc, err := net.ListenPacket("udp", addr) // Serf uses the UDP port too
		if err != nil {
			l.Close()
			continue
		}
		pc.Close()
		l.Close()
		return addr
	}
	t.Fatal("no free port")
	return ""
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return newClusterEnv(t)
}

// newClusterEnv is newCluster with env (KEY=value) added to every
// process's environment.
func newClusterEnv(t *testing.T, env ...string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts six processes")
	}
	root := t.TempDir()
	c := &cluster{t: t, pki: filepath.Join(root, "pki"), env: env}
	out, err := exec.Command(bins.admin, "pki", "init", "--out", c.pki, "--ca-name", "cluster-test",
		"--node", "1", "--node", "2", "--node", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("pki init: %v\n%s", err, out)
	}
	caPEM, err := os.ReadFile(filepath.Join(c.pki, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(filepath.Join(c.pki, "operator.pem"), filepath.Join(c.pki, "operator-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c.tls = func(serverName string) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: serverName}
	}
	for i := 1; i <= 3; i++ {
		c.nodes = append(c.nodes, &node{id: i,
			broker: freeAddr(t), repl: freeAddr(t), serf: freeAddr(t), raft: freeAddr(t),
			brokerMetrics: freeAddr(t), replMetrics: freeAddr(t),
			brokerDir: filepath.Join(root, fmt.Sprintf("broker-%d", i)), replDir: filepath.Join(root, fmt.Sprintf("replicator-%d", i)),
			brokerLog: filepath.Join(root, fmt.Sprintf("broker-%d.log", i)), replLog: filepath.Join(root, fmt.Sprintf("replicator-%d.log", i)),
		})
	}
	t.Cleanup(func() {
		for _, n := range c.nodes {
			c.stop(n, syscall.SIGKILL)
		}
		if t.Failed() {
			c.dumpLogs()
		}
	})
	for _, n := range c.nodes {
		c.start(n)
	}
	return c
}

func (c *cluster) joinList() string {
	var s []string
	for _, n := range c.nodes {
		s = append(s, n.serf)
	}
	return strings.Join(s, ",")
}

// start launches a node's replicator and broker.
func (c *cluster) start(n *node) {
	c.t.Helper()
	c.startReplicator(n)
	c.startBroker(n)
}

func (c *cluster) pkiFile(name string) string { return filepath.Join(c.pki, name) }

// startReplicator launches a node's replicator alone.
func (c *cluster) startReplicator(n *node) {
	c.t.Helper()
	f := c.pkiFile
	id := strconv.Itoa(n.id)
	n.replCmd, n.replExited = c.spawn(n.replLog, bins.replicator,
		"--node-id", id, "--data-dir", n.replDir,
		"--serf-bind", n.serf, "--join", c.joinList(), "--raft-bind", n.raft,
		"--listen", n.repl, "--broker-addr", n.broker,
		"--bootstrap-expect", "3", "--cluster-key-file", f("gossip.key"),
		"--tls-cert", f("replicator-"+id+".pem"), "--tls-key", f("replicator-"+id+"-key.pem"), "--tls-ca", f("ca.pem"),
		"--metrics-listen", n.replMetrics, "--preferred-leader-interval", "2s")
}

// startBroker launches a node's broker alone.
func (c *cluster) startBroker(n *node) {
	c.t.Helper()
	f := c.pkiFile
	id := strconv.Itoa(n.id)
	n.brokerCmd, n.brokerExited = c.spawn(n.brokerLog, bins.broker,
		"--node-id", id, "--data-dir", n.brokerDir, "--listen", n.broker, "--metrics-listen", n.brokerMetrics,
		"--replicator-addr", n.repl, "--replica-lag-max", "3s",
		"--tls-cert", f("broker-"+id+".pem"), "--tls-key", f("broker-"+id+"-key.pem"), "--tls-ca", f("ca.pem"))
}

func (c *cluster) spawn(logPath, bin string, args ...string) (*exec.Cmd, chan struct{}) {
	c.t.Helper()
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		lf.Close()
		c.t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is in the log; a killed process is expected
		lf.Close()
		close(exited)
	}()
	return cmd, exited
}

// stop signals a node's processes and waits for them to exit.
func (c *cluster) stop(n *node, sig syscall.Signal) {
	stopProcess(n.brokerCmd, n.brokerExited, sig)
	stopProcess(n.replCmd, n.replExited, sig)
}

// stopBroker signals a node's broker alone and waits for it to exit.
func (c *cluster) stopBroker(n *node, sig syscall.Signal) {
	stopProcess(n.brokerCmd, n.brokerExited, sig)
}

// signalBroker sends sig to a node's broker (SIGSTOP, SIGCONT).
func (c *cluster) signalBroker(n *node, sig syscall.Signal) {
	c.t.Helper()
	if err := n.brokerCmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %s to broker %d: %v", sig, n.id, err)
	}
}

func stopProcess(cmd *exec.Cmd, exited chan struct{}, sig syscall.Signal) {
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (c *cluster) dumpLogs() {
	for _, n := range c.nodes {
		for _, l := range []string{n.replLog, n.brokerLog} {
			b, err := os.ReadFile(l)
			if err != nil {
				continue
			}
			lines := strings.Split(string(b), "\n")
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			c.t.Logf("---- last lines of %s ----\n%s", filepath.Base(l), strings.Join(lines, "\n"))
		}
	}
}

func (c *cluster) brokerAddrs(except ...int) []string {
	var out []string
	for _, n := range c.nodes {
		skip := false
		for _, e := range except {
			skip = skip || e == n.id
		}
		if !skip {
			out = append(out, n.broker)
		}
	}
	return out
}

// client is a pkg/client Client as the operator.
func (c *cluster) client(except ...int) *client.Client {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cl *client.Client
	eventually(c.t, 30*time.Second, func() error {
		var err error
		cl, err = client.New(ctx, client.Config{Brokers: c.brokerAddrs(except...), TLS: c.tls("127.0.0.1")})
		return err
	})
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// replica dials one broker's ReplicaTools service as the operator.
func (c *cluster) replica(n *node) stratav1.ReplicaToolsClient {
	c.t.Helper()
	conn, err := grpc.NewClient(n.broker, grpc.WithTransportCredentials(credentials.NewTLS(c.tls("127.0.0.1"))))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return stratav1.NewReplicaToolsClient(conn)
}

// metadata dials one node's replicator's Metadata service as the operator.
func (c *cluster) metadata(n *node) stratav1.MetadataClient {
	c.t.Helper()
	conn, err := grpc.NewClient(n.repl, grpc.WithTransportCredentials(credentials.NewTLS(c.tls("127.0.0.1"))))
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { conn.Close() })
	return stratav1.NewMetadataClient(conn)
}

// readAll reads a broker's whole copy of a partition.
func readAll(ctx context.Context, rc stratav1.ReplicaToolsClient, topic string, p int32) ([]*stratav1.Record, *stratav1.ReadReplicaResponse, error) {
	var recs []*stratav1.Record
	off := int64(-1)
	for {
		req := &stratav1.ReadReplicaRequest{Topic: topic, Partition: p, Offset: max(off, 0)}
		if off < 0 {
			st, err := rc.PartitionStatus(ctx, &stratav1.PartitionStatusRequest{Topic: topic, Partition: p})
			if err != nil {
				return nil, nil, err
			}
			req.Offset = st.GetLogStartOffset()
		}
		resp, err := rc.ReadReplica(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		recs = append(recs, resp.GetRecords()...)
		off = resp.GetNextOffset()
		if off >= resp.GetLogEndOffset() {
			return recs, resp, nil
		}
	}
}

// eventually retries f until it returns nil or d passes.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %v", d, err)
		}
		time.Sleep(200 * time.Millisecond) // other processes' state: no notification reaches the test
	}
}
