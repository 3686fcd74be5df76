package membership

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/strata-log/strata/services/replicator/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) handle(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) has(typ EventType, id int32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Type == typ && e.Member.ID == id {
			return true
		}
	}
	return false
}

func fast(ml *memberlist.Config) {
	ml.ProbeInterval = 200 * time.Millisecond
	ml.ProbeTimeout = 100 * time.Millisecond
	ml.GossipInterval = 50 * time.Millisecond
	ml.SuspicionMult = 2
}

func start(t *testing.T, id int32, key []byte, join []string, h func(Event)) (*Membership, string) {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(testutil.FreePort(t))
	m, err := New(Options{NodeID: id, BindAddr: addr, Join: join, ClusterKey: key,
		BrokerAddr: fmt.Sprintf("b%d:9092", id), BrokerInternalAddr: fmt.Sprintf("broker-%d:9092", id), ReplicatorAddr: fmt.Sprintf("r%d:9093", id), RaftAddr: fmt.Sprintf("f%d:7947", id),
		Handler: h, Tune: fast, RejoinMax: 200 * time.Millisecond}, testutil.Logger(t, zap.DebugLevel))
	if err != nil {
		t.Fatal(err)
	}
	return m, addr
}

func TestJoinTagsLeaveAndEncryption(t *testing.T) {
	key := make([]byte, 32)
	key[0] = 1
	var rec recorder
	a, aAddr := start(t, 1, key, nil, rec.handle)
	defer func() {
		if err := a.Kill(); err != nil {
			t.Error(err)
		}
	}()
	b, _ := start(t, 2, key, []string{aAddr}, nil)

	testutil.Eventually(t, 10*time.Second, func() error {
		if !rec.has(EventJoin, 2) {
			return fmt.Errorf("no join event for 2")
		}
		return nil
	})
	var got Member
	for _, m := range a.Members() {
		if m.ID == 2 {
			got = m
		}
	}
	if got.Status != StatusAlive || got.BrokerAddr != "b2:9092" || got.BrokerInternal() != "broker-2:9092" || got.ReplicatorAddr != "r2:9093" || got.RaftAddr != "f2:7947" || got.Name != "replicator-2" {
		t.Fatalf("member 2: %+v", got)
	}

	// A node with another key cannot join: gossip is encrypted.
	otherKey := make([]byte, 32)
	otherKey[0] = 2
	intruder, _ := start(t, 3, otherKey, []string{aAddr}, nil)
	defer func() {
		if err := intruder.Kill(); err != nil {
			t.Error(err)
		}
	}()

	// A graceful Close is seen as a leave.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if !rec.has(EventLeave, 2) {
			return fmt.Errorf("no leave event for 2")
		}
		return nil
	})
	for _, m := range a.Members() {
		if m.ID == 3 {
			t.Fatalf("node with the wrong cluster key joined: %+v", m)
		}
		if m.ID == 2 && m.Status != StatusLeft {
			t.Fatalf("member 2 status %v after leave", m.Status)
		}
	}
}

func TestDecodeClusterKey(t *testing.T) {
	if _, err := DecodeClusterKey("AAAA"); err == nil {
		t.Fatal("3-byte key accepted")
	}
	if _, err := DecodeClusterKey("not base64!"); err == nil {
		t.Fatal("garbage accepted")
	}
	if k, err := DecodeClusterKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); err != nil || len(k) != 32 {
		t.Fatalf("valid key: %v", err)
	}
}

func member(m *Membership, id int32) (Member, bool) {
	for _, mem := range m.Members() {
		if mem.ID == id {
			return mem, true
		}
	}
	return Member{}, false
}

// TestBrokerStatusTag: SetBrokerUp gossips the broker's status; the other
// members see it, with an update event, and so does the node itself; the
// member stays alive throughout (only its broker is down).
func TestBrokerStatusTag(t *testing.T) {
	key := make([]byte, 32)
	var rec recorder
	a, aAddr := start(t, 1, key, nil, rec.handle)
	defer func() {
		if err := a.Kill(); err != nil {
			t.Error(err)
		}
	}()
	b, _ := start(t, 2, key, []string{aAddr}, nil)
	defer func() {
		if err := b.Kill(); err != nil {
			t.Error(err)
		}
	}()
	testutil.Eventually(t, 10*time.Second, func() error {
		if m, ok := member(a, 2); !ok || m.Status != StatusAlive {
			return fmt.Errorf("member 2 not alive yet: %+v", m)
		}
		return nil
	})
	if m, _ := member(a, 2); m.BrokerDown {
		t.Fatalf("member 2 without a status tag counts as broker down: %+v", m)
	}

	for _, up := range []bool{false, true, false} {
		if err := b.SetBrokerUp(up); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 5*time.Second, func() error {
			for _, view := range []*Membership{a, b} {
				m, ok := member(view, 2)
				if !ok || m.BrokerDown == up || m.Status != StatusAlive {
					return fmt.Errorf("node %d sees member 2 %+v, want alive with broker down=%v", view.LocalID(), m, !up)
				}
			}
			if !rec.has(EventUpdate, 2) {
				return fmt.Errorf("no update event for 2")
			}
			return nil
		})
	}
	// Setting the status it already has is a no-op.
	if err := b.SetBrokerUp(false); err != nil {
		t.Fatal(err)
	}
}
