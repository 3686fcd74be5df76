package topic

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-log/strata/pkg/topicconfig"
	"github.com/strata-log/strata/services/broker/internal/partition"
)

func TestStorageID(t *testing.T) {
	t.Run("kept across restarts", func(t *testing.T) {
		dir := t.TempDir()
		r := openRegistry(t, dir)
		id := r.StorageID()
		if len(id) != 32 {
			t.Fatalf("storage id %q, want 32 hex digits", id)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		r = openRegistry(t, dir)
		defer r.Close()
		if r.StorageID() != id {
			t.Fatalf("reopened with storage id %q, was %q", r.StorageID(), id)
		}
	})
	t.Run("a new directory gets a new id", func(t *testing.T) {
		a, b := openRegistry(t, t.TempDir()), openRegistry(t, t.TempDir())
		defer a.Close()
		defer b.Close()
		if a.StorageID() == b.StorageID() {
			t.Fatalf("two directories share storage id %q", a.StorageID())
		}
	})
	t.Run("a directory from before storage ids keeps its topics", func(t *testing.T) {
		dir := t.TempDir()
		r := openRegistry(t, dir)
		if _, err := r.Create(context.Background(), "orders", topicconfig.Config{}); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, storageIDFile)); err != nil {
			t.Fatal(err)
		}
		r = openRegistry(t, dir)
		defer r.Close()
		if r.StorageID() == "" {
			t.Fatal("no storage id")
		}
		if _, err := r.Get("orders"); err != nil {
			t.Fatalf("topic lost: %v", err)
		}
	})
	t.Run("an empty file is an error", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, storageIDFile), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(Options{Dir: dir, Defaults: defaults(),
			State: func(string, int32) partition.State { return partition.State{Role: partition.RoleNone, LeaderID: -1} }})
		if err == nil || !strings.Contains(err.Error(), storageIDFile) {
			t.Fatalf("Open = %v, want an error naming %s", err, storageIDFile)
		}
	})
}
