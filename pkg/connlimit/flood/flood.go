// Package flood plays a client that holds a server's connection slots
// without ever finishing a handshake, for tests of connection limits and
// handshake deadlines: connections that never send a byte, and
// connections that stall in the middle of a TLS handshake. Each of its
// workers keeps one connection open and dials again as soon as the server
// closes it, as an attacker would, until Stop or MaxDials.
package flood

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kind is how a flood connection stalls.
type Kind int

const (
	// Idle connects and never sends a byte.
	Idle Kind = iota
	// PartialHello sends the first bytes of a TLS ClientHello and stalls.
	PartialHello
	// StalledHandshake sends a whole ClientHello, then never reads the
	// server's answer nor sends its own certificate and Finished.
	StalledHandshake
)

func (k Kind) String() string {
	switch k {
	case Idle:
		return "idle"
	case PartialHello:
		return "partial-hello"
	case StalledHandshake:
		return "stalled-handshake"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Options describe a flood.
type Options struct {
	// Addr is the server's host:port.
	Addr string
	// From is the local IP address to connect from ("127.0.0.1"; on
	// Linux every 127/8 address reaches a loopback server).
	From string
	// Conns is how many connections the flood tries to hold at once.
	Conns int
	// Kinds are cycled over the workers; empty means Idle.
	Kinds []Kind
	// MaxDials bounds the dials of the whole flood; zero means 100 × Conns.
	MaxDials int
	// Bound is the longest a worker waits for the server to close its
	// connection before counting it as held open; zero means 30 s.
	Bound time.Duration
	// Pause is how long a worker waits after the server closed its
	// connection before it dials again, so that a refused worker does not
	// spend MaxDials at once; zero means 10 ms.
	Pause time.Duration
}

// Result is what the flood saw.
type Result struct {
	// Dials is the number of connections attempted.
	Dials int
	// Closed are the lifetimes, from connect to the server's close, of the
	// connections the server closed (those refused at once included).
	Closed []Closed
	// HeldOpen counts connections still open after Options.Bound.
	HeldOpen int
	// Errors are dial and write failures other than the server's close.
	Errors []error
}

// Closed is one connection the server closed.
type Closed struct {
	Kind     Kind
	Lifetime time.Duration
}

// Longest is the longest lifetime among r.Closed of the given kinds (all
// kinds when none is given).
func (r Result) Longest(kinds ...Kind) time.Duration {
	var d time.Duration
	for _, c := range r.Closed {
		if len(kinds) > 0 && !contains(kinds, c.Kind) {
			continue
		}
		d = max(d, c.Lifetime)
	}
	return d
}

// Count is the number of r.Closed of kind k lasting at least min.
func (r Result) Count(k Kind, min time.Duration) int {
	n := 0
	for _, c := range r.Closed {
		if c.Kind == k && c.Lifetime >= min {
			n++
		}
	}
	return n
}

func contains(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

// Flood is a running flood.
type Flood struct {
	opts     Options
	hello    []byte
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	done     chan struct{} // closed when every worker has returned

	mu    sync.Mutex
	held  map[net.Conn]struct{}
	res   Result
	dials int
}

// Start starts the workers. It fails only when no ClientHello can be
// made.
func Start(opts Options) (*Flood, error) {
	if opts.Conns <= 0 {
		return nil, errors.New("flood: Conns must be > 0")
	}
	if len(opts.Kinds) == 0 {
		opts.Kinds = []Kind{Idle}
	}
	if opts.MaxDials <= 0 {
		opts.MaxDials = 100 * opts.Conns
	}
	if opts.Bound <= 0 {
		opts.Bound = 30 * time.Second
	}
	if opts.Pause <= 0 {
		opts.Pause = 10 * time.Millisecond
	}
	hello, err := ClientHello()
	if err != nil {
		return nil, err
	}
	f := &Flood{opts: opts, hello: hello, stop: make(chan struct{}), done: make(chan struct{}), held: make(map[net.Conn]struct{})}
	for i := range opts.Conns {
		kind := opts.Kinds[i%len(opts.Kinds)]
		f.wg.Go(func() { f.worker(kind) })
	}
	go func() {
		f.wg.Wait()
		close(f.done)
	}()
	return f, nil
}

// Stop ends the flood: no more dials, held connections closed. It waits
// for the workers and returns what they saw. Later calls return the same.
func (f *Flood) Stop() Result {
	f.stopOnce.Do(func() {
		close(f.stop)
		f.mu.Lock()
		for c := range f.held {
			c.Close() // unblocks the worker's read; the error says nothing
		}
		f.mu.Unlock()
		<-f.done
	})
	return f.Snapshot()
}

// Wait waits for the flood to end by itself, its MaxDials spent and each
// connection closed or held for Bound, and returns what it saw.
func (f *Flood) Wait() Result {
	<-f.done
	return f.Snapshot()
}

// Snapshot is what the flood has seen so far.
func (f *Flood) Snapshot() Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.res
	r.Closed = append([]Closed(nil), r.Closed...)
	r.Errors = append([]error(nil), r.Errors...)
	return r
}

// ClosedAfter is the number of r.Closed, of any kind, lasting at least min.
func (r Result) ClosedAfter(min time.Duration) int {
	n := 0
	for _, c := range r.Closed {
		if c.Lifetime >= min {
			n++
		}
	}
	return n
}

// pause waits Options.Pause; false means Stop began.
func (f *Flood) pause() bool {
	t := time.NewTimer(f.opts.Pause)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-f.stop:
		return false
	}
}

func (f *Flood) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

func (f *Flood) worker(kind Kind) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(f.opts.From)}, Timeout: f.opts.Bound}
	for i := 0; ; i++ {
		if i > 0 && !f.pause() || !f.takeDial() {
			return
		}
		start := time.Now()
		c, err := d.Dial("tcp", f.opts.Addr)
		if err != nil {
			if isServerClose(err) {
				f.record(func(r *Result) { r.Closed = append(r.Closed, Closed{kind, time.Since(start)}) })
			} else {
				f.record(func(r *Result) { r.Errors = append(r.Errors, err) })
			}
			continue
		}
		if !f.hold(c) {
			c.Close() // Stop began; the error says nothing
			return
		}
		f.holdUntilClosed(c, kind, start)
		f.release(c)
	}
}

// holdUntilClosed sends kind's bytes and waits for the server to close c.
func (f *Flood) holdUntilClosed(c net.Conn, kind Kind, start time.Time) {
	defer c.Close() // closed by the server or by Stop; the error says nothing
	var err error
	switch kind {
	case PartialHello:
		_, err = c.Write(f.hello[:min(len(f.hello), 16)])
	case StalledHandshake:
		_, err = c.Write(f.hello)
	}
	if err == nil {
		if err = c.SetReadDeadline(start.Add(f.opts.Bound)); err == nil {
			// Read (and drop) what the server sends until it closes; a
			// stalled handshake's client never answers.
			_, err = io.Copy(io.Discard, c)
			if err == nil {
				err = io.EOF
			}
		}
	}
	lifetime := time.Since(start)
	switch {
	case f.stopped():
	case errors.Is(err, os.ErrDeadlineExceeded):
		f.record(func(r *Result) { r.HeldOpen++ })
	case isServerClose(err):
		f.record(func(r *Result) { r.Closed = append(r.Closed, Closed{kind, lifetime}) })
	default:
		f.record(func(r *Result) { r.Errors = append(r.Errors, err) })
	}
}

func isServerClose(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (f *Flood) takeDial() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped() || f.dials >= f.opts.MaxDials {
		return false
	}
	f.dials++
	f.res.Dials++
	return true
}

func (f *Flood) hold(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped() {
		return false
	}
	f.held[c] = struct{}{}
	return true
}

func (f *Flood) release(c net.Conn) {
	f.mu.Lock()
	delete(f.held, c)
	f.mu.Unlock()
}

func (f *Flood) record(fn func(*Result)) {
	f.mu.Lock()
	fn(&f.res)
	f.mu.Unlock()
}

// ClientHello is the first TLS record a crypto/tls client sends to
// "localhost": a whole ClientHello.
func ClientHello() ([]byte, error) {
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- tls.Client(client, &tls.Config{ServerName: "localhost", MinVersion: tls.VersionTLS12}).Handshake()
	}()
	hello, err := readRecord(server)
	server.Close() // ends the handshake above; net.Pipe's Close cannot fail
	client.Close()
	<-done // fails: the pipe was closed
	if err != nil {
		return nil, fmt.Errorf("flood: reading a ClientHello: %w", err)
	}
	return hello, nil
}

// readRecord reads one TLS record: a 5-byte header whose last two bytes
// are the length of the body that follows.
func readRecord(r io.Reader) ([]byte, error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(hdr, body...), nil
}

// Until polls cond every 5 ms until it holds and fails tb after d. The
// conditions a flood test waits for are counters and open slots, which
// signal nothing when they change, so a bounded poll is the honest wait.
func Until(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
