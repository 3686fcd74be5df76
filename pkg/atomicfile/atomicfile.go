// Package atomicfile replaces whole files so that readers, and the file
// after a crash or a power loss, see either the old content or all of the
// new one, never a torn mix.
//
// It is the one place Strata writes a file this way: checkpoints of the
// storage engine and the broker, topic configurations, storage ids, the
// cached ACL policy, certificates, keys and the CLI's contexts.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// TempSuffix ends the name of every temporary file Write creates (beside
// the target, as ".<name>.<random>.tmp"), so that a directory's owner can
// recognise and remove what a crash left behind.
const TempSuffix = ".tmp"

// FS is the file layer WriteFS goes through. OS is the real one; a caller
// that routes all its file operations through its own layer (the storage
// engine, whose crash tests replay every operation) passes that.
type FS interface {
	// OpenFile is os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	// SyncDir fsyncs a directory, making a rename in it durable.
	SyncDir(dir string) error
}

// File is what WriteFS needs of an open file.
type File interface {
	io.WriterAt
	Sync() error
	Close() error
}

// OS is the operating system's file system.
type OS struct{}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// SyncDir fsyncs the directory dir, making the creations, renames and
// removals in it durable; for callers that rename or remove on their own
// (a directory moved aside).
func SyncDir(dir string) error {
	if err := (OS{}).SyncDir(dir); err != nil {
		return fmt.Errorf("atomicfile: sync directory %s: %w", dir, err)
	}
	return nil
}

// Write replaces path with data on the operating system's file system; see
// WriteFS.
func Write(path string, data []byte, perm fs.FileMode) error {
	return WriteFS(OS{}, path, data, perm)
}

// WriteFS replaces path with data: it writes a new temporary file in the
// same directory (created with perm, before the umask, as os.WriteFile
// does), fsyncs and closes it, renames it over path and fsyncs the
// directory.
//
// When it fails before the rename, path is untouched and the temporary
// file removed. When only the final directory fsync fails, path already
// holds data, but a crash could still bring back the old content; the
// error says so. Concurrent writers of one path do not share a temporary
// file, so path ends up holding one of their contents whole.
func WriteFS(fsys FS, path string, data []byte, perm fs.FileMode) error {
	tmp, f, err := createTemp(fsys, path, perm)
	if err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if _, err = f.WriteAt(data, 0); err == nil {
		err = f.Sync()
	}
	err = errors.Join(err, f.Close())
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		if rmErr := fsys.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
		return fmt.Errorf("atomicfile: write %s: %w", path, err)
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("atomicfile: write %s: replaced, but not durably: sync directory: %w", path, err)
	}
	return nil
}

// createTemp creates a new, empty temporary file for path in its
// directory, as os.CreateTemp does, but through fsys and with perm.
func createTemp(fsys FS, path string, perm fs.FileMode) (string, File, error) {
	dir, base := filepath.Split(path)
	for range 100 {
		tmp := filepath.Join(dir, "."+base+"."+strconv.FormatUint(uint64(rand.Uint32()), 36)+TempSuffix)
		f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return tmp, f, nil
	}
	return "", nil, fmt.Errorf("create temporary file in %s: every name tried exists", dir)
}
