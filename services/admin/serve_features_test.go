package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// adminFixture is a running `serve` with a PKI directory from pki init.
type adminFixture struct {
	pkiDir string
	cfg    serveConfig
	addr   string
	stop   func() error
}

// initPKI runs pki init for node 1 plus extra operators in a temp dir.
func initPKI(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(tb.TempDir(), "pki")
	if _, _, err := runForTest(tb, "pki", "init", "--out", dir, "--ca-name", "ca", "--node", "1"); err != nil {
		tb.Fatal(err)
	}
	return dir
}

func serveCfg(tb testing.TB, pkiDir string) serveConfig {
	tb.Helper()
	files := pki.DirFiles(pkiDir, "admin")
	cfg := defaultServeConfig()
	cfg.DataDir = filepath.Join(tb.TempDir(), "data")
	cfg.TLSCert, cfg.TLSKey, cfg.TLSCA = files.CertFile, files.KeyFile, files.CAFile
	cfg.CAKey = filepath.Join(pkiDir, pki.CAKeyFileName)
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func startAdmin(tb testing.TB, pkiDir string, mod func(*serveConfig)) *adminFixture {
	tb.Helper()
	cfg := serveCfg(tb, pkiDir)
	if mod != nil {
		mod(&cfg)
	}
	addr, stop := startServe(tb, cfg, zaptest.NewLogger(tb))
	f := &adminFixture{pkiDir: pkiDir, cfg: cfg, addr: addr}
	var once sync.Once
	f.stop = func() error {
		var err error
		once.Do(func() { err = stop() })
		return err
	}
	tb.Cleanup(func() {
		if err := f.stop(); err != nil {
			tb.Error(err)
		}
	})
	return f
}

// call makes one HTTPS request and returns the status and body.
func call(tb testing.TB, c *http.Client, method, url, body string) (int, []byte) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, b
}

// fakeCluster is a strata.v1.Topics server over mutual TLS as broker-1,
// recording the identity of every caller.
type fakeCluster struct {
	stratav1.UnimplementedTopicsServer
	mu      sync.Mutex
	callers []string
	topics  map[string]*stratav1.TopicMetadata
}

func (c *fakeCluster) record(ctx context.Context) error {
	id, err := pki.IdentityFromPeer(ctx)
	if err != nil {
		return status.Error(codes.Unauthenticated, err.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.callers = append(c.callers, id)
	return nil
}

func (c *fakeCluster) CreateTopic(ctx context.Context, in *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	if err := c.record(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[in.GetName()]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q already exists", in.GetName())
	}
	if in.GetConfig().GetPartitions() < 0 {
		return nil, status.Error(codes.InvalidArgument, "partitions must be positive")
	}
	t := &stratav1.TopicMetadata{Name: in.GetName(), Config: in.GetConfig()}
	c.topics[in.GetName()] = t
	return &stratav1.CreateTopicResponse{Topic: t}, nil
}

func (c *fakeCluster) ListTopics(ctx context.Context, _ *stratav1.ListTopicsRequest) (*stratav1.ListTopicsResponse, error) {
	if err := c.record(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	resp := &stratav1.ListTopicsResponse{}
	for _, t := range c.topics {
		resp.Topics = append(resp.Topics, t)
	}
	return resp, nil
}

func (c *fakeCluster) DescribeTopic(ctx context.Context, in *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	if err := c.record(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[in.GetName()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", in.GetName())
	}
	return &stratav1.DescribeTopicResponse{Topic: t}, nil
}

func (c *fakeCluster) DeleteTopic(ctx context.Context, in *stratav1.DeleteTopicRequest) (*stratav1.DeleteTopicResponse, error) {
	if err := c.record(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.topics[in.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", in.GetName())
	}
	delete(c.topics, in.GetName())
	return &stratav1.DeleteTopicResponse{}, nil
}

// startFakeCluster serves fakeCluster on loopback over mTLS.
func startFakeCluster(tb testing.TB, pkiDir string) (*fakeCluster, string) {
	tb.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(pkiDir, "broker-1"), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(rl.ServerConfig())))
	fc := &fakeCluster{topics: map[string]*stratav1.TopicMetadata{}}
	stratav1.RegisterTopicsServer(srv, fc)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
	return fc, ln.Addr().String()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// TestServeTopicRoutesOverTLS forwards topic routes to a fake cluster
// over real mutual TLS; the first cluster address is down, so every call
// also proves the failover to the next.
func TestServeTopicRoutesOverTLS(t *testing.T) {
	pkiDir := initPKI(t)
	fc, clusterAddr := startFakeCluster(t, pkiDir)
	a := startAdmin(t, pkiDir, func(c *serveConfig) { c.ClusterAddrs = []string{deadAddr(t), clusterAddr} })
	op := httpsClient(t, pkiDir, "operator")
	t.Cleanup(func() { closeIdle(op) })
	base := "https://" + a.addr

	code, body := call(t, op, http.MethodPost, base+"/v1/topics", `{"name": "orders", "config": {"partitions": 3}}`)
	if code != http.StatusCreated || !bytes.Contains(body, []byte(`"partitions":3`)) {
		t.Fatalf("create = %d %s", code, body)
	}
	if code, body = call(t, op, http.MethodPost, base+"/v1/topics", `{"name": "orders"}`); code != http.StatusConflict {
		t.Fatalf("create again = %d %s, want 409", code, body)
	}
	if code, body = call(t, op, http.MethodPost, base+"/v1/topics", `{"name": "bad", "config": {"partitions": -1}}`); code != http.StatusBadRequest {
		t.Fatalf("invalid create = %d %s, want 400", code, body)
	}
	if code, body = call(t, op, http.MethodGet, base+"/v1/topics", ""); code != http.StatusOK || !bytes.Contains(body, []byte(`"name":"orders"`)) {
		t.Fatalf("list = %d %s", code, body)
	}
	if code, body = call(t, op, http.MethodGet, base+"/v1/topics/orders", ""); code != http.StatusOK {
		t.Fatalf("describe = %d %s", code, body)
	}
	if code, _ = call(t, op, http.MethodDelete, base+"/v1/topics/orders", ""); code != http.StatusNoContent {
		t.Fatalf("delete = %d", code)
	}
	if code, _ = call(t, op, http.MethodGet, base+"/v1/topics/orders", ""); code != http.StatusNotFound {
		t.Fatalf("describe deleted = %d, want 404", code)
	}
	// The cluster authorizes admin, never the HTTP caller: every call it
	// saw came with admin's own certificate.
	fc.mu.Lock()
	callers := append([]string(nil), fc.callers...)
	fc.mu.Unlock()
	if len(callers) == 0 {
		t.Fatal("the cluster saw no call")
	}
	for _, id := range callers {
		if id != "admin" {
			t.Fatalf("cluster saw caller %q, want admin's own identity", id)
		}
	}
}

func TestServeTopicRoutesClusterDown(t *testing.T) {
	pkiDir := initPKI(t)
	a := startAdmin(t, pkiDir, func(c *serveConfig) { c.ClusterAddrs = []string{deadAddr(t)} })
	op := httpsClient(t, pkiDir, "operator")
	t.Cleanup(func() { closeIdle(op) })
	if code, body := call(t, op, http.MethodGet, "https://"+a.addr+"/v1/topics", ""); code != http.StatusServiceUnavailable {
		t.Fatalf("list with the cluster down = %d %s, want 503", code, body)
	}
}

// TestServeIssuesWorkingCertificates: a certificate issued by admin
// authenticates to admin's own listener as its name.
func TestServeIssuesWorkingCertificates(t *testing.T) {
	pkiDir := initPKI(t)
	a := startAdmin(t, pkiDir, nil)
	op := httpsClient(t, pkiDir, "operator")
	t.Cleanup(func() { closeIdle(op) })
	code, body := call(t, op, http.MethodPost, "https://"+a.addr+"/v1/certs", `{"name": "alice"}`)
	if code != http.StatusCreated {
		t.Fatalf("issue = %d %s", code, body)
	}
	var b struct{ Cert, Key, CA string }
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair([]byte(b.Cert), []byte(b.Key))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(b.CA)) {
		t.Fatal("no CA in the bundle")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, Certificates: []tls.Certificate{kp}, ServerName: "127.0.0.1"}}
	alice := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	if code, _ := call(t, alice, http.MethodGet, "https://"+a.addr+"/healthz", ""); code != http.StatusOK {
		t.Fatalf("alice healthz = %d", code)
	}
	// alice holds nothing in the policy: authenticated, not authorized.
	if code, _ := call(t, alice, http.MethodGet, "https://"+a.addr+"/v1/acl/policy", ""); code != http.StatusForbidden {
		t.Fatalf("alice GET policy = %d, want 403", code)
	}
	// Without --ca-key issuing is off.
	b2 := startAdmin(t, pkiDir, func(c *serveConfig) { c.CAKey = "" })
	if code, _ := call(t, op, http.MethodPost, "https://"+b2.addr+"/v1/certs", `{"name": "bob"}`); code != http.StatusServiceUnavailable {
		t.Fatalf("issue without --ca-key = %d, want 503", code)
	}
}

// watcherFor builds an acl.Watcher as identity against admin at addr.
func watcherFor(tb testing.TB, pkiDir, identity, addr string, a *acl.Authorizer, applied chan<- uint64) *acl.Watcher {
	tb.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(pkiDir, identity), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tc, err := rl.ClientConfig("127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	w, err := acl.NewWatcher(a, acl.WatcherOptions{
		AdminURL: "https://" + addr, TLS: tc, Wait: 5 * time.Second,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		OnApply: func(v uint64) { applied <- v },
	}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	return w
}

// TestServeWatchedByNode: a node's acl.Watcher against the real admin
// server sees a rule added through the API within 2 s, keeps it with
// admin stopped, and admin's shutdown does not wait for the held watch.
func TestServeWatchedByNode(t *testing.T) {
	pkiDir := initPKI(t)
	adm := startAdmin(t, pkiDir, nil)
	cache := filepath.Join(t.TempDir(), "policy.cache")
	authz, err := acl.NewAuthorizer(acl.Options{CachePath: cache}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan uint64, 16)
	w := watcherFor(t, pkiDir, "broker-1", adm.addr, authz, applied)
	w.Start()
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})

	op := httpsClient(t, pkiDir, "operator")
	t.Cleanup(func() { closeIdle(op) })
	start := time.Now()
	code, body := call(t, op, http.MethodPost, "https://"+adm.addr+"/v1/acl/rules",
		`{"rules": [{"subject": "alice", "object": "orders", "action": "produce"}]}`)
	if code != http.StatusOK {
		t.Fatalf("add rule = %d %s", code, body)
	}
	select {
	case v := <-applied:
		if v != 2 {
			t.Fatalf("applied version %d, want 2", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("rule not applied by the node within 2s")
	}
	t.Logf("propagated in %s", time.Since(start))
	if ok, _ := authz.Allowed("alice", "orders", acl.ActionProduce); !ok {
		t.Fatal("alice not allowed after propagation")
	}

	closeIdle(op)
	stopStart := time.Now()
	if err := adm.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(stopStart); took > 3*time.Second {
		t.Fatalf("admin shutdown took %s with a held watch", took)
	}
	// Admin is down: the node keeps enforcing, and its cache holds it.
	if ok, _ := authz.Allowed("alice", "orders", acl.ActionProduce); !ok {
		t.Fatal("policy lost with admin down")
	}
	if _, v, err := acl.NewCache(cache).Load(); err != nil || v != 2 {
		t.Fatalf("cache = v%d, %v", v, err)
	}
}
