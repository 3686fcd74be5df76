package console

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/strata-log/strata/pkg/acl"
	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/admin/internal/clusterview"
	"github.com/strata-log/strata/services/admin/internal/httpapi"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// xss is a value that must never reach a page unescaped.
const xss = `<script>alert("x")</script>`

// testPolicy: operator is admin; reader may describe the cluster, every
// topic and the app-* consumer groups, and consume orders; nobody may do
// nothing.
const testPolicy = `p, admin, *, *, allow
p, admin, cluster, *, allow
p, admin, group:*, *, allow
p, reader, cluster, describe, allow
p, reader, *, describe, allow
p, reader, orders, consume, allow
p, reader, group:app-*, describe, allow
g, operator, admin
`

// fakeCluster is a Cluster from fixed metadata and records.
type fakeCluster struct {
	mu      sync.Mutex
	snap    clusterview.Snapshot
	records map[clusterview.PartitionKey][]*stratav1.Record
}

func (f *fakeCluster) Snapshot(_ context.Context, topics ...string) (*clusterview.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.snap
	if len(topics) > 0 {
		s.Topics = nil
		for _, t := range f.snap.Topics {
			for _, n := range topics {
				if t.GetName() == n {
					s.Topics = append(s.Topics, t)
				}
			}
		}
	}
	return &s, nil
}

func (f *fakeCluster) Read(_ context.Context, topic string, partition int32, offset int64, max int32) (*stratav1.ConsumeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	recs := f.records[clusterview.PartitionKey{Topic: topic, Partition: partition}]
	end := int64(len(recs))
	if offset < 0 || offset > end {
		st, err := status.New(codes.OutOfRange, "offset out of range").WithDetails(
			&stratav1.OffsetRange{Requested: offset, LogStartOffset: 0, EndOffset: end})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	out := &stratav1.ConsumeResponse{Topic: topic, Partition: partition, HighWatermark: end, NextOffset: offset}
	for o := offset; o < end && len(out.Records) < int(max); o++ {
		out.Records = append(out.Records, recs[o])
		out.NextOffset = o + 1
	}
	return out, nil
}

// fakeMetrics is a Metrics from fixed points and health.
type fakeMetrics struct {
	points []scrape.Point
	health []scrape.Health
}

func (f *fakeMetrics) Points() []scrape.Point    { return f.points }
func (f *fakeMetrics) Health() []scrape.Health   { return f.health }
func (f *fakeMetrics) Interval() time.Duration   { return 5 * time.Second }
func (f *fakeMetrics) Window() time.Duration     { return 15 * time.Minute }
func (f *fakeMetrics) set(p []scrape.Point)      { f.points = p }
func (f *fakeMetrics) healthy(h []scrape.Health) { f.health = h }

type fixture struct {
	api     *httpapi.API
	console *Console
	ca      *pki.CA
	certs   map[string]*x509.Certificate
	cluster *fakeCluster
	metrics *fakeMetrics
	handler http.Handler
}

var identities = []string{"operator", "reader", "nobody"}

func newFixture(tb testing.TB, cluster *fakeCluster, metrics *fakeMetrics) *fixture {
	tb.Helper()
	lg := zaptest.NewLogger(tb, zaptest.Level(zap.WarnLevel))
	// A CA whose name is markup: certificate fields are escaped too.
	ca, err := pki.CreateCA(pki.CAOptions{CommonName: xss}, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM(), 0o600); err != nil {
		tb.Fatal(err)
	}
	policyPath := httpapi.PolicyPath(filepath.Join(dir, "data"))
	if err := os.MkdirAll(filepath.Dir(policyPath), 0o700); err != nil {
		tb.Fatal(err)
	}
	authz, err := acl.NewAuthorizer(acl.Options{Policy: testPolicy, CachePath: policyPath}, lg)
	if err != nil {
		tb.Fatal(err)
	}
	apiOpts := httpapi.Options{Authorizer: authz, PolicyPath: policyPath, CAFile: caFile, CA: ca,
		IssuedDir: filepath.Join(dir, "issued")}
	if cluster != nil {
		// Groups are on with a cluster, as with --cluster-addrs.
		g := sampleGroups()
		apiOpts.Topics, apiOpts.Groups = g, g
	}
	api, err := httpapi.New(apiOpts, lg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(api.Stop)
	opts := Options{Backend: api}
	if cluster != nil {
		opts.Cluster = cluster
	}
	if metrics != nil {
		opts.Metrics = metrics
	}
	con, err := New(opts, lg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := api.Mount(DefaultBase, con.Routes()); err != nil {
		tb.Fatal(err)
	}
	f := &fixture{api: api, console: con, ca: ca, certs: map[string]*x509.Certificate{}, cluster: cluster, metrics: metrics, handler: api}
	for _, name := range identities {
		kp, err := ca.Issue(pki.IssueRequest{CommonName: name, Profile: pki.ProfileClient})
		if err != nil {
			tb.Fatal(err)
		}
		f.certs[name] = kp.Cert
	}
	return f
}

// do sends a request as identity ("" for none). A POST carries the
// form, this host's Origin and, unless the form has one, the right token.
func (f *fixture) do(tb testing.TB, identity, method, target string, form url.Values) *httptest.ResponseRecorder {
	tb.Helper()
	var body io.Reader
	if form != nil {
		if !form.Has(csrfField) {
			form.Set(csrfField, f.console.csrf.token(identity))
		}
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, "https://admin.test"+target, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if !form.Has("_no_origin") {
			req.Header.Set("Origin", "https://admin.test")
		}
	}
	if identity != "" {
		leaf := f.certs[identity]
		req.TLS = &tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{leaf},
			VerifiedChains: [][]*x509.Certificate{{leaf, f.ca.Certificate()}}}
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec
}

func mustPage(tb testing.TB, rec *httptest.ResponseRecorder, status int, wants ...string) string {
	tb.Helper()
	body := rec.Body.String()
	if rec.Code != status {
		tb.Fatalf("status %d, want %d:\n%s", rec.Code, status, body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		tb.Fatalf("content type %q", ct)
	}
	for _, w := range wants {
		if !strings.Contains(body, w) {
			tb.Fatalf("page lacks %q:\n%s", w, body)
		}
	}
	if strings.Contains(body, xss) || strings.Contains(body, "<script>alert") {
		tb.Fatalf("page carries unescaped markup:\n%s", body)
	}
	return body
}

func partition(p int32, leader int32, isr []int32) *stratav1.PartitionMetadata {
	return &stratav1.PartitionMetadata{Partition: p, LeaderId: leader, LeaderEpoch: 3, Replicas: []int32{1, 2, 3}, Isr: isr,
		Offline: leader < 0, LogStartOffset: 0, LogEndOffset: 5, HighWatermark: 5}
}

// sampleCluster: node 2 is down; orders has an under-replicated and an
// offline partition; a topic named by markup (the fake allows what the
// broker would not) and a record browser full of edge cases.
func sampleCluster() *fakeCluster {
	big := bytes.Repeat([]byte("v"), 10<<20)
	return &fakeCluster{
		snap: clusterview.Snapshot{
			ControllerID: 1, ClusterID: "c-1",
			Brokers: []*stratav1.BrokerInfo{{Id: 1, Address: "b1:9092", Alive: true, RaftRole: "leader"},
				{Id: 2, Address: "b2:9092", Alive: false, RaftRole: "follower"}, {Id: 3, Address: "b3:9092", Alive: true, RaftRole: "follower"}},
			Topics: []*stratav1.TopicMetadata{
				{Name: "orders", Config: &stratav1.TopicConfig{Partitions: 3, ReplicationFactor: 3},
					Partitions: []*stratav1.PartitionMetadata{partition(0, 1, []int32{1, 2, 3}), partition(1, 3, []int32{1, 3}), partition(2, -1, nil)}},
				{Name: xss, Partitions: []*stratav1.PartitionMetadata{partition(0, 1, []int32{1, 2, 3})}},
			},
			Reach: []clusterview.Reach{{Addr: "b1:9092"}, {Addr: "b2:9092", Err: status.Error(codes.Unavailable, "connection refused")}},
		},
		records: map[clusterview.PartitionKey][]*stratav1.Record{
			{Topic: "orders", Partition: 0}: {
				{Offset: 0, Key: []byte("k0"), Value: []byte("hello")},
				{Offset: 1, Key: []byte(xss), Value: []byte(xss), Headers: []*stratav1.Header{{Key: xss, Value: []byte(xss)}}},
				{Offset: 2, Value: []byte{0x00, 0xff, 0x10, 'a', 0x80}},
				{Offset: 3, Value: big},
				{Offset: 4, Key: nil, Value: []byte{}},
			},
		},
	}
}

func TestEveryPageChecksItsRoute(t *testing.T) {
	f := newFixture(t, sampleCluster(), &fakeMetrics{})
	forms := map[string]url.Values{
		"POST /acl/preview": {"policy": {testPolicy}, "version": {"1"}},
		"POST /acl":         {"policy": {testPolicy + "p, x, t, produce, allow\n"}, "version": {"1"}},
		"POST /certs":       {"name": {"walker"}},
	}
	var n int
	err := chi.Walk(f.console.Routes(), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		n++
		name := "orders"
		if strings.HasPrefix(route, "/groups/") {
			name = "app-1"
		}
		path := DefaultBase + regexp.MustCompile(`\{name\}`).ReplaceAllString(route, name)
		path = strings.Replace(path, "/*", "/console.css", 1)
		key := method + " " + route
		t.Run(key, func(t *testing.T) {
			form := forms[key]
			if form.Has("version") {
				_, v := f.api.Policy()
				form.Set("version", fmt.Sprint(v))
			}
			if method == http.MethodPost && form == nil {
				t.Fatalf("no form for %s", key)
			}
			clone := func() url.Values {
				if form == nil {
					return nil
				}
				c := url.Values{}
				for k, v := range form {
					c[k] = v
				}
				return c
			}
			if rec := f.do(t, "", method, path, clone()); rec.Code != http.StatusUnauthorized {
				t.Fatalf("no certificate: %d", rec.Code)
			}
			if strings.HasPrefix(route, "/static/") {
				return // any verified certificate
			}
			mustPage(t, f.do(t, "nobody", method, path, clone()), http.StatusForbidden, "403 Forbidden", "nobody may not see this page")
			rec := f.do(t, "operator", method, path, clone())
			if rec.Code >= 300 {
				t.Fatalf("operator: %d\n%s", rec.Code, rec.Body)
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 12 {
		t.Fatalf("walked %d routes", n)
	}
}

func TestForbiddenPageShowsNoData(t *testing.T) {
	f := newFixture(t, sampleCluster(), &fakeMetrics{})
	for _, path := range []string{"/", "/topics", "/topics/orders", "/topics/orders/records", "/acl", "/certs", "/charts", "/groups", "/groups/app-1"} {
		body := mustPage(t, f.do(t, "nobody", http.MethodGet, DefaultBase+path, nil), http.StatusForbidden)
		for _, leak := range []string{"b1:9092", "orders</a>", "hello", "p, admin", "app-1</a>", "m-a"} {
			if strings.Contains(body, leak) {
				t.Fatalf("%s: the 403 page shows %q", path, leak)
			}
		}
	}
	// reader may describe but not consume xss's topic, nor see certificates.
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/orders/records", nil), http.StatusOK, "hello")
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/"+url.PathEscape(xss)+"/records", nil), http.StatusForbidden)
}

func TestOverviewWithANodeDown(t *testing.T) {
	down, up := false, true
	m := &fakeMetrics{}
	m.healthy([]scrape.Health{
		{Target: scrape.Target{Name: "broker-1", Kind: scrape.KindBroker, Node: 1}, Scraped: true, Up: true},
		{Target: scrape.Target{Name: "broker-2", Kind: scrape.KindBroker, Node: 2}, Scraped: true, Err: "connection refused"},
		{Target: scrape.Target{Name: "replicator-2", Kind: scrape.KindReplicator, Node: 2}, Scraped: true, Up: true, LocalBrokerUp: &down},
		{Target: scrape.Target{Name: "replicator-3", Kind: scrape.KindReplicator, Node: 3}, Scraped: true, Up: true, LocalBrokerUp: &up},
	})
	f := newFixture(t, sampleCluster(), m)
	body := mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/", nil), http.StatusOK,
		`<tr class="down" data-node="2">`, "connection refused", `id="controller">node 1<`, `id="under-replicated">1<`, `id="offline">1<`)
	if !strings.Contains(body, `<b id="identity">reader</b>`) {
		t.Fatal("identity not shown")
	}
}

// downCluster is a Cluster no node of which answers.
type downCluster struct{ fakeCluster }

func (*downCluster) Snapshot(context.Context, ...string) (*clusterview.Snapshot, error) {
	err := status.Error(codes.Unavailable, "connection refused")
	return &clusterview.Snapshot{Reach: []clusterview.Reach{{Addr: "b1:9092", Err: err}}}, fmt.Errorf("%w: %w", clusterview.ErrNoNodeAnswered, err)
}

func TestOverviewWithEveryNodeDown(t *testing.T) {
	f := newFixture(t, nil, nil)
	f.console.opts.Cluster = &downCluster{}
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/", nil), http.StatusOK,
		"No cluster node answered", `id="controller">none`, "connection refused")
}

func TestTopicsMarkStatesAndEscapeNames(t *testing.T) {
	f := newFixture(t, sampleCluster(), nil)
	body := mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics", nil), http.StatusOK,
		"under-replicated</span>", "offline</span>", "&lt;script&gt;", `href="/console/topics/orders"`)
	// The markup topic's link is path-escaped.
	if !strings.Contains(body, "/console/topics/%3Cscript%3E") {
		t.Fatalf("topic link not path-escaped:\n%s", body)
	}
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/"+url.PathEscape(xss), nil), http.StatusOK, "&lt;script&gt;")
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/nope", nil), http.StatusNotFound, "No topic nope")
}

func TestRecordBrowser(t *testing.T) {
	f := newFixture(t, sampleCluster(), nil)
	get := func(q string) string {
		return mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/orders/records?"+q, nil), http.StatusOK)
	}
	t.Run("text, markup escaped", func(t *testing.T) {
		body := get("offset=0&count=2")
		for _, w := range []string{"hello", "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"} {
			if !strings.Contains(body, w) {
				t.Fatalf("lacks %q:\n%s", w, body)
			}
		}
	})
	t.Run("binary shown as hex", func(t *testing.T) {
		body := get("offset=2&count=1")
		if !strings.Contains(body, "00 ff 10 61 80") || !strings.Contains(body, "|...a.|") {
			t.Fatalf("binary value not in hex:\n%s", body)
		}
	})
	t.Run("text forced on binary", func(t *testing.T) {
		if body := get("offset=2&count=1&format=text"); !strings.Contains(body, "\uFFFD") {
			t.Fatalf("invalid UTF-8 not replaced:\n%s", body)
		}
	})
	t.Run("hex forced on text", func(t *testing.T) {
		if body := get("offset=0&count=1&format=hex"); !strings.Contains(body, "68 65 6c 6c 6f") {
			t.Fatalf("text not in hex:\n%s", body)
		}
	})
	t.Run("10 MiB value truncated with a note", func(t *testing.T) {
		body := get("offset=3&count=1")
		if !strings.Contains(body, "Truncated: showing the first 4096 of 10485760 bytes.") {
			t.Fatalf("no truncation note:\n%.2000s", body)
		}
		if len(body) > 64<<10 {
			t.Fatalf("page is %d bytes: the value was not truncated", len(body))
		}
	})
	t.Run("null key, empty value", func(t *testing.T) {
		if body := get("offset=4&count=1"); !strings.Contains(body, ">null<") || !strings.Contains(body, "0 bytes") {
			t.Fatalf("null/empty:\n%s", body)
		}
	})
	t.Run("offset out of range", func(t *testing.T) {
		body := get("offset=99")
		if !strings.Contains(body, "Offset 99 is out of range: this partition holds offsets 0 to 4") {
			t.Fatalf("out of range not explained:\n%s", body)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"offset=x", "partition=-1", "count=1000", "format=raw"} {
			mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/orders/records?"+q, nil), http.StatusBadRequest)
		}
		mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/topics/orders/records?partition=9", nil), http.StatusNotFound)
	})
}

func TestACLEditDiffSaveAndLockout(t *testing.T) {
	f := newFixture(t, nil, nil)
	_, v := f.api.Policy()
	version := fmt.Sprint(v)
	mustPage(t, f.do(t, "operator", http.MethodGet, DefaultBase+"/acl", nil), http.StatusOK, `id="policy-text"`, "p, admin, cluster, *, allow")
	edited := testPolicy + "p, alice, orders, produce, allow\n"
	body := mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl/preview",
		url.Values{"policy": {strings.ReplaceAll(edited, "\n", "\r\n")}, "version": {version}}), http.StatusOK,
		`<span class="dadd">&#43; p, alice, orders, produce, allow</span>`, `id="acl-save"`)
	if strings.Contains(body, "ddel") {
		t.Fatalf("CRLF from the browser shows as a change:\n%s", body)
	}
	if _, now := f.api.Policy(); now != v {
		t.Fatal("the preview saved")
	}
	// An edit that would lock the editor out is refused at preview and save.
	lockout := "p, reader, cluster, describe, allow\n"
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl/preview",
		url.Values{"policy": {lockout}, "version": {version}}), http.StatusConflict, "refusing to lock you out")
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl",
		url.Values{"policy": {lockout}, "version": {version}}), http.StatusConflict, "The policy was not changed")
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl",
		url.Values{"policy": {"p, x"}, "version": {version}}), http.StatusBadRequest, "The policy was not changed")
	// Cross-site and token checks.
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl",
		url.Values{"policy": {edited}, "version": {version}, "_no_origin": {"1"}}), http.StatusForbidden, "cross-site")
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl",
		url.Values{"policy": {edited}, "version": {version}, csrfField: {f.console.csrf.token("reader")}}), http.StatusForbidden, "token")
	if _, now := f.api.Policy(); now != v {
		t.Fatal("a refused save changed the policy")
	}
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl",
		url.Values{"policy": {edited}, "version": {version}}), http.StatusOK, "Saved: the policy is now version")
	if err := f.api.Allowed("alice", "orders", acl.ActionProduce); err != nil {
		t.Fatalf("saved rule not in force: %v", err)
	}
	// A second save from the same (now stale) version is a conflict.
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/acl",
		url.Values{"policy": {edited + "p, bob, orders, produce, allow\n"}, "version": {version}}), http.StatusConflict, "read it again")
}

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		origin, site string
		ok           bool
	}{
		{"https://admin.test", "", true},
		{"https://evil.test", "same-origin", false},
		{"http://admin.test", "", false},
		{"null", "", false},
		{"null", "same-origin", true},
		{"null", "cross-site", false},
		{"", "same-origin", true},
		{"", "cross-site", false},
		{"", "", false},
	} {
		req := httptest.NewRequest(http.MethodPost, "https://admin.test/console/acl", nil)
		if tc.origin != "" {
			req.Header.Set("Origin", tc.origin)
		}
		if tc.site != "" {
			req.Header.Set("Sec-Fetch-Site", tc.site)
		}
		if got := sameOrigin(req); got != tc.ok {
			t.Errorf("Origin %q Sec-Fetch-Site %q: %v, want %v", tc.origin, tc.site, got, tc.ok)
		}
	}
}

func TestCertificatesIssueAndList(t *testing.T) {
	f := newFixture(t, nil, nil)
	mustPage(t, f.do(t, "operator", http.MethodGet, DefaultBase+"/certs", nil), http.StatusOK, "None yet", "&lt;script&gt;")
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/certs", url.Values{"name": {"alice"}, "validity": {"240h"}}),
		http.StatusCreated, "BEGIN CERTIFICATE", "PRIVATE KEY", "Issued a client certificate for <b>alice</b>")
	mustPage(t, f.do(t, "operator", http.MethodGet, DefaultBase+"/certs", nil), http.StatusOK, "<td>alice</td>", "10 days", "expiring")
	mustPage(t, f.do(t, "operator", http.MethodPost, DefaultBase+"/certs", url.Values{"name": {"Bad Name"}}),
		http.StatusBadRequest, "Not issued: name")
}

func TestChartsDrawTheRing(t *testing.T) {
	now := time.Now()
	m := &fakeMetrics{}
	var pts []scrape.Point
	for i := 10; i >= 0; i-- {
		pts = append(pts, scrape.Point{At: now.Add(-time.Duration(i) * 5 * time.Second), Topics: map[string]scrape.Rates{
			"orders": {ProduceRecords: float64(100 * i), ProduceBytes: 1024, LagRecords: 3},
			xss:      {ProduceRecords: 1, LagRecords: -1},
		}})
	}
	m.set(pts)
	f := newFixture(t, sampleCluster(), m)
	body := mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/charts", nil), http.StatusOK,
		"<polyline", "Produced records/s", "&lt;script&gt;", `data-live="/console/charts/live"`)
	if strings.Count(body, "<svg class=\"chart\"") != len(metrics) {
		t.Fatalf("want %d charts:\n%s", len(metrics), body)
	}
	live := f.do(t, "reader", http.MethodGet, DefaultBase+"/charts/live?topic=orders", nil)
	if live.Code != http.StatusOK || !strings.Contains(live.Body.String(), "<polyline") || strings.Contains(live.Body.String(), "<html") {
		t.Fatalf("live fragment: %d\n%s", live.Code, live.Body)
	}
	mustPage(t, f.do(t, "reader", http.MethodGet, DefaultBase+"/charts", nil), http.StatusOK)
	// Without a scrape the page says how to turn it on.
	g := newFixture(t, nil, nil)
	mustPage(t, g.do(t, "reader", http.MethodGet, DefaultBase+"/charts", nil), http.StatusOK, "--metrics-targets")
	mustPage(t, g.do(t, "reader", http.MethodGet, DefaultBase+"/groups", nil), http.StatusServiceUnavailable, "--cluster-addrs")
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, nil, nil)
	rec := f.do(t, "reader", http.MethodGet, DefaultBase+"/groups", nil)
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	css := f.do(t, "nobody", http.MethodGet, DefaultBase+"/static/console.css", nil)
	if css.Code != http.StatusOK || !strings.HasPrefix(css.Header().Get("Content-Type"), "text/css") {
		t.Fatalf("css: %d %q", css.Code, css.Header().Get("Content-Type"))
	}
	if rec := f.do(t, "nobody", http.MethodGet, DefaultBase+"/static/nope.js", nil); rec.Code != http.StatusNotFound {
		t.Fatalf("missing asset: %d", rec.Code)
	}
}

func TestDiffLines(t *testing.T) {
	got := diffLines("a\nb\nc\n", "a\nc\nd\n")
	var s []string
	for _, l := range got {
		s = append(s, l.Op+l.Text)
	}
	if strings.Join(s, ",") != " a,-b, c,+d" {
		t.Fatalf("diff %v", s)
	}
}
