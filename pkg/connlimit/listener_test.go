package connlimit

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// acceptor runs an accept loop on a Listener over loopback and keeps
// what it admits until the test ends.
type acceptor struct {
	ln       *Listener
	admitted chan net.Conn
	done     chan struct{}
	kept     []net.Conn // admitted connections handed to the test (next)
}

func startAcceptor(tb testing.TB, opts Options) *acceptor {
	tb.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	a := &acceptor{ln: NewListener(inner, opts), admitted: make(chan net.Conn, 1024), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for {
			c, err := a.ln.Accept()
			if err != nil {
				return
			}
			a.admitted <- c
		}
	}()
	tb.Cleanup(func() {
		if err := a.ln.Close(); err != nil {
			tb.Error(err)
		}
		<-a.done
		close(a.admitted)
		for c := range a.admitted {
			if err := c.Close(); err != nil {
				tb.Error(err)
			}
		}
		for _, c := range a.kept {
			c.Close() // the test may have closed it already; the error says nothing
		}
	})
	return a
}

// next is the next admitted connection. The acceptor keeps it until the
// test ends: a net.Conn nobody references is closed by its finalizer when
// the garbage collector runs, which a test would see as the server
// closing it.
func (a *acceptor) next(tb testing.TB) net.Conn {
	tb.Helper()
	select {
	case c := <-a.admitted:
		a.kept = append(a.kept, c)
		return c
	case <-time.After(5 * time.Second):
		tb.Fatal("no connection admitted within 5s")
		return nil
	}
}

// dialFrom connects to addr from the loopback address src (Linux routes
// all of 127/8 to lo), so that tests can play several remote addresses.
func dialFrom(tb testing.TB, addr, src string) net.Conn {
	tb.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() }) // may be closed already; the error says nothing
	return c
}

// closedWithin waits for the server to close c and says how long that
// took; it fails the test when c is still open after bound.
func closedWithin(tb testing.TB, c net.Conn, bound time.Duration) time.Duration {
	tb.Helper()
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(bound)); err != nil {
		tb.Fatal(err)
	}
	var buf [64]byte
	for {
		_, err := c.Read(buf[:])
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || !errors.Is(err, os.ErrDeadlineExceeded) {
			return time.Since(start)
		}
		tb.Fatalf("connection from %s still open after %v", c.LocalAddr(), bound)
	}
}

// refusedAtOnce connects from src and says how long until the server
// closed the connection: a reset can arrive while connect is still
// returning on loopback, or at the first read.
func refusedAtOnce(tb testing.TB, addr, src string) time.Duration {
	tb.Helper()
	start := time.Now()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return time.Since(start)
	}
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close() // closed by the server already; the error says nothing
	return time.Since(start) + closedWithin(tb, c, 5*time.Second)
}

// stillOpen fails the test when the server closed c.
func stillOpen(tb testing.TB, c net.Conn) {
	tb.Helper()
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		tb.Fatal(err)
	}
	var buf [1]byte
	if _, err := c.Read(buf[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatalf("connection from %s: read = %v, want it open and silent", c.LocalAddr(), err)
	}
}

func TestCaps(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		// from are the source addresses of the connections admitted
		// first; then one more from over is refused by limit, and one
		// from other is admitted (when not empty).
		from  []string
		over  string
		limit string
		other string
	}{
		{
			name: "per address", opts: Options{MaxConns: 10, MaxConnsPerIP: 2},
			from: []string{"127.0.0.1", "127.0.0.1"}, over: "127.0.0.1", limit: LimitPerIP, other: "127.0.0.2",
		},
		{
			name: "total", opts: Options{MaxConns: 3, MaxConnsPerIP: 2},
			from: []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}, over: "127.0.0.4", limit: LimitTotal,
		},
		{
			name: "total without a per-address cap", opts: Options{MaxConns: 2},
			from: []string{"127.0.0.1", "127.0.0.1"}, over: "127.0.0.1", limit: LimitTotal,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMetrics("test", "svc", "grpc")
			core, logs := observer.New(zapcore.WarnLevel)
			tc.opts.Metrics, tc.opts.Logger = m, zap.New(core)
			a := startAcceptor(t, tc.opts)
			addr := a.ln.Addr().String()
			var held []net.Conn
			for _, src := range tc.from {
				c := dialFrom(t, addr, src)
				a.next(t)
				held = append(held, c)
			}
			if took := refusedAtOnce(t, addr, tc.over); took > time.Second {
				t.Errorf("the connection over the cap was closed after %v, want at once", took)
			}
			if got := testutil.ToFloat64(m.refused.WithLabelValues(tc.limit)); got != 1 {
				t.Errorf("refused{limit=%q} = %v, want 1", tc.limit, got)
			}
			if got := testutil.ToFloat64(m.open); got != float64(len(tc.from)) {
				t.Errorf("open = %v, want %d", got, len(tc.from))
			}
			if n := logs.FilterField(zap.Int64("refused_unlogged", 0)).Len(); n != 1 {
				t.Errorf("%d refusal warnings, want 1: %v", n, logs.All())
			}
			for _, c := range held {
				stillOpen(t, c)
			}
			if tc.other != "" {
				dialFrom(t, addr, tc.other)
				a.next(t)
			}
		})
	}
}

// TestSlotFreedOnClose: a connection closed by the server (twice, as
// servers do) gives its slot back once.
func TestSlotFreedOnClose(t *testing.T) {
	m := NewMetrics("test", "svc", "grpc")
	a := startAcceptor(t, Options{MaxConns: 1, MaxConnsPerIP: 1, Metrics: m})
	addr := a.ln.Addr().String()
	dialFrom(t, addr, "127.0.0.1")
	sc := a.next(t)
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err == nil {
		t.Fatal("second Close returned nil, want the socket's error")
	}
	if got := a.ln.Open(); got != 0 {
		t.Fatalf("Open() = %d after Close, want 0", got)
	}
	c := dialFrom(t, addr, "127.0.0.1")
	a.next(t)
	stillOpen(t, c)
	if got := testutil.ToFloat64(m.open); got != 1 {
		t.Errorf("open = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues(LimitPerIP)) + testutil.ToFloat64(m.refused.WithLabelValues(LimitTotal)); got != 0 {
		t.Errorf("refused = %v, want 0", got)
	}
}

// TestRefusalLogRateLimited: a burst of refusals writes one warning.
func TestRefusalLogRateLimited(t *testing.T) {
	m := NewMetrics("test", "svc", "grpc")
	core, logs := observer.New(zapcore.WarnLevel)
	a := startAcceptor(t, Options{MaxConnsPerIP: 1, Metrics: m, Logger: zap.New(core), LogInterval: time.Hour})
	addr := a.ln.Addr().String()
	dialFrom(t, addr, "127.0.0.1")
	a.next(t)
	const burst = 20
	for range burst {
		refusedAtOnce(t, addr, "127.0.0.1")
	}
	if got := testutil.ToFloat64(m.refused.WithLabelValues(LimitPerIP)); got != burst {
		t.Fatalf("refused{per_ip} = %v, want %d", got, burst)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d warnings for a burst of %d refusals, want 1", n, burst)
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr net.Addr
		want string // "" for no key
	}{
		{"ipv4", &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 5}, "10.1.2.3/32"},
		{"ipv4-mapped ipv6", &net.TCPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 5}, "10.1.2.3/32"},
		{"ipv6 groups by /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 5}, "2001:db8:1:2::/64"},
		{"ipv6 zone dropped", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0", Port: 5}, "fe80::/64"},
		{"non-tcp with ip", &net.UDPAddr{IP: net.ParseIP("192.0.2.1"), Port: 5}, "192.0.2.1/32"},
		{"unix socket", &net.UnixAddr{Name: "/tmp/s", Net: "unix"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := addrKey(tc.addr)
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("addrKey(%v) = %v, want none", tc.addr, got)
				}
				return
			}
			if want := netip.MustParsePrefix(tc.want); got != want {
				t.Fatalf("addrKey(%v) = %v, want %v", tc.addr, got, want)
			}
		})
	}
}
