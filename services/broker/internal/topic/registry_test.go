package topic

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func defaults() topicconfig.Config {
	return topicconfig.Config{Partitions: 1, ReplicationFactor: 1, RetentionBytes: -1, RetentionMs: -1,
		SegmentBytes: 1 << 20, SegmentMs: 3600_000, MaxRecordBytes: 1024, Fsync: "never", MinInsyncReplicas: 1,
		CleanupPolicy: topicconfig.CleanupDelete, DeleteRetentionMs: 3600_000}
}

func openRegistry(tb testing.TB, dir string) *Registry {
	tb.Helper()
	r, err := Open(Options{
		Dir:      dir,
		Defaults: defaults(),
		State: func(string, int32) partition.State {
			return partition.State{Role: partition.RoleLeader, LeaderID: 1, ISR: []int32{1}}
		},
		Logger: zaptest.NewLogger(tb),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func TestRegistryPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := openRegistry(t, dir)
	if _, err := r.Create(ctx, "orders", topicconfig.Config{Partitions: 3, Fsync: "always"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctx, "gone", topicconfig.Config{}); err != nil {
		t.Fatal(err)
	}
	p, err := r.Partition("orders", 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(ctx, []*stratav1.Record{{Value: []byte("a")}, {Value: []byte("b")}}, stratav1.Acks_ACKS_LEADER); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Alter(ctx, "orders", topicconfig.Config{MaxRecordBytes: 2048}); err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of a create leaves a directory without topic.json.
	if err := os.MkdirAll(filepath.Join(dir, "topics", "half", "0"), 0o755); err != nil {
		t.Fatal(err)
	}

	r = openRegistry(t, dir)
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	names := []string{}
	for _, tp := range r.List() {
		names = append(names, tp.Name())
	}
	if strings.Join(names, ",") != "orders" {
		t.Fatalf("topics after reopen = %v, want [orders]", names)
	}
	tp, err := r.Get("orders")
	if err != nil {
		t.Fatal(err)
	}
	want := defaults()
	want.Partitions, want.Fsync, want.MaxRecordBytes = 3, "always", 2048
	if got := tp.Config(); got != want {
		t.Errorf("config after reopen = %+v, want %+v", got, want)
	}
	if got := tp.Partitions()[2].LogEndOffset(); got != 2 {
		t.Errorf("log end offset after reopen = %d, want 2", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "topics", "half")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("incomplete topic dir: stat err = %v, want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "topics", "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("deleted topic dir: stat err = %v, want it removed", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	ctx := context.Background()
	r := openRegistry(t, t.TempDir())
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := r.Create(ctx, "t", topicconfig.Config{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"exists", second(r.Create(ctx, "t", topicconfig.Config{})), ErrExists},
		{"bad name", second(r.Create(ctx, "a/b", topicconfig.Config{})), topicconfig.ErrInvalidName},
		{"bad config", second(r.Create(ctx, "u", topicconfig.Config{Fsync: "often"})), topicconfig.ErrInvalid},
		{"alter partitions", second(r.Alter(ctx, "t", topicconfig.Config{Partitions: 5})), topicconfig.ErrInvalid},
		{"alter missing", second(r.Alter(ctx, "nope", topicconfig.Config{})), ErrNotFound},
		{"delete missing", r.Delete(ctx, "nope"), ErrNotFound},
		{"get missing", second(r.Get("nope")), ErrNotFound},
		{"partition missing", second(r.Partition("t", 2)), ErrPartitionNotFound},
		{"negative partition", second(r.Partition("t", -1)), ErrPartitionNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !errors.Is(tt.err, tt.want) {
				t.Fatalf("err = %v, want %v", tt.err, tt.want)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

// TestEnsureTopicIDs: the controller's topic id is kept across a restart;
// a local copy without one adopts it; another id replaces the copy.
func TestEnsureTopicIDs(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	r := openRegistry(t, dir)
	if _, err := r.Create(ctx, "legacy", topicconfig.Config{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Ensure(ctx, "ids", "id-1", topicconfig.Config{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if tp, err := r.Ensure(ctx, "legacy", "id-L", topicconfig.Config{Partitions: 1}); err != nil || tp.ID() != "id-L" {
		t.Fatalf("adopt: %v %v", tp, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = openRegistry(t, dir)
	for name, want := range map[string]string{"ids": "id-1", "legacy": "id-L"} {
		tp, err := r.Get(name)
		if err != nil || tp.ID() != want {
			t.Fatalf("%s after reopen: id %q, %v; want %q", name, tp.ID(), err, want)
		}
	}
	old, _ := r.Get("ids")
	tp, err := r.Ensure(ctx, "ids", "id-2", topicconfig.Config{Partitions: 2})
	if err != nil || tp.ID() != "id-2" || tp == old {
		t.Fatalf("replace: %v %v", tp, err)
	}
}

// TestTopicFromBeforeANewSetting: a topic file written before a setting
// existed (its config otherwise complete) opens, with the setting's
// default, instead of failing validation and keeping the broker down.
func TestTopicFromBeforeANewSetting(t *testing.T) {
	dir := t.TempDir()
	r := openRegistry(t, dir)
	if _, err := r.Create(context.Background(), "old", topicconfig.Config{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	tdir := filepath.Join(dir, "topics", "old")
	ff, err := readConfig(tdir)
	if err != nil {
		t.Fatal(err)
	}
	ff.Config.CleanupPolicy, ff.Config.DeleteRetentionMs = "", 0 // as written before cleanup.policy
	if err := writeConfig(tdir, ff); err != nil {
		t.Fatal(err)
	}
	r2 := openRegistry(t, dir)
	tp, err := r2.Get("old")
	if err != nil {
		t.Fatal(err)
	}
	if c := tp.Config(); c.CleanupPolicy != topicconfig.CleanupDelete || c.DeleteRetentionMs <= 0 {
		t.Fatalf("config of a topic from before: %+v", c)
	}
}
