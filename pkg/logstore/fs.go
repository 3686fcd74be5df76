package logstore

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/exp/mmap"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// FS is the file layer under a Log: every file the engine creates, writes,
// syncs, maps or removes goes through it, so tests can inject failures.
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Map maps a whole file read-only (sealed segments).
	Map(name string) (Mapped, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm fs.FileMode) error
	ReadDir(dir string) ([]fs.DirEntry, error)
	// SyncDir fsyncs a directory, making creations, renames and removals in
	// it durable.
	SyncDir(dir string) error
}

// spaceReporter is an optional FS capability: the bytes free to an
// unprivileged writer in dir, for the error of a write refused for lack of
// space.
type spaceReporter interface {
	FreeBytes(dir string) (int64, error)
}

// isNoSpace says whether a file system error means the disk or the quota
// is full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// File is the subset of *os.File the engine uses.
type File interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
	Close() error
}

// Mapped is a read-only memory mapping of a whole file.
type Mapped interface {
	io.ReaderAt
	Len() int
	Close() error
}

// OSFS is the real file system; sealed segments are mapped with
// golang.org/x/exp/mmap.
type OSFS struct{}

// OpenFile implements FS.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Map implements FS.
func (OSFS) Map(name string) (Mapped, error) {
	m, err := mmap.Open(name)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename implements FS.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll implements FS.
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

// ReadDir implements FS.
func (OSFS) ReadDir(dir string) ([]fs.DirEntry, error) { return os.ReadDir(dir) }

// SyncDir implements FS.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// createFile creates name (failing if it exists), syncs it and its
// directory, and returns it open for reading and writing.
func createFile(fsys FS, name string) (File, error) {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return f, nil
}

// writeFileAtomic replaces name with data through fsys: temp file, fsync,
// rename, fsync directory. A crash leaves either the old or the new
// content, and at worst a leftover temp file (its name ends in .tmp), which
// recovery removes.
func writeFileAtomic(fsys FS, name string, data []byte) error {
	return atomicfile.WriteFS(atomicFS{fsys}, name, data, 0o644)
}

// atomicFS is an FS as pkg/atomicfile takes it.
type atomicFS struct{ FS }

func (a atomicFS) OpenFile(name string, flag int, perm fs.FileMode) (atomicfile.File, error) {
	f, err := a.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// readFile reads a whole (small) file through fsys, refusing files larger
// than limit.
func readFile(fsys FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, errors.Join(err, f.Close())
	}
	if fi.Size() > limit {
		return nil, errors.Join(errors.New("logstore: file too large"), f.Close())
	}
	b := make([]byte, fi.Size())
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errors.Join(err, f.Close())
	}
	return b[:n], f.Close()
}
