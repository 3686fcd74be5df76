package cli

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// TestGroupUsageErrors: mistakes on a group command line are usage errors
// (exit 2) found before any network call.
func TestGroupUsageErrors(t *testing.T) {
	vars := map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "ctx.json")}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"consume --group with --partition", []string{"consume", "t", "--group", "g", "--partition", "0"}, "--partition with --group"},
		{"consume --group from an offset", []string{"consume", "t", "--group", "g", "--from", "5"}, "earliest or latest"},
		{"consume --group bad name", []string{"consume", "t", "--group", "a/b"}, "group name"},
		{"describe bad name", []string{"group", "describe", "a b"}, "group name"},
		{"delete without a name", []string{"group", "delete"}, "expected NAME"},
		{"list with an argument", []string{"group", "list", "x"}, "expected no arguments"},
		{"reset without --topic", []string{"group", "reset-offsets", "g", "--to-earliest"}, "--topic is required"},
		{"reset without a target", []string{"group", "reset-offsets", "g", "--topic", "t"}, "exactly one of"},
		{"reset with two targets", []string{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--to-offset", "3"}, "exactly one of"},
		{"reset to a bad time", []string{"group", "reset-offsets", "g", "--topic", "t", "--to-time", "noon"}, "RFC3339"},
		{"reset to a negative offset", []string{"group", "reset-offsets", "g", "--topic", "t", "--to-offset", "-2"}, "negative"},
		{"reset shift not a number", []string{"group", "reset-offsets", "g", "--topic", "t", "--shift-by", "x"}, "not a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			io, out, errb := testIO(vars)
			// No broker listens on port 1: a network call would fail
			// with exit 1, not the usage error's 2.
			args := append([]string{"--brokers", "127.0.0.1:1", "--insecure"}, tc.args...)
			if code := Run(context.Background(), args, io); code != exitUsage {
				t.Fatalf("exit %d, want %d (usage)\n%s%s", code, exitUsage, out, errb)
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("message lacks %q: %s", tc.want, errb)
			}
		})
	}
}

// groupsBroker answers Metadata and ListGroups as one broker of a
// cluster: each lists only the groups it coordinates.
type groupsBroker struct {
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedGroupsServer
	md     *stratav1.MetadataResponse
	groups []*stratav1.GroupSummary
}

func (b *groupsBroker) Metadata(context.Context, *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	return b.md, nil
}

func (b *groupsBroker) ListGroups(context.Context, *stratav1.ListGroupsRequest) (*stratav1.ListGroupsResponse, error) {
	return &stratav1.ListGroupsResponse{Groups: b.groups}, nil
}

// TestGroupListAsksEveryBroker: group list merges every broker's
// ListGroups (each knows only the groups it coordinates), sorted by
// name, though the CLI was given one broker.
func TestGroupListAsksEveryBroker(t *testing.T) {
	brokers := []*groupsBroker{
		{groups: []*stratav1.GroupSummary{{Group: "orders-app", State: "stable", Members: 3, CoordinatorId: 1}}},
		{groups: []*stratav1.GroupSummary{{Group: "billing", State: "empty", CoordinatorId: 2}, {Group: "audit", State: "reconciling", Members: 1, CoordinatorId: 2}}},
		{},
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	md := &stratav1.MetadataResponse{ControllerId: 1}
	for i, b := range brokers {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		stratav1.RegisterMetadataServer(srv, b)
		stratav1.RegisterGroupsServer(srv, b)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				t.Errorf("serve: %v", err)
			}
		}()
		t.Cleanup(srv.Stop)
		md.Brokers = append(md.Brokers, &stratav1.BrokerInfo{Id: int32(i + 1), Address: l.Addr().String(), Alive: true})
	}
	for _, b := range brokers {
		b.md = md
	}
	io, out, errb := testIO(map[string]string{"STRATA_CONTEXT_FILE": filepath.Join(t.TempDir(), "c.json")})
	if code := Run(context.Background(), []string{"--brokers", md.Brokers[2].Address, "--insecure", "group", "list"}, io); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errb)
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
		names = append(names, strings.Fields(line)[0])
	}
	if got := strings.Join(names, " "); got != "audit billing orders-app" {
		t.Fatalf("groups %q, want audit billing orders-app\n%s", got, out)
	}
}
