package acl

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/pki"
)

// fakeAdmin serves the policy watch protocol (see adminapi.PathPolicy) from
// memory, and can be told to fail or to misbehave.
type fakeAdmin struct {
	mu          sync.Mutex
	text        string
	version     uint64
	changed     chan struct{} // closed and replaced on publish
	failStatus  int           // when non-zero, every poll answers it
	ignoreAfter bool          // answer 200 with the current policy at once

	polls    chan uint64   // the after of each poll (dropped when full)
	shutdown chan struct{} // closed to end held polls before the server stops
}

func newFakeAdmin(text string, version uint64) *fakeAdmin {
	return &fakeAdmin{text: text, version: version, changed: make(chan struct{}),
		polls: make(chan uint64, 1024), shutdown: make(chan struct{})}
}

func (f *fakeAdmin) publish(text string, version uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.text, f.version = text, version
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeAdmin) setFail(status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failStatus = status
}

func (f *fakeAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != adminapi.PathPolicy || r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	after, err := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	if err != nil {
		http.Error(w, "bad after", http.StatusBadRequest)
		return
	}
	wait, err := time.ParseDuration(r.URL.Query().Get("wait"))
	if err != nil {
		http.Error(w, "bad wait", http.StatusBadRequest)
		return
	}
	select {
	case f.polls <- after:
	default:
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		text, version, changed, fail, ignore := f.text, f.version, f.changed, f.failStatus, f.ignoreAfter
		f.mu.Unlock()
		w.Header().Set(adminapi.PolicyVersionHeader, strconv.FormatUint(version, 10))
		if fail != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(fail)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "induced failure"})
			return
		}
		if version > after || ignore {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"policy": text, "version": version})
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-f.shutdown:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// watchFixture is a fake admin over mutual TLS and the PKI directory.
type watchFixture struct {
	admin *fakeAdmin
	srv   *httptest.Server
	dir   string
}

func startFakeAdmin(t *testing.T, text string, version uint64) *watchFixture {
	t.Helper()
	lg := zaptest.NewLogger(t)
	dir := filepath.Join(t.TempDir(), "pki")
	if _, err := pki.InitCluster(dir, pki.ClusterOptions{CAName: "test-ca", Nodes: []string{"1"}}, lg); err != nil {
		t.Fatal(err)
	}
	rl, err := pki.NewReloader(pki.DirFiles(dir, "admin"), pki.ReloaderOptions{}, lg)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeAdmin(text, version)
	srv := httptest.NewUnstartedServer(f)
	srv.TLS = rl.ServerConfig()
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(func() {
		close(f.shutdown)
		srv.Close()
	})
	return &watchFixture{admin: f, srv: srv, dir: dir}
}

// options returns watcher options as broker-1, with fast backoff and a
// channel receiving every applied version.
func (fx *watchFixture) options(t *testing.T) (WatcherOptions, <-chan uint64) {
	t.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(fx.dir, "broker-1"), pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := rl.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan uint64, 16)
	return WatcherOptions{
		AdminURL:   fx.srv.URL,
		TLS:        tc,
		Wait:       2 * time.Second,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
		OnApply:    func(v uint64) { applied <- v },
	}, applied
}

func startWatcher(t *testing.T, a *Authorizer, opts WatcherOptions) *Watcher {
	t.Helper()
	w, err := NewWatcher(a, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	t.Cleanup(func() {
		if err := w.Close(); err != nil {
			t.Error(err)
		}
	})
	return w
}

func waitApplied(t *testing.T, applied <-chan uint64, want uint64) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case v := <-applied:
			if v == want {
				return
			}
			if v > want {
				t.Fatalf("applied version %d, want %d", v, want)
			}
		case <-deadline:
			t.Fatalf("version %d not applied within 5s", want)
		}
	}
}

// waitPolls waits until the fake admin has seen n more polls.
func waitPolls(t *testing.T, f *fakeAdmin, n int) []uint64 {
	t.Helper()
	var got []uint64
	deadline := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case a := <-f.polls:
			got = append(got, a)
		case <-deadline:
			t.Fatalf("saw %d polls within 5s, want %d", len(got), n)
		}
	}
	return got
}

const (
	watchV1 = "p, admin, cluster, *, allow\n"
	watchV2 = watchV1 + "p, alice, orders, produce, allow\n"
	watchV3 = watchV1 + "p, bob, orders, produce, allow\n"
)

func allowed(t *testing.T, a *Authorizer, sub string) bool {
	t.Helper()
	ok, err := a.Allowed(sub, "orders", ActionProduce)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestWatcherAppliesNewerPolicyAndCachesIt(t *testing.T) {
	fx := startFakeAdmin(t, watchV1, 1)
	cache := filepath.Join(t.TempDir(), "policy.cache")
	a, err := NewAuthorizer(Options{Policy: watchV1, CachePath: cache}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts, applied := fx.options(t)
	startWatcher(t, a, opts)
	if got := waitPolls(t, fx.admin, 1); got[0] != 1 {
		t.Fatalf("first poll after=%d, want the version in force (1)", got[0])
	}

	start := time.Now()
	fx.admin.publish(watchV2, 2)
	waitApplied(t, applied, 2)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("policy applied after %s, want within 2s", took)
	}
	if !allowed(t, a, "alice") {
		t.Fatal("alice denied after v2 was applied")
	}
	text, v, err := NewCache(cache).Load()
	if err != nil || v != 2 || text != watchV2 {
		t.Fatalf("cache = v%d %q, %v; want v2", v, text, err)
	}
	// The next poll asks for what follows 2.
	for {
		if got := waitPolls(t, fx.admin, 1); got[0] == 2 {
			break
		}
	}
}

func TestWatcherKeepsLastGoodPolicyWhileAdminFails(t *testing.T) {
	fx := startFakeAdmin(t, watchV2, 2)
	a := newAuthorizer(t, watchV1)
	opts, applied := fx.options(t)
	startWatcher(t, a, opts)
	waitApplied(t, applied, 2)

	fx.admin.setFail(http.StatusServiceUnavailable)
	fx.admin.publish(watchV3, 3)
	// Several failed polls, each answered 503: the watcher backs off and
	// retries, and v2 stays in force.
	waitPolls(t, fx.admin, 3)
	if _, v := a.Policy(); v != 2 || !allowed(t, a, "alice") || allowed(t, a, "bob") {
		t.Fatalf("policy changed while admin failed: v%d", v)
	}

	fx.admin.setFail(0)
	waitApplied(t, applied, 3)
	if !allowed(t, a, "bob") || allowed(t, a, "alice") {
		t.Fatal("v3 not enforced after admin recovered")
	}
}

func TestWatcherAdminUnreachable(t *testing.T) {
	fx := startFakeAdmin(t, watchV1, 1)
	opts, _ := fx.options(t)
	// A port nothing listens on: every poll fails to connect.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.AdminURL = "https://" + ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	a := newAuthorizer(t, watchV2)
	w, err := NewWatcher(a, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	if err := w.Run(context.Background()); !errors.Is(err, ErrWatcherRunning) {
		t.Fatalf("Run after Start = %v, want ErrWatcherRunning", err)
	}
	start := time.Now()
	if err := w.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s while backing off", took)
	}
	if text, v := a.Policy(); v != 1 || text != watchV2 {
		t.Fatalf("policy changed with admin unreachable: v%d", v)
	}
}

func TestWatcherNeverAppliesOlderVersion(t *testing.T) {
	fx := startFakeAdmin(t, watchV2, 3)
	a := newAuthorizer(t, watchV1)
	if err := a.ReplaceAt(watchV1, 5); err != nil {
		t.Fatal(err)
	}
	opts, applied := fx.options(t)
	startWatcher(t, a, opts)

	t.Run("admin behind answers 304", func(t *testing.T) {
		if got := waitPolls(t, fx.admin, 1); got[0] != 5 {
			t.Fatalf("poll after=%d, want 5", got[0])
		}
	})
	t.Run("admin ignoring after sends an older policy", func(t *testing.T) {
		fx.admin.mu.Lock()
		fx.admin.ignoreAfter = true
		fx.admin.mu.Unlock()
		fx.admin.publish(watchV2, 4)
		waitPolls(t, fx.admin, 3)
		if _, v := a.Policy(); v != 5 || allowed(t, a, "alice") {
			t.Fatalf("older policy applied: v%d", v)
		}
		fx.admin.mu.Lock()
		fx.admin.ignoreAfter = false
		fx.admin.mu.Unlock()
	})
	t.Run("a newer version is applied", func(t *testing.T) {
		fx.admin.publish(watchV3, 6)
		waitApplied(t, applied, 6)
	})
}

func TestWatcherSkipsInvalidPolicy(t *testing.T) {
	fx := startFakeAdmin(t, watchV1, 1)
	a := newAuthorizer(t, watchV1)
	opts, applied := fx.options(t)
	startWatcher(t, a, opts)
	waitPolls(t, fx.admin, 1)

	fx.admin.publish("p, alice, orders, fly, allow\n", 2)
	// After the refused v2 the watcher asks for what follows 2, so it
	// does not fetch the bad policy again and again.
	for {
		if got := waitPolls(t, fx.admin, 1); got[0] == 2 {
			break
		}
	}
	if _, v := a.Policy(); v != 1 {
		t.Fatalf("invalid policy applied: v%d", v)
	}
	fx.admin.publish(watchV2, 3)
	waitApplied(t, applied, 3)
	if !allowed(t, a, "alice") {
		t.Fatal("v3 not enforced")
	}
}

// TestWatcherCloseEndsHeldPoll: Close returns promptly while a poll is
// held open by admin; goleak (TestMain) proves no goroutine is left.
func TestWatcherCloseEndsHeldPoll(t *testing.T) {
	fx := startFakeAdmin(t, watchV1, 1)
	a := newAuthorizer(t, watchV1)
	opts, _ := fx.options(t)
	opts.Wait = time.Minute
	w, err := NewWatcher(a, opts, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	w.Start() // a second Start does nothing
	waitPolls(t, fx.admin, 1)
	start := time.Now()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Close took %s", took)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

func TestNewWatcherRefusesBadOptions(t *testing.T) {
	fx := startFakeAdmin(t, watchV1, 1)
	good, _ := fx.options(t)
	a := newAuthorizer(t, watchV1)
	tests := []struct {
		name string
		mod  func(*WatcherOptions)
		want string
	}{
		{"plain http", func(o *WatcherOptions) { o.AdminURL = "http://127.0.0.1:9443" }, "https"},
		{"no host", func(o *WatcherOptions) { o.AdminURL = "https://" }, "no host"},
		{"path", func(o *WatcherOptions) { o.AdminURL = "https://127.0.0.1:9443/v1" }, "only https://host:port"},
		{"no tls", func(o *WatcherOptions) { o.TLS = nil }, "TLS"},
		{"wait too long", func(o *WatcherOptions) { o.Wait = 2 * time.Minute }, "wait"},
		{"backoff inverted", func(o *WatcherOptions) { o.MinBackoff, o.MaxBackoff = time.Second, time.Millisecond }, "backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good
			tt.mod(&o)
			_, err := NewWatcher(a, o, nil)
			if !errors.Is(err, ErrBadWatcherOptions) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewWatcher = %v, want ErrBadWatcherOptions mentioning %q", err, tt.want)
			}
		})
	}
	if _, err := NewWatcher(nil, good, nil); !errors.Is(err, ErrBadWatcherOptions) {
		t.Fatalf("nil authorizer: %v", err)
	}
}
