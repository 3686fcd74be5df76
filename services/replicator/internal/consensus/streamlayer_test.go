package consensus

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"github.com/strata-log/strata/pkg/connlimit/flood"

	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve starts a stream layer presenting cn and returns it with its address.
func serve(t *testing.T, ca *testutil.CA, cn string) *StreamLayer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sl := NewStreamLayer(ln, nil, ca.ServerTLS(t, cn), ca.ClientTLS(t, cn), func(raft.ServerAddress) (int32, bool) { return 0, false },
		func(id int32) bool { return id <= 3 })
	t.Cleanup(func() {
		if err := sl.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Error(err)
		}
	})
	return sl
}

// acceptOne accepts a connection and reads one byte from it, returning
// the read error (nil when the handshake passed and the byte arrived).
func acceptOne(sl *StreamLayer) <-chan error {
	out := make(chan error, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			out <- err
			return
		}
		defer c.Close()
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			out <- err
			return
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		out <- err
	}()
	return out
}

func TestStreamLayerDialChecksPeerIdentity(t *testing.T) {
	ca := testutil.NewCA(t)
	tests := []struct {
		name     string
		serverCN string
		want     error
	}{
		{"matching", "replicator-2", nil},
		{"other replicator", "replicator-9", ErrPeerIdentity},
		{"broker cert", "broker-2", ErrPeerIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, ca, tc.serverCN)
			addr := raft.ServerAddress(srv.Addr().String())
			client := serve(t, ca, "replicator-1")
			client.resolve = func(a raft.ServerAddress) (int32, bool) { return 2, a == addr }
			accepted := acceptOne(srv)
			conn, err := client.Dial(addr, 5*time.Second)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("dial: got %v, want %v", err, tc.want)
			}
			if err != nil {
				if srvErr := <-accepted; srvErr == nil {
					t.Fatal("server read a byte over a rejected connection")
				}
				return
			}
			if _, err := conn.Write([]byte{1}); err != nil {
				t.Fatal(err)
			}
			if err := <-accepted; err != nil {
				t.Fatalf("server side: %v", err)
			}
			if err := conn.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStreamLayerDialUnknownAddress(t *testing.T) {
	ca := testutil.NewCA(t)
	client := serve(t, ca, "replicator-1")
	if _, err := client.Dial("127.0.0.1:1", time.Second); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("got %v, want ErrUnknownPeer", err)
	}
}

func TestStreamLayerAcceptRequiresReplicatorCert(t *testing.T) {
	ca := testutil.NewCA(t)
	other := testutil.NewCA(t)
	tests := []struct {
		name   string
		client *tls.Config
		ok     bool
	}{
		{"replicator", ca.ClientTLS(t, "replicator-3"), true},
		{"unknown replicator", ca.ClientTLS(t, "replicator-9"), false},
		{"broker", ca.ClientTLS(t, "broker-3"), false},
		{"admin", ca.ClientTLS(t, "admin"), false},
		{"foreign CA", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool,
			Certificates: []tls.Certificate{other.Issue(t, "replicator-3")}}, false},
		{"no cert", &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca.Pool}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, ca, "replicator-2")
			accepted := acceptOne(srv)
			conn, err := tls.Dial("tcp", srv.Addr().String(), tc.client)
			if err == nil {
				_, err = conn.Write([]byte{1})
				defer conn.Close()
			}
			srvErr := <-accepted
			if tc.ok && (err != nil || srvErr != nil) {
				t.Fatalf("rejected: client %v, server %v", err, srvErr)
			}
			if !tc.ok && srvErr == nil {
				t.Fatal("server accepted the connection")
			}
		})
	}
}

// TestStreamLayerHandshakeDeadline: Raft reads an accepted connection
// without a deadline, so the stream layer bounds the handshake itself: a
// peer that says nothing, or stalls mid-handshake, is dropped at the
// deadline; a peer that finishes its handshake is not dropped later.
func TestStreamLayerHandshakeDeadline(t *testing.T) {
	const deadline = 300 * time.Millisecond
	ca := testutil.NewCA(t)
	for _, kind := range []flood.Kind{flood.Idle, flood.PartialHello, flood.StalledHandshake} {
		t.Run(kind.String(), func(t *testing.T) {
			srv := serve(t, ca, "replicator-2")
			srv.handshakeTimeout = deadline
			accepted := raftRead(srv)
			f, err := flood.Start(flood.Options{Addr: srv.Addr().String(), From: "127.0.0.1", Conns: 1, MaxDials: 1,
				Kinds: []flood.Kind{kind}, Bound: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Stop() })
			srvErr := <-accepted
			res := f.Wait()
			if !errors.Is(srvErr, os.ErrDeadlineExceeded) {
				t.Errorf("server read: %v, want the handshake deadline", srvErr)
			}
			if len(res.Closed) != 1 || res.Closed[0].Lifetime < deadline || res.Closed[0].Lifetime > deadline+time.Second {
				t.Errorf("flood: %+v, want its connection closed at the %v deadline", res, deadline)
			}
		})
	}
	t.Run("finished handshake", func(t *testing.T) {
		srv := serve(t, ca, "replicator-2")
		srv.handshakeTimeout = deadline
		accepted := raftRead(srv)
		conn, err := tls.Dial("tcp", srv.Addr().String(), ca.ClientTLS(t, "replicator-3"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The byte comes well after the handshake deadline has passed.
		time.Sleep(2 * deadline) // the pause is the test's subject, not a wait for a condition
		if _, err := conn.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if err := <-accepted; err != nil {
			t.Fatalf("server read after the deadline: %v", err)
		}
	})
}

// raftRead accepts one connection and reads one byte from it with no
// deadline of its own, as Raft's transport does.
func raftRead(sl *StreamLayer) <-chan error {
	out := make(chan error, 1)
	go func() {
		c, err := sl.Accept()
		if err != nil {
			out <- err
			return
		}
		defer c.Close()
		_, err = io.ReadFull(c, make([]byte, 1))
		out <- err
	}()
	return out
}
