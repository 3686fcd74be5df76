package main

import (
	"net"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/strata-log/strata/pkg/connlimit/flood"
	"github.com/strata-log/strata/pkg/pki"
)

// clientFrom is an HTTPS client with identity's certificate that connects
// from the local address src.
func clientFrom(tb testing.TB, pkiDir, identity, src string) *http.Client {
	tb.Helper()
	r, err := pki.NewReloader(pki.DirFiles(pkiDir, identity), pki.ReloaderOptions{}, zaptest.NewLogger(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tc, err := r.ClientConfig("127.0.0.1")
	if err != nil {
		tb.Fatal(err)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, DialContext: d.DialContext}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// adminMetric is the value of the sample named exactly series on admin's
// /metrics page; 0 when absent.
func adminMetric(tb testing.TB, c *http.Client, addr, series string) float64 {
	tb.Helper()
	code, body := call(tb, c, http.MethodGet, "https://"+addr+"/metrics", "")
	if code != http.StatusOK {
		tb.Fatalf("GET /metrics = %d", code)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestFloodDoesNotLockOutOperator: with a 300 ms handshake deadline and
// 20 connections per address, a flood from 127.0.0.1 of silent and
// stalled-handshake connections does not keep the operator, from
// 127.0.0.2, from reading the policy; each flood connection is closed by
// the deadline or at once over the cap, and the refusals are counted.
func TestFloodDoesNotLockOutOperator(t *testing.T) {
	const (
		deadline     = 300 * time.Millisecond
		perIP        = 20
		slack        = 700 * time.Millisecond
		refusedPerIP = `strata_admin_connections_refused_total{limit="per_ip",listener="https"}`
	)
	pkiDir := initPKI(t)
	a := startAdmin(t, pkiDir, func(c *serveConfig) { c.HandshakeTimeout, c.MaxConns, c.MaxConnsPerIP = deadline, 100, perIP })
	f, err := flood.Start(flood.Options{
		Addr: a.addr, From: "127.0.0.1", Conns: perIP + 10,
		Kinds: []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake},
		Bound: 5 * time.Second, MaxDials: 5000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop() })
	op := clientFrom(t, pkiDir, "operator", "127.0.0.2")
	t.Cleanup(op.CloseIdleConnections) // before the admin's graceful stop
	flood.Until(t, 5*time.Second, "the flood fills its address's slots", func() bool { return adminMetric(t, op, a.addr, refusedPerIP) > 0 })
	if code, body := call(t, op, http.MethodGet, "https://"+a.addr+"/v1/acl/policy", ""); code != http.StatusOK {
		t.Fatalf("GET policy during the flood = %d %s", code, body)
	}
	flood.Until(t, 10*time.Second, "flood connections closed by the deadline", func() bool { return f.Snapshot().ClosedAfter(deadline) >= 2*perIP })
	res := f.Stop()
	if res.HeldOpen != 0 || len(res.Errors) != 0 {
		t.Fatalf("flood: %d connections held open for 5s, errors %v", res.HeldOpen, res.Errors)
	}
	if longest := res.Longest(); longest > deadline+slack {
		t.Errorf("a flood connection lived %v, want at most the %v deadline (+%v slack)", longest, deadline, slack)
	}
	refused := len(res.Closed) - res.ClosedAfter(deadline)
	t.Logf("flood: %d dials, %d closed by the deadline, %d refused at once; longest %v", res.Dials, res.ClosedAfter(deadline), refused, res.Longest())
	for _, k := range []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake} {
		if res.Count(k, deadline) == 0 {
			t.Errorf("no %s connection was admitted and closed by the deadline", k)
		}
	}
	if got := adminMetric(t, op, a.addr, refusedPerIP); got < float64(refused) || got > float64(res.Dials) {
		t.Errorf("%s = %v, want between the %d the flood saw and its %d dials", refusedPerIP, got, refused, res.Dials)
	}
}
