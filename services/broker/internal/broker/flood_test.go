package broker

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/strata-log/strata/pkg/connlimit/flood"
	"github.com/strata-log/strata/pkg/pki"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// metricValue is the value of the sample named exactly series (name and
// labels as /metrics prints them) on b's /metrics page; 0 when absent.
func metricValue(tb testing.TB, b *Broker, series string) float64 {
	tb.Helper()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(scrape(tb, b))
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestFloodDoesNotLockOut: with the limits set low (a 300 ms handshake
// deadline, 20 connections per address), a flood from 127.0.0.1 of
// connections that never send a byte, that send half a ClientHello, and
// that send a ClientHello and then stall, each dialled again as soon as
// the broker drops it, does not keep an mTLS client on another address
// from connecting and producing; every flood connection is closed by the
// deadline (or at once, over the per-address cap), and the broker's
// metrics count both.
func TestFloodDoesNotLockOut(t *testing.T) {
	const (
		deadline = 300 * time.Millisecond
		perIP    = 20
		// slack is what a loaded machine under -race may add to the
		// deadline before the broker's close reaches the flood.
		slack        = 700 * time.Millisecond
		timeouts     = `strata_broker_tls_handshake_failures_total{reason="timeout"}`
		refusedPerIP = `strata_broker_connections_refused_total{limit="per_ip",listener="grpc"}`
	)
	certs := initCerts(t)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.HandshakeTimeout, cfg.MaxConnsPerIP, cfg.MaxConns = deadline, perIP, 100
	b := startTLSBroker(t, cfg)

	f, err := flood.Start(flood.Options{
		Addr: b.Addr().String(), From: "127.0.0.1", Conns: perIP + 10,
		Kinds: []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake},
		Bound: 5 * time.Second, MaxDials: 5000,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop() })
	eventually(t, 5*time.Second, func() bool { return metricValue(t, b, refusedPerIP) > 0 })

	// The legitimate client: the operator's certificate, from 127.0.0.2
	// (another host, as far as the broker can tell).
	rl, err := pki.NewReloader(pki.DirFiles(certs, "operator"), pki.ReloaderOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := rl.ClientConfig("localhost")
	if err != nil {
		t.Fatal(err)
	}
	from := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	conn, err := grpc.NewClient(b.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) { return from.DialContext(ctx, "tcp", addr) }))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := stratav1.NewTopicsClient(conn).CreateTopic(ctx, &stratav1.CreateTopicRequest{Name: "flooded"}); err != nil {
		t.Fatalf("CreateTopic during the flood: %v", err)
	}
	if _, err := stratav1.NewLogClient(conn).Produce(ctx, &stratav1.ProduceRequest{Topic: "flooded", Records: values(1, "x")}); err != nil {
		t.Fatalf("Produce during the flood: %v", err)
	}
	t.Logf("connected and produced in %v during the flood", time.Since(start))

	// Let the flood live through at least two rounds of deadlines.
	// The server counts a timeout before the flood reads the close, so
	// wait for the flood to have seen one of each kind too.
	eventually(t, 10*time.Second, func() bool {
		snap := f.Snapshot()
		return metricValue(t, b, timeouts) >= 2*perIP && snap.Count(flood.Idle, deadline) > 0 &&
			snap.Count(flood.PartialHello, deadline) > 0 && snap.Count(flood.StalledHandshake, deadline) > 0
	})
	res := f.Stop()
	if res.HeldOpen != 0 || len(res.Errors) != 0 {
		t.Fatalf("flood: %d connections held open for 5s, errors %v", res.HeldOpen, res.Errors)
	}
	if longest := res.Longest(); longest > deadline+slack {
		t.Errorf("a flood connection lived %v, want at most the %v deadline (+%v slack)", longest, deadline, slack)
	}
	closedByDeadline, refused := 0, 0
	for _, c := range res.Closed {
		if c.Lifetime >= deadline {
			closedByDeadline++
		} else {
			refused++
		}
	}
	t.Logf("flood: %d dials, %d closed by the deadline, %d refused at once; longest %v", res.Dials, closedByDeadline, refused, res.Longest())
	for _, k := range []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake} {
		if res.Count(k, deadline) == 0 {
			t.Errorf("no %s connection was admitted and closed by the deadline", k)
		}
	}
	// An admitted connection lives at least the deadline and fails its
	// handshake; a shorter one was refused. The broker counts at least
	// what the flood saw (and a few it did not, closed as it stopped).
	if got := metricValue(t, b, timeouts); got < float64(closedByDeadline) || got > float64(res.Dials) {
		t.Errorf("%s = %v, want between the %d the flood saw and its %d dials", timeouts, got, closedByDeadline, res.Dials)
	}
	if got := metricValue(t, b, refusedPerIP); got < float64(refused) || got > float64(res.Dials) {
		t.Errorf("%s = %v, want between the %d the flood saw and its %d dials", refusedPerIP, got, refused, res.Dials)
	}
	if got := metricValue(t, b, `strata_broker_connections_refused_total{limit="total",listener="grpc"}`); got != 0 {
		t.Errorf("refused by the total cap = %v, want 0: the flood kept to its address's share", got)
	}
	// The client's connection was never at risk: it is still served.
	if _, err := stratav1.NewLogClient(conn).Produce(ctx, &stratav1.ProduceRequest{Topic: "flooded", Records: values(1, "y")}); err != nil {
		t.Fatalf("Produce after the flood: %v", err)
	}
}

// TestStreamsPerIdentity: an identity with max-streams-per-identity calls
// in flight, over two connections, is refused ResourceExhausted on a
// third; another identity is served; the refusal is counted; and a
// finished call gives its slot back.
func TestStreamsPerIdentity(t *testing.T) {
	certs := initCerts(t)
	cfg := tlsConfig(t.TempDir(), certs)
	cfg.ACLPolicy = writePolicy(t, "p, alice, *, consume, allow", "p, alice, cluster, describe, allow", "p, bob, cluster, describe, allow")
	cfg.MaxStreamsPerIdentity = 2
	b := startTLSBroker(t, cfg)
	op := dialAs(t, b, certs, "operator")
	ctx := ctxT(t)
	createTopic(t, op, "t", nil)
	if err := produce(ctx, op, "t"); err != nil {
		t.Fatal(err)
	}
	// Two ConsumeStreams that got the one record and wait for more.
	sctx, endStreams := context.WithCancel(ctx)
	defer endStreams()
	for range 2 {
		cs, err := dialAs(t, b, certs, "alice").log.ConsumeStream(sctx, &stratav1.ConsumeStreamRequest{Topic: "t",
			Start: &stratav1.ConsumeStreamRequest_Position{Position: stratav1.StartPosition_START_POSITION_EARLIEST}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	alice := dialAs(t, b, certs, "alice")
	_, err := alice.topics.ListTopics(ctx, &stratav1.ListTopicsRequest{})
	wantCode(t, err, codes.ResourceExhausted)
	if _, err := dialAs(t, b, certs, "bob").topics.ListTopics(ctx, &stratav1.ListTopicsRequest{}); err != nil {
		t.Fatalf("bob, another identity: %v", err)
	}
	if got := metricValue(t, b, "strata_broker_identity_streams_refused_total"); got != 1 {
		t.Errorf("identity refusals = %v, want 1", got)
	}
	endStreams()
	eventually(t, 5*time.Second, func() bool {
		_, err := alice.topics.ListTopics(ctx, &stratav1.ListTopicsRequest{})
		return err == nil
	})
}
