// Package connlimit caps the connections a listener holds open, in total
// and per remote address. A connection over a cap is closed as soon as it
// is accepted (with a reset, so neither side keeps its socket), counted,
// and logged at most once per interval; the server behind the listener
// never sees it. With a handshake deadline in the server (which frees the
// slots of clients that connect and then say nothing), a flood from a few
// addresses can neither take every slot nor every file descriptor, and a
// client from another address still gets in.
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/connlimit/internal/ratelog"
)

// Listener is a net.Listener enforcing Options' caps. Connections it
// returns give their slot back when closed.
type Listener struct {
	net.Listener
	opts     Options
	lg       *zap.Logger
	totalLog *ratelog.Limiter
	perIPLog *ratelog.Limiter

	mu    sync.Mutex
	open  int
	perIP map[netip.Prefix]int
}

// NewListener wraps ln. Closing the Listener closes ln.
func NewListener(ln net.Listener, opts Options) *Listener {
	lg := opts.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	lg = lg.With(zap.Stringer("listen", ln.Addr()))
	if fds, ok := fileLimit(); ok && opts.MaxConns > 0 && uint64(opts.MaxConns) >= fds {
		lg.Warn("connection cap is not below the file descriptor limit: descriptors run out before the cap bites",
			zap.Int("max_conns", opts.MaxConns), zap.Uint64("fd_limit", fds))
	}
	return &Listener{
		Listener: ln,
		opts:     opts,
		lg:       lg,
		totalLog: ratelog.New(opts.LogInterval),
		perIPLog: ratelog.New(opts.LogInterval),
		perIP:    make(map[netip.Prefix]int),
	}
}

// Accept returns the next connection within the caps. Connections over a
// cap are closed here and never returned.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addrKey(c.RemoteAddr())
		limit := l.admit(key)
		if limit == "" {
			l.opts.Metrics.opened()
			if l.opts.TCPUserTimeout > 0 {
				if err := setUserTimeout(c, l.opts.TCPUserTimeout); err != nil {
					l.lg.Debug("setting TCP_USER_TIMEOUT failed", zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
				}
			}
			return &conn{Conn: c, l: l, key: key}, nil
		}
		l.refuse(c, limit)
	}
}

// Open is the number of connections holding a slot.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// admit takes a slot for key, or names the cap that refuses it.
func (l *Listener) admit(key netip.Prefix) (limit string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.opts.MaxConns > 0 && l.open >= l.opts.MaxConns {
		return LimitTotal
	}
	if l.opts.MaxConnsPerIP > 0 && key.IsValid() && l.perIP[key] >= l.opts.MaxConnsPerIP {
		return LimitPerIP
	}
	l.open++
	if key.IsValid() {
		l.perIP[key]++
	}
	return ""
}

func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	l.open--
	if key.IsValid() {
		if n := l.perIP[key] - 1; n > 0 {
			l.perIP[key] = n
		} else {
			delete(l.perIP, key)
		}
	}
	l.mu.Unlock()
	l.opts.Metrics.closed()
}

// refuse counts c, logs it when the log interval allows, and closes it
// with a reset. The count comes first, so that whoever sees the reset sees
// it counted.
func (l *Listener) refuse(c net.Conn, limit string) {
	l.opts.Metrics.refuse(limit)
	switch limit {
	case LimitTotal:
		if ok, n := l.totalLog.Allow(); ok {
			l.lg.Warn("connection refused: open connections at the listener's cap",
				zap.Stringer("remote", c.RemoteAddr()), zap.Int("max_conns", l.opts.MaxConns), zap.Int64("refused_unlogged", n))
		}
	case LimitPerIP:
		if ok, n := l.perIPLog.Allow(); ok {
			l.lg.Warn("connection refused: open connections from the remote address at the per-address cap",
				zap.Stringer("remote", c.RemoteAddr()), zap.Int("max_conns_per_ip", l.opts.MaxConnsPerIP), zap.Int64("refused_unlogged", n))
		}
	}
	var err error
	if tc, ok := c.(interface{ SetLinger(int) error }); ok {
		err = tc.SetLinger(0) // a reset: no FIN_WAIT socket left behind
	}
	if cerr := c.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		l.lg.Debug("closing a refused connection failed", zap.Stringer("remote", c.RemoteAddr()), zap.Error(err))
	}
}

// addrKey is the per-address cap's key: the IPv4 address or the IPv6 /64
// of a; the zero Prefix (no per-address cap) when a has no IP address.
func addrKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	if ta, ok := a.(*net.TCPAddr); ok {
		ip = ta.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// conn gives its slot back on its first Close.
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Prefix
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
