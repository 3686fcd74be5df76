package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/strata-log/strata/pkg/pki"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// TestServeMountsTheConsole: serve mounts the console on its HTTPS
// listener behind the client-certificate guard, scrapes --metrics-targets
// (one answering, one down) and still renders the overview with a node
// down and no cluster configured.
func TestServeMountsTheConsole(t *testing.T) {
	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `strata_broker_produced_records_total{topic="orders"} 7`)
	}))
	defer metrics.Close()
	pkiDir := initPKI(t)
	a := startAdmin(t, pkiDir, func(c *serveConfig) {
		var err error
		c.MetricsTargets, err = scrape.ParseTargets(fmt.Sprintf("broker-1=%s,broker-2=%s",
			strings.TrimPrefix(metrics.URL, "http://"), deadAddr(t)))
		if err != nil {
			t.Fatal(err)
		}
		c.ScrapeInterval = time.Second
	})
	op := httpsClient(t, pkiDir, "operator")
	code, body := call(t, op, http.MethodGet, "https://"+a.addr+"/console/", "")
	if code != http.StatusOK || !strings.Contains(string(body), "Admin runs without --cluster-addrs") ||
		!strings.Contains(string(body), `data-node="2"`) {
		t.Fatalf("overview: %d\n%s", code, body)
	}
	code, body = call(t, op, http.MethodGet, "https://"+a.addr+"/console/charts", "")
	if code != http.StatusOK || !strings.Contains(string(body), "broker-1") {
		t.Fatalf("charts: %d\n%s", code, body)
	}
	// A certificate the policy grants nothing gets the 403 page.
	issueClient(t, op, a.addr, pkiDir, "mallory")
	code, body = call(t, httpsClient(t, pkiDir, "mallory"), http.MethodGet, "https://"+a.addr+"/console/topics", "")
	if code != http.StatusForbidden || !strings.Contains(string(body), "403 Forbidden") {
		t.Fatalf("mallory: %d\n%s", code, body)
	}
}

func TestServeUsageOfConsoleFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--metrics-targets", "admin-1=a:1"},
		{"--metrics-targets", "broker-1=nohost"},
		{"--scrape-interval", "10ms"},
	} {
		full := append([]string{"--data-dir", "d", "--tls-cert", "c", "--tls-key", "k", "--tls-ca", "ca"}, args...)
		if _, err := parseServe(full, func(string) string { return "" }, &strings.Builder{}); err == nil {
			t.Errorf("parseServe(%v) accepted it", args)
		}
	}
}

// issueClient has admin issue a client certificate for name (as op) and
// writes it into pkiDir as pki.DirFiles names it.
func issueClient(tb testing.TB, op *http.Client, addr, pkiDir, name string) {
	tb.Helper()
	code, body := call(tb, op, http.MethodPost, "https://"+addr+"/v1/certs", `{"name": "`+name+`"}`)
	if code != http.StatusCreated {
		tb.Fatalf("issue %s: %d %s", name, code, body)
	}
	var b struct{ Cert, Key string }
	if err := json.Unmarshal(body, &b); err != nil {
		tb.Fatal(err)
	}
	files := pki.DirFiles(pkiDir, name)
	if err := os.WriteFile(files.CertFile, []byte(b.Cert), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(files.KeyFile, []byte(b.Key), 0o600); err != nil {
		tb.Fatal(err)
	}
}
