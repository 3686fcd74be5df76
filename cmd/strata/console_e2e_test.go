package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/strata-log/strata/pkg/adminapi"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// The web console in a real headless Chromium (Debian's chromium): a real
// strata-admin and mTLS strata-broker, data put in through the CLI, and a
// browser that presents the operator's client certificate, exported with
// `strata cert export --p12` and imported into an NSS database under a
// temporary HOME; a Chromium policy (AutoSelectCertificateForUrls) makes
// it pick that certificate without a prompt. Every page is loaded,
// checked against the admin API, and screenshotted into
// $STRATA_CONSOLE_SCREENSHOTS (default test/output/console, gitignored).

// chromiumPolicyDir is where Debian's chromium reads managed policies.
const chromiumPolicyDir = "/etc/chromium/policies/managed"

// needTool returns the path of a tool the browser test needs. Missing, it
// fails the test under CI (CI=true: .ci/run installs it) and skips it
// elsewhere.
func needTool(tb testing.TB, names ...string) string {
	tb.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not installed (apt-get install -y --no-install-recommends chromium libnss3-tools)", names[0])
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// screenshotDir is where the screenshots go.
func screenshotDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("STRATA_CONSOLE_SCREENSHOTS")
	if dir == "" {
		root, err := filepath.Abs("../..")
		if err != nil {
			tb.Fatal(err)
		}
		dir = filepath.Join(root, "test", "output", "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// browser is one headless Chromium with one client identity.
type browser struct {
	ctx     context.Context
	base    string
	shots   string
	dialogs *atomic.Int32
}

// newBrowser starts Chromium with an NSS database under a fresh HOME that
// holds the identity of p12 (its password pw) and trusts the cluster CA.
func newBrowser(tb testing.TB, chromium, certutil, pk12util, p12, pw, caFile, base, shots string) *browser {
	tb.Helper()
	home := tb.TempDir()
	nss := "sql:" + filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(filepath.Join(home, ".pki", "nssdb"), 0o700); err != nil {
		tb.Fatal(err)
	}
	for _, cmd := range [][]string{
		{certutil, "-N", "-d", nss, "--empty-password"},
		{pk12util, "-i", p12, "-d", nss, "-W", pw},
		{certutil, "-A", "-n", "strata-ca", "-t", "C,,", "-i", caFile, "-d", nss},
	} {
		if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
			tb.Fatalf("%s: %v\n%s", strings.Join(cmd, " "), err, out)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME="+home),
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{ctx: ctx, base: base, shots: shots, dialogs: &atomic.Int32{}}
	// Start the browser, and count every JavaScript dialog (an alert is
	// what escaped markup would raise); each is dismissed.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	go func() {
		for _, err := range chromedp.Events(ctx, page.JavascriptDialogOpening) {
			if err != nil {
				return
			}
			b.dialogs.Add(1)
			if _, err := chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false}); err != nil {
				return
			}
		}
	}()
	return b
}

// run runs steps with a bound.
func (b *browser) run(tb testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// open loads a console path and waits for sel.
func (b *browser) open(tb testing.TB, path, sel string) {
	tb.Helper()
	b.run(tb, "open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(sel))
}

// submit clicks a form's button and waits for the next page's sel.
func (b *browser) submit(tb testing.TB, button, sel string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(button))); err != nil {
		tb.Fatalf("click %s: %v", button, err)
	}
	wctx, wcancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer wcancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(sel)); err != nil {
		tb.Fatalf("after %s, no %s: %v; the page says:\n%s", button, sel, err, b.text(tb, "body"))
	}
}

func (b *browser) text(tb testing.TB, sel string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.TextContent(sel))
	if err != nil {
		tb.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

func eval[T any](tb testing.TB, b *browser, js string) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// shot saves a screenshot of the whole page as name.png.
func (b *browser) shot(tb testing.TB, name string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// apiGet calls the admin API as the operator.
func apiGet(tb testing.TB, c *http.Client, url string, v any) {
	tb.Helper()
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		tb.Fatal(err)
	}
}

func operatorClient(tb testing.TB, pkiDir string) *http.Client {
	tb.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "operator.pem"), filepath.Join(pkiDir, "operator-key.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pkiDir, "ca.pem"))
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS13}}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the real services and chromium")
	}
	chromium := needTool(t, "chromium", "chromium-browser")
	certutil, pk12util := needTool(t, "certutil"), needTool(t, "pk12util")
	if err := os.MkdirAll(chromiumPolicyDir, 0o755); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium policy directory: %v", err)
		}
		t.Skipf("chromium policy directory: %v", err)
	}
	shots := screenshotDir(t)

	// Admin scrapes the broker's /metrics every second for the charts.
	dir := t.TempDir()
	c := &secureCluster{dir: dir, pki: filepath.Join(dir, "pki"), adminAddr: freeAddr(t), brokers: freeAddr(t),
		adminData: filepath.Join(dir, "admin"), brkData: filepath.Join(dir, "broker"), ctxFile: filepath.Join(dir, "contexts.json")}
	metricsAddr := freeAddr(t)
	if out, err := exec.Command(adminBin, "pki", "init", "--out", c.pki, "--ca-name", "e2e", "--node", "1").CombinedOutput(); err != nil {
		t.Fatalf("pki init: %v\n%s", err, out)
	}
	startProc(t, "strata-admin", c.adminAddr, adminBin, "serve",
		"--listen", c.adminAddr, "--data-dir", c.adminData,
		"--tls-cert", filepath.Join(c.pki, "admin.pem"), "--tls-key", filepath.Join(c.pki, "admin-key.pem"),
		"--tls-ca", filepath.Join(c.pki, "ca.pem"), "--ca-key", filepath.Join(c.pki, "ca-key.pem"),
		"--cluster-addrs", c.brokers, "--metrics-targets", "broker-1="+metricsAddr, "--scrape-interval", "1s")
	broker := startProc(t, "strata-broker", c.brokers, brokerBin,
		"--data-dir", c.brkData, "--listen", c.brokers, "--metrics-listen", metricsAddr, "--log-level", "warn",
		"--max-recv-msg-bytes", "33554432", "--max-send-msg-bytes", "33554432",
		"--tls-cert", filepath.Join(c.pki, "broker-1.pem"), "--tls-key", filepath.Join(c.pki, "broker-1-key.pem"),
		"--tls-ca", filepath.Join(c.pki, "ca.pem"), "--acl-admin-url", "https://"+c.adminAddr)
	mustCLI(t, c.ctxFile, "", "context", "set", "op", "--brokers", c.brokers, "--admin", "https://"+c.adminAddr,
		"--ca", filepath.Join(c.pki, "ca.pem"), "--cert", filepath.Join(c.pki, "operator.pem"), "--key", filepath.Join(c.pki, "operator-key.pem"))
	mustCLI(t, c.ctxFile, "", "context", "use", "op")
	base := "https://" + c.adminAddr + "/console"

	// Data, through the CLI: a topic with text, markup and binary
	// records, one with a 10 MiB record, and two users.
	mustCLI(t, c.ctxFile, "", "topic", "create", "orders", "--partitions", "3")
	mustCLI(t, c.ctxFile, "", "topic", "create", "big", "--config", "max.record.bytes=12582912")
	mustCLI(t, c.ctxFile, "k1:hello console\nk2:<script>alert(\"xss\")</script>\nk3:\x00\x01\x02\xff\xfebinary\n",
		"produce", "orders", "--partition", "0", "--key-delim", ":")
	mustCLI(t, c.ctxFile, strings.Repeat("x", 10<<20)+"\n", "produce", "big")
	c.user(t, "alice")
	c.user(t, "mallory")

	// Each identity as a PKCS#12 file, as a person would export it.
	export := func(name string) string {
		p12 := filepath.Join(dir, name+".p12")
		cmd := exec.Command(strataBin, "--context", name, "cert", "export", "--p12", p12)
		cmd.Env = append(os.Environ(), "STRATA_CONTEXT_FILE="+c.ctxFile, "STRATA_P12_PASSWORD=console-test")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cert export %s: %v\n%s", name, err, out)
		}
		return p12
	}
	mustCLI(t, c.ctxFile, "", "context", "set", "operator", "--brokers", c.brokers, "--admin", "https://"+c.adminAddr,
		"--ca", filepath.Join(c.pki, "ca.pem"), "--cert", filepath.Join(c.pki, "operator.pem"), "--key", filepath.Join(c.pki, "operator-key.pem"))

	// The policy that makes Chromium present the only certificate its NSS
	// database holds to this admin, without a prompt.
	policy := filepath.Join(chromiumPolicyDir, fmt.Sprintf("strata-console-test-%d.json", os.Getpid()))
	rule, err := json.Marshal(map[string]any{"pattern": "https://" + c.adminAddr, "filter": map[string]any{}})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(map[string]any{"AutoSelectCertificateForUrls": []string{string(rule)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policy, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(policy); err != nil {
			t.Error(err)
		}
	})
	caFile := filepath.Join(c.pki, "ca.pem")
	op := newBrowser(t, chromium, certutil, pk12util, export("operator"), "console-test", caFile, base, shots)
	api := operatorClient(t, c.pki)

	t.Run("overview", func(t *testing.T) {
		op.open(t, "/", "#nodes")
		if id := op.text(t, "#identity"); id != "operator" {
			t.Fatalf("signed in as %q", id)
		}
		if n := op.text(t, "#topic-count"); n != "2" {
			t.Fatalf("topic count %q", n)
		}
		if alive := op.text(t, `tr[data-node="1"]`); !strings.Contains(alive, "alive") {
			t.Fatalf("node 1: %q", alive)
		}
		op.shot(t, "overview")
	})
	t.Run("topics match the API", func(t *testing.T) {
		var list struct {
			Topics []struct {
				Name       string `json:"name"`
				Partitions []struct {
					Partition     int32  `json:"partition"`
					HighWatermark string `json:"high_watermark"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		apiGet(t, api, "https://"+c.adminAddr+"/v1/topics", &list)
		op.open(t, "/topics", "#topics")
		if len(list.Topics) != 2 {
			t.Fatalf("API lists %d topics", len(list.Topics))
		}
		for _, tp := range list.Topics {
			rows := eval[int](t, op, fmt.Sprintf(`document.querySelectorAll('tr[data-topic=%q]').length`, tp.Name))
			if rows != len(tp.Partitions) {
				t.Fatalf("topic %s: %d rows, the API says %d partitions", tp.Name, rows, len(tp.Partitions))
			}
			for _, p := range tp.Partitions {
				hw := eval[string](t, op, fmt.Sprintf(`document.querySelector('tr[data-topic=%q][data-partition="%d"]').children[7].textContent`, tp.Name, p.Partition))
				if hw != p.HighWatermark {
					t.Fatalf("%s/%d: high watermark %q on the page, %q from the API", tp.Name, p.Partition, hw, p.HighWatermark)
				}
			}
		}
		op.shot(t, "topics")
		op.open(t, "/topics/orders", "#partitions")
		op.shot(t, "topic")
	})
	t.Run("record browser", func(t *testing.T) {
		op.open(t, "/topics/orders/records?partition=0&offset=0", "#records")
		cells := eval[[]string](t, op, `Array.from(document.querySelectorAll('#records td.value pre')).map(e => e.textContent)`)
		if len(cells) != 3 || cells[0] != "hello console" || cells[1] != `<script>alert("xss")</script>` {
			t.Fatalf("values %q", cells)
		}
		if !strings.Contains(cells[2], "00 01 02 ff fe 62") {
			t.Fatalf("binary value not in hex: %q", cells[2])
		}
		if n := op.dialogs.Load(); n != 0 {
			t.Fatalf("%d JavaScript dialogs opened: a record's markup ran", n)
		}
		op.shot(t, "records")
		op.open(t, "/topics/big/records?partition=0&offset=0", "#records")
		if note := op.text(t, ".truncated"); !strings.Contains(note, "showing the first 4096 of 10485760 bytes") {
			t.Fatalf("10 MiB value: %q", note)
		}
		op.shot(t, "records-10mib")
		op.open(t, "/topics/orders/records?partition=0&offset=999", "#out-of-range")
		if msg := op.text(t, "#out-of-range"); !strings.Contains(msg, "Offset 999 is out of range") {
			t.Fatalf("out of range: %q", msg)
		}
		op.shot(t, "records-out-of-range")
	})
	t.Run("charts", func(t *testing.T) {
		// Produce for a few scrapes, so the rates have points to draw.
		deadline := time.Now().Add(20 * time.Second)
		for {
			mustCLI(t, c.ctxFile, strings.Repeat("load\n", 200), "produce", "orders")
			op.open(t, "/charts", "#charts")
			if eval[bool](t, op, `Array.from(document.querySelectorAll('#charts figure')).some(f =>
				f.querySelector('figcaption').textContent.startsWith('Produced records/s') &&
				f.querySelector('polyline') !== null && f.querySelector('.legend').textContent.includes('orders'))`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no produce line for orders within 20s")
			}
			time.Sleep(time.Second) // the next scrape: admin scrapes every second
		}
		op.shot(t, "charts")
	})
	t.Run("consumer groups", func(t *testing.T) {
		// A group with an offset committed on orders/0 and a live member.
		groups := stratav1.NewGroupsClient(operatorConn(t, c.pki, c.brokers))
		coordinatorUp(t, groups, "orders-app")
		commitWithoutMember(t, groups, "orders-app", "orders", map[int32]int64{0: 1})
		m := joinGroup(t, groups, "orders-app", "orders")
		op.open(t, "/groups", "#groups")
		if state, members := op.text(t, `tr[data-group="orders-app"] .badge`), op.text(t, `tr[data-group="orders-app"] td.num`); state != "stable" || members != "1" {
			t.Fatalf("orders-app: state %q, %q members", state, members)
		}
		op.shot(t, "groups")
		var g adminapi.Group
		apiGet(t, api, "https://"+c.adminAddr+adminapi.GroupPath("orders-app"), &g)
		op.open(t, "/groups/orders-app", "#group-partitions")
		if id := op.text(t, `#members tr[data-member] code`); id != m.id {
			t.Fatalf("member %q, want %q", id, m.id)
		}
		if len(g.Partitions) != 3 || g.Lag < 2 {
			t.Fatalf("the API describes %+v", g)
		}
		for _, p := range g.Partitions {
			lag := op.text(t, fmt.Sprintf(`tr[data-topic="orders"][data-partition="%d"] td.lag`, p.Partition))
			want := "unknown"
			if p.Lag >= 0 {
				want = fmt.Sprint(p.Lag)
			}
			if strings.ReplaceAll(lag, ",", "") != want {
				t.Fatalf("orders/%d: lag %q on the page, %d from the API", p.Partition, lag, p.Lag)
			}
		}
		op.shot(t, "group")
		m.leave(t)
	})
	t.Run("certificates", func(t *testing.T) {
		op.open(t, "/certs", "#certs")
		if list := op.text(t, "#certs"); !strings.Contains(list, "alice") || !strings.Contains(list, "mallory") {
			t.Fatalf("issued list lacks the CLI's certificates: %q", list)
		}
		op.shot(t, "certs")
		op.run(t, "fill the issue form", chromedp.SetValue(`#cert-issue input[name="name"]`, "carol"),
			chromedp.SetValue(`#cert-issue input[name="validity"]`, "720h"))
		op.submit(t, "#issue", "#issued")
		if got := op.text(t, "#issued"); !strings.Contains(got, "carol") || !strings.Contains(got, "BEGIN CERTIFICATE") {
			t.Fatalf("issued: %q", got)
		}
		op.shot(t, "certs-issued")
	})
	t.Run("a user without the ACL sees a 403 page", func(t *testing.T) {
		m := newBrowser(t, chromium, certutil, pk12util, export("mallory"), "console-test", caFile, base, shots)
		for _, path := range []string{"/", "/topics", "/topics/orders/records", "/groups", "/acl", "/certs"} {
			m.open(t, path, "#error")
			if got := m.text(t, "#error"); !strings.Contains(got, "403 Forbidden") || strings.Contains(m.text(t, "main"), "hello console") {
				t.Fatalf("%s: %q", path, got)
			}
		}
		m.open(t, "/topics", "#error")
		if body := m.text(t, "body"); strings.Contains(body, "orders") {
			t.Fatalf("the 403 page shows data: %q", body)
		}
		m.shot(t, "forbidden")
	})
	t.Run("an ACL rule saved through the page is enforced by the broker within 2s", func(t *testing.T) {
		produce := func() error { return c.as(t, "alice", "from alice\n", "produce", "orders") }
		wantDenied(t, produce(), "alice before the edit")
		op.open(t, "/acl", "#policy-text")
		op.shot(t, "acl")
		current := eval[string](t, op, `document.querySelector('#policy-text').value`)
		// An edit that would lock the operator out is refused.
		op.run(t, "edit", chromedp.SetValue("#policy-text", strings.ReplaceAll(current, "g, operator, admin\n", "")))
		op.submit(t, "#preview", "#refusal")
		if msg := op.text(t, "#refusal"); !strings.Contains(msg, "lock you out") {
			t.Fatalf("lockout: %q", msg)
		}
		op.shot(t, "acl-lockout-refused")
		op.open(t, "/acl", "#policy-text")
		op.run(t, "edit", chromedp.SetValue("#policy-text", current+"p, alice, cluster, describe, allow\np, alice, orders, produce, allow\n"))
		op.submit(t, "#preview", "#diff")
		if diff := op.text(t, "#diff"); !strings.Contains(diff, "+ p, alice, orders, produce, allow") {
			t.Fatalf("diff: %q", diff)
		}
		op.shot(t, "acl-diff")
		op.submit(t, "#save", "#saved")
		took := within(t, 2*time.Second, "alice produce after the console's save", produce)
		t.Logf("the broker allowed alice %s after the page said saved", took)
		op.shot(t, "acl-saved")
	})
	t.Run("a node down while the overview loads", func(t *testing.T) {
		broker.stop(t)
		deadline := time.Now().Add(10 * time.Second)
		for {
			op.open(t, "/", "#nodes")
			// Admin's connection to it failed, and its next scrape did too.
			if strings.Contains(op.text(t, "#reach"), "no") && strings.Contains(op.text(t, `tr[data-node="1"]`), "down") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the overview does not show the broker down: %q", op.text(t, "main"))
			}
			time.Sleep(500 * time.Millisecond) // the next scrape: admin scrapes every second
		}
		if notice := op.text(t, "#notice"); !strings.Contains(notice, "No cluster node answered") {
			t.Fatalf("notice %q", notice)
		}
		op.shot(t, "overview-node-down")
	})
	entries, err := os.ReadDir(shots)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	t.Logf("screenshots in %s: %s", shots, strings.Join(names, " "))
	if n := op.dialogs.Load(); n != 0 {
		t.Fatalf("%d JavaScript dialogs opened", n)
	}
}
