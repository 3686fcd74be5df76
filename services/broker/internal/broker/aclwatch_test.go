package broker

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/adminapi"
	"github.com/strata-log/strata/pkg/pki"
)

// policyAdmin serves the admin policy watch protocol (adminapi.PathPolicy)
// from memory over mutual TLS with the admin certificate. The real admin
// server lives in another module; cmd/strata's end-to-end test runs the
// real binaries together.
type policyAdmin struct {
	mu      sync.Mutex
	text    string
	version uint64
	changed chan struct{}
	polls   chan string // identity of each poll's caller
	closing chan struct{}
	srv     *httptest.Server
	once    sync.Once
}

func startPolicyAdmin(tb testing.TB, certs string) *policyAdmin {
	tb.Helper()
	rl, err := pki.NewReloader(pki.DirFiles(certs, "admin"), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	a := &policyAdmin{text: acl.DefaultPolicy, version: 1, changed: make(chan struct{}),
		polls: make(chan string, 64), closing: make(chan struct{})}
	a.srv = httptest.NewUnstartedServer(a)
	a.srv.TLS = rl.ServerConfig()
	a.srv.EnableHTTP2 = true
	a.srv.StartTLS()
	tb.Cleanup(a.stop)
	return a
}

// stop ends held polls and closes the server; it may be called twice.
func (a *policyAdmin) stop() {
	a.once.Do(func() {
		close(a.closing)
		a.srv.Close()
	})
}

func (a *policyAdmin) publish(text string, version uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.text, a.version = text, version
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *policyAdmin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := pki.Identity(*r.TLS)
	if err != nil || r.URL.Path != adminapi.PathPolicy {
		http.Error(w, "refused", http.StatusForbidden)
		return
	}
	select {
	case a.polls <- id:
	default:
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
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		a.mu.Lock()
		text, version, changed := a.text, a.version, a.changed
		a.mu.Unlock()
		w.Header().Set(adminapi.PolicyVersionHeader, strconv.FormatUint(version, 10))
		if version > after {
			w.Header().Set("Content-Type", "application/json")
			if err := json.NewEncoder(w).Encode(map[string]any{"policy": text, "version": version}); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return
		case <-a.closing:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case <-r.Context().Done():
			return
		}
	}
}

// TestACLAdminWatch: a broker started with acl-admin-url polls admin as
// its own identity, enforces a published policy within 2 s, keeps it with
// admin gone, and enforces it again after its own restart with admin
// still gone.
func TestACLAdminWatch(t *testing.T) {
	certs := initCerts(t)
	adm := startPolicyAdmin(t, certs)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ACLAdminURL = adm.srv.URL
	ctx := ctxT(t)

	b := startTLSBroker(t, cfg)
	select {
	case id := <-adm.polls:
		if id != "broker-1" {
			t.Fatalf("admin polled by %q, want broker-1", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker never polled admin")
	}
	createTopic(t, dialAs(t, b, certs, "operator"), "orders-1", nil)
	alice := dialAs(t, b, certs, "alice")
	wantCode(t, produce(ctx, alice, "orders-1"), codes.PermissionDenied)

	adm.publish(acl.DefaultPolicy+"p, alice, orders-*, produce, allow\n", 2)
	start := time.Now()
	eventually(t, 2*time.Second, func() bool { _, v := b.Authorizer().Policy(); return v == 2 })
	t.Logf("policy in force %s after publish", time.Since(start))
	if err := produce(ctx, alice, "orders-1"); err != nil {
		t.Fatalf("alice Produce after the policy change: %v", err)
	}

	adm.stop()
	if err := produce(ctx, alice, "orders-1"); err != nil {
		t.Fatalf("alice Produce with admin gone: %v", err)
	}
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	b2 := startTLSBroker(t, cfg)
	if _, v := b2.Authorizer().Policy(); v != 2 {
		t.Fatalf("restarted broker enforces v%d, want the cached v2", v)
	}
	if err := produce(ctx, dialAs(t, b2, certs, "alice"), "orders-1"); err != nil {
		t.Fatalf("alice Produce after restart with admin gone: %v", err)
	}
	wantCode(t, produce(ctx, dialAs(t, b2, certs, "bob"), "orders-1"), codes.PermissionDenied)
}
