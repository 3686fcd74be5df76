package atomicfile_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-log/strata/pkg/atomicfile"
)

func TestWriteCreatesAndReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first\n", "second, longer than the first\n", ""} {
		if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		assertFile(t, path, content)
		assertOnly(t, dir, "state.json")
	}
}

func TestWriteMode(t *testing.T) {
	dir := t.TempDir()
	umask := currentUmask(t, dir)
	for _, perm := range []fs.FileMode{0o600, 0o640, 0o644} {
		t.Run(perm.String(), func(t *testing.T) {
			path := filepath.Join(dir, "f"+perm.String())
			if err := atomicfile.Write(path, []byte("x"), perm); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fi.Mode().Perm(), perm&^umask; got != want {
				t.Fatalf("mode %v, want %v (perm %v, umask %v)", got, want, perm, umask)
			}
		})
	}
}

// TestWriteFailureKeepsOldFile fails each step before the rename and
// checks that the old content survives and no temporary file is left.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	for _, step := range []string{"open", "write", "sync", "close", "rename"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			injected := fmt.Errorf("injected %s failure", step)
			fsys := &faultFS{failAt: step, err: injected}
			err := atomicfile.WriteFS(fsys, path, []byte("new content"), 0o644)
			if !errors.Is(err, injected) {
				t.Fatalf("err = %v, want the injected failure", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			assertFile(t, path, "old")
			assertOnly(t, dir, "config")
		})
	}
}

// TestWriteSyncDirFailure: the file is replaced but the error says the
// replacement may not survive a crash.
func TestWriteSyncDirFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	injected := errors.New("injected syncdir failure")
	err := atomicfile.WriteFS(&faultFS{failAt: "syncdir", err: injected}, path, []byte("new"), 0o644)
	if !errors.Is(err, injected) || !strings.Contains(err.Error(), "not durably") {
		t.Fatalf("err = %v, want the injected failure, saying the file is not durable", err)
	}
	assertFile(t, path, "new")
	assertOnly(t, dir, "config")
}

func TestWriteMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "config")
	err := atomicfile.Write(path, []byte("x"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want not-exist naming %s", err, path)
	}
}

// TestWriteConcurrent: writers of one path never share a temporary file,
// so the file holds one writer's content whole.
func TestWriteConcurrent(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "contexts.json")
	const writers = 8
	contents := make([][]byte, writers)
	for i := range contents {
		contents[i] = bytes.Repeat([]byte{'a' + byte(i)}, 64<<10*(i+1))
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			for range 5 {
				if err := atomicfile.Write(path, contents[i], 0o600); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range contents {
		found = found || bytes.Equal(got, c)
	}
	if !found {
		t.Fatalf("file holds %d bytes that are no writer's whole content", len(got))
	}
	assertOnly(t, dir, "contexts.json")
}

// faultFS is the OS file system failing one step with err.
type faultFS struct {
	atomicfile.OS
	failAt string // open, write, sync, close, rename or syncdir
	err    error
}

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (atomicfile.File, error) {
	if f.failAt == "open" {
		return nil, f.err
	}
	file, err := f.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Rename(oldname, newname string) error {
	if f.failAt == "rename" {
		return f.err
	}
	return f.OS.Rename(oldname, newname)
}

func (f *faultFS) SyncDir(dir string) error {
	if f.failAt == "syncdir" {
		return f.err
	}
	return f.OS.SyncDir(dir)
}

type faultFile struct {
	atomicfile.File
	fs *faultFS
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.failAt == "write" {
		// A short write: half the bytes reach the file.
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		return n, errors.Join(f.fs.err, err)
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.fs.failAt == "sync" {
		return f.fs.err
	}
	return f.File.Sync()
}

func (f *faultFile) Close() error {
	err := f.File.Close()
	if f.fs.failAt == "close" {
		return errors.Join(f.fs.err, err)
	}
	return err
}

func assertFile(tb testing.TB, path, want string) {
	tb.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if string(got) != want {
		tb.Fatalf("%s holds %q, want %q", path, got, want)
	}
}

// assertOnly checks that dir holds exactly the named entries: no temporary
// file is left behind.
func assertOnly(tb testing.TB, dir string, names ...string) {
	tb.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		tb.Fatalf("%s holds %q, want %q", dir, got, names)
	}
}

// currentUmask is the process umask, read off a file created with 0777.
func currentUmask(tb testing.TB, dir string) fs.FileMode {
	tb.Helper()
	path := filepath.Join(dir, "umask-probe")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o777)
	if err != nil {
		tb.Fatal(err)
	}
	fi, err := f.Stat()
	if err = errors.Join(err, f.Close(), os.Remove(path)); err != nil {
		tb.Fatal(err)
	}
	return 0o777 &^ fi.Mode().Perm()
}

func TestSyncDir(t *testing.T) {
	if err := atomicfile.SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if err := atomicfile.SyncDir(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("SyncDir(missing) = %v, want not-exist naming the directory", err)
	}
}
