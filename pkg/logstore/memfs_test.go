package logstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// memFS is an in-memory FS that models the page cache against stable
// storage, for crash and damage tests.
//
// Every file (an inode) has its current content, what reads see, and its
// durable content, as of its last Sync. Every directory has its current
// entries and its durable entries, as of its last SyncDir: a file created,
// renamed or removed is durable in its directory only once the directory is
// synced. Directories themselves (MkdirAll) are durable at once.
//
// Every mutating call (create, write, truncate, sync, syncdir, rename,
// remove, mkdir) is recorded as a memOp and applied by memState.apply, so a
// prefix of the recorded sequence can be replayed onto the starting state
// (replay) to give the state a crash at that point leaves:
//   - process crash (kill -9): current content under current names; the
//     page cache survives;
//   - power loss: durable content under durable names only;
//   - power loss with zero-filled tails: as power loss, but a file whose
//     current size is past its durable size keeps that size, the missing
//     bytes read as zeros (a journaled size update whose data never reached
//     the disk, as delayed allocation can leave).
//
// Map returns a live view of the file (MAP_SHARED: later writes show
// through it) whose Len is fixed at map time; a read through a mapping past
// the file's current end would be SIGBUS on a real mapping, so it fails and
// is counted (sigbusCount). Safe for concurrent use: one mutex guards all.
type memFS struct {
	mu      sync.Mutex
	st      *memState
	base    *memState // the state at creation; ops replay onto a copy
	ops     []memOp
	handles int // open files and mappings
	sigbus  int
}

type memOpKind uint8

const (
	memMkdir memOpKind = iota
	memCreate
	memWrite
	memTruncate
	memSync
	memSyncDir
	memRename
	memRemove
)

func (k memOpKind) String() string {
	return [...]string{"mkdir", "create", "write", "truncate", "sync", "syncdir", "rename", "remove"}[k]
}

// memOp is one recorded mutation. ino names the inode of create, write,
// truncate and sync; path the file (or directory) of create, mkdir,
// syncdir, remove and the old name of rename; path2 its new name.
type memOp struct {
	kind  memOpKind
	path  string
	path2 string
	ino   int
	off   int64 // write position; truncate size
	data  []byte
}

// describe renders op for failure messages; name maps an inode to a file
// name it had.
func (o memOp) describe(name func(ino int) string) string {
	switch o.kind {
	case memCreate:
		return fmt.Sprintf("create %s", filepath.Base(o.path))
	case memWrite:
		return fmt.Sprintf("write %s @%d +%d", name(o.ino), o.off, len(o.data))
	case memTruncate:
		return fmt.Sprintf("truncate %s to %d", name(o.ino), o.off)
	case memSync:
		return fmt.Sprintf("fsync %s", name(o.ino))
	case memRename:
		return fmt.Sprintf("rename %s -> %s", filepath.Base(o.path), filepath.Base(o.path2))
	case memRemove:
		return fmt.Sprintf("remove %s", filepath.Base(o.path))
	}
	return fmt.Sprintf("%s %s", o.kind, o.path)
}

type memInode struct {
	data   []byte // current content (the page cache)
	synced []byte // content as of the last Sync
}

// memState is the whole modelled file system: inodes, the current and the
// durable name spaces (path -> inode) and the directories.
type memState struct {
	dirs    map[string]bool
	inodes  map[int]*memInode
	cur     map[string]int
	dur     map[string]int
	nextIno int
}

func newMemState() *memState {
	return &memState{
		dirs:   map[string]bool{string(filepath.Separator): true},
		inodes: map[int]*memInode{},
		cur:    map[string]int{},
		dur:    map[string]int{},
	}
}

func (s *memState) clone() *memState {
	c := &memState{
		dirs:    maps.Clone(s.dirs),
		inodes:  make(map[int]*memInode, len(s.inodes)),
		cur:     maps.Clone(s.cur),
		dur:     maps.Clone(s.dur),
		nextIno: s.nextIno,
	}
	for id, n := range s.inodes {
		c.inodes[id] = &memInode{data: slices.Clone(n.data), synced: slices.Clone(n.synced)}
	}
	return c
}

// apply performs one mutation; the caller has validated it.
func (s *memState) apply(op memOp) {
	switch op.kind {
	case memMkdir:
		s.dirs[op.path] = true
	case memCreate:
		s.inodes[op.ino] = &memInode{}
		s.nextIno = max(s.nextIno, op.ino+1)
		s.cur[op.path] = op.ino
	case memWrite:
		n := s.inodes[op.ino]
		if end := op.off + int64(len(op.data)); end > int64(len(n.data)) {
			n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
		}
		copy(n.data[op.off:], op.data)
	case memTruncate:
		n := s.inodes[op.ino]
		if op.off <= int64(len(n.data)) {
			n.data = n.data[:op.off:op.off]
		} else {
			n.data = append(n.data, make([]byte, op.off-int64(len(n.data)))...)
		}
	case memSync:
		n := s.inodes[op.ino]
		n.synced = slices.Clone(n.data)
	case memSyncDir:
		for p := range s.dur {
			if filepath.Dir(p) == op.path {
				delete(s.dur, p)
			}
		}
		for p, id := range s.cur {
			if filepath.Dir(p) == op.path {
				s.dur[p] = id
			}
		}
	case memRename:
		s.cur[op.path2] = s.cur[op.path]
		delete(s.cur, op.path)
	case memRemove:
		delete(s.cur, op.path)
	}
}

// memImage is a directory tree's files and content: a crash snapshot, or
// the starting state of a memFS.
type memImage struct {
	dirs  []string
	files map[string][]byte // absolute path -> content
}

// clone copies the file map; contents are shared, so replace a file's
// slice rather than writing into it.
func (img memImage) clone() memImage {
	return memImage{dirs: slices.Clone(img.dirs), files: maps.Clone(img.files)}
}

// names lists the files directly in dir, sorted.
func (img memImage) names(dir string) []string {
	var out []string
	for p := range img.files {
		if filepath.Dir(p) == dir {
			out = append(out, filepath.Base(p))
		}
	}
	slices.Sort(out)
	return out
}

func (img memImage) equal(o memImage) bool {
	return maps.EqualFunc(img.files, o.files, bytes.Equal)
}

// processCrashImage is what kill -9 leaves: current content, current names.
func (s *memState) processCrashImage() memImage {
	img := memImage{files: make(map[string][]byte, len(s.cur))}
	for p, id := range s.cur {
		img.files[p] = slices.Clone(s.inodes[id].data)
	}
	img.dirs = slices.Sorted(maps.Keys(s.dirs))
	return img
}

// powerLossImage is what a power loss leaves: durable content under durable
// names; with zeroTails a file keeps its current size, the bytes never
// synced past its durable content reading as zeros.
func (s *memState) powerLossImage(zeroTails bool) memImage {
	img := memImage{files: make(map[string][]byte, len(s.dur))}
	for p, id := range s.dur {
		n := s.inodes[id]
		b := slices.Clone(n.synced)
		if zeroTails && len(n.data) > len(b) {
			b = append(b, make([]byte, len(n.data)-len(b))...)
		}
		img.files[p] = b
	}
	img.dirs = slices.Sorted(maps.Keys(s.dirs))
	return img
}

// newMemFS starts a memFS whose files are img's, all durable.
func newMemFS(img memImage) *memFS {
	s := newMemState()
	for _, d := range img.dirs {
		addDirs(s.dirs, d)
	}
	for _, p := range slices.Sorted(maps.Keys(img.files)) {
		addDirs(s.dirs, filepath.Dir(p))
		id := s.nextIno
		s.nextIno++
		b := slices.Clone(img.files[p])
		s.inodes[id] = &memInode{data: b, synced: slices.Clone(b)}
		s.cur[p], s.dur[p] = id, id
	}
	return &memFS{st: s, base: s.clone()}
}

func addDirs(dirs map[string]bool, d string) {
	for ; !dirs[d]; d = filepath.Dir(d) {
		dirs[d] = true
	}
}

// doLocked applies and records op (mu held).
func (m *memFS) doLocked(op memOp) {
	if op.kind == memWrite {
		op.data = slices.Clone(op.data)
	}
	m.st.apply(op)
	m.ops = append(m.ops, op)
}

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// OpenFile implements FS.
func (m *memFS) OpenFile(name string, flag int, _ fs.FileMode) (File, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.dirs[name] {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	id, ok := m.st.cur[name]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		if !m.st.dirs[filepath.Dir(name)] {
			return nil, pathErr("open", name, fs.ErrNotExist)
		}
		id = m.st.nextIno
		m.doLocked(memOp{kind: memCreate, path: name, ino: id})
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	if ok && flag&os.O_TRUNC != 0 && acc != os.O_RDONLY && len(m.st.inodes[id].data) > 0 {
		m.doLocked(memOp{kind: memTruncate, ino: id, off: 0})
	}
	m.handles++
	return &memFile{m: m, name: name, ino: id, flag: flag}, nil
}

// Map implements FS.
func (m *memFS) Map(name string) (Mapped, error) {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.st.cur[name]
	if !ok {
		return nil, pathErr("mmap", name, fs.ErrNotExist)
	}
	m.handles++
	return &memMapping{m: m, name: name, ino: id, n: len(m.st.inodes[id].data)}, nil
}

// Remove implements FS.
func (m *memFS) Remove(name string) error {
	name = filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.st.dirs[name] {
		for p := range m.st.cur {
			if filepath.Dir(p) == name {
				return pathErr("remove", name, syscall.ENOTEMPTY)
			}
		}
		for d := range m.st.dirs {
			if d != name && filepath.Dir(d) == name {
				return pathErr("remove", name, syscall.ENOTEMPTY)
			}
		}
		delete(m.st.dirs, name)
		return nil
	}
	if _, ok := m.st.cur[name]; !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	m.doLocked(memOp{kind: memRemove, path: name})
	return nil
}

// Rename implements FS (files only).
func (m *memFS) Rename(oldname, newname string) error {
	oldname, newname = filepath.Clean(oldname), filepath.Clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.st.cur[oldname]; !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if !m.st.dirs[filepath.Dir(newname)] || m.st.dirs[newname] {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.ENOENT}
	}
	if oldname != newname {
		m.doLocked(memOp{kind: memRename, path: oldname, path2: newname})
	}
	return nil
}

// MkdirAll implements FS.
func (m *memFS) MkdirAll(dir string, _ fs.FileMode) error {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	var missing []string
	for d := dir; !m.st.dirs[d]; d = filepath.Dir(d) {
		if _, ok := m.st.cur[d]; ok {
			return pathErr("mkdir", d, syscall.ENOTDIR)
		}
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		m.doLocked(memOp{kind: memMkdir, path: d})
	}
	return nil
}

// ReadDir implements FS: the current entries, sorted by name.
func (m *memFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.st.dirs[dir] {
		return nil, pathErr("open", dir, fs.ErrNotExist)
	}
	var out []fs.DirEntry
	for p, id := range m.st.cur {
		if filepath.Dir(p) == dir {
			out = append(out, fs.FileInfoToDirEntry(memInfo{name: filepath.Base(p), size: int64(len(m.st.inodes[id].data))}))
		}
	}
	for d := range m.st.dirs {
		if d != dir && filepath.Dir(d) == dir {
			out = append(out, fs.FileInfoToDirEntry(memInfo{name: filepath.Base(d), dir: true}))
		}
	}
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (m *memFS) SyncDir(dir string) error {
	dir = filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.st.dirs[dir] {
		return pathErr("open", dir, fs.ErrNotExist)
	}
	m.doLocked(memOp{kind: memSyncDir, path: dir})
	return nil
}

// opCount is the number of mutations recorded so far.
func (m *memFS) opCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ops)
}

// op returns recorded mutation i, described.
func (m *memFS) op(i int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops[i].describe(m.inodeNameLocked)
}

// inodeNameLocked names an inode by a path it was created or renamed to.
func (m *memFS) inodeNameLocked(ino int) string {
	name := fmt.Sprintf("inode %d", ino)
	for p, id := range m.base.cur {
		if id == ino {
			name = filepath.Base(p)
		}
	}
	for _, o := range m.ops {
		if o.kind == memCreate && o.ino == ino {
			name = filepath.Base(o.path)
		}
	}
	return name
}

// crashImage is the process-crash state now.
func (m *memFS) crashImage() memImage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.processCrashImage()
}

// powerLossImage is the power-loss state now.
func (m *memFS) powerLossImage(zeroTails bool) memImage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.st.powerLossImage(zeroTails)
}

// replay calls fn with the state after every prefix ops[:k] of the recorded
// mutations, k = 0..opCount(), in order, until fn returns false. fn must
// not keep s.
func (m *memFS) replay(fn func(k int, s *memState) bool) {
	m.mu.Lock()
	s, ops := m.base.clone(), slices.Clone(m.ops)
	m.mu.Unlock()
	if !fn(0, s) {
		return
	}
	for i, op := range ops {
		s.apply(op)
		if !fn(i+1, s) {
			return
		}
	}
}

// openHandles is the files and mappings not closed yet.
func (m *memFS) openHandles() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handles
}

// sigbusCount is the reads through a mapping past its file's current end.
func (m *memFS) sigbusCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sigbus
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

// memFile is an open file: it names an inode, so it keeps reading and
// writing the same file after a rename or removal, as a descriptor does.
type memFile struct {
	m      *memFS
	name   string
	ino    int
	flag   int
	closed bool // under m.mu
}

func (f *memFile) writable() bool { return f.flag&(os.O_WRONLY|os.O_RDWR) != 0 }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return 0, pathErr("read", f.name, os.ErrClosed)
	}
	if off < 0 {
		return 0, pathErr("readat", f.name, errors.New("negative offset"))
	}
	data := f.m.st.inodes[f.ino].data
	if len(p) == 0 {
		return 0, nil // as os.File.ReadAt
	}
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	n := copy(p, data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	switch {
	case f.closed:
		return 0, pathErr("write", f.name, os.ErrClosed)
	case !f.writable():
		return 0, pathErr("write", f.name, syscall.EBADF)
	case f.flag&os.O_APPEND != 0:
		return 0, errors.New("os: invalid use of WriteAt on file opened with O_APPEND")
	case off < 0:
		return 0, pathErr("writeat", f.name, errors.New("negative offset"))
	}
	if len(p) > 0 {
		f.m.doLocked(memOp{kind: memWrite, ino: f.ino, off: off, data: p})
	}
	return len(p), nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return pathErr("sync", f.name, os.ErrClosed)
	}
	f.m.doLocked(memOp{kind: memSync, ino: f.ino})
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	switch {
	case f.closed:
		return pathErr("truncate", f.name, os.ErrClosed)
	case !f.writable():
		return pathErr("truncate", f.name, syscall.EINVAL)
	case size < 0:
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.m.doLocked(memOp{kind: memTruncate, ino: f.ino, off: size})
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return nil, pathErr("stat", f.name, os.ErrClosed)
	}
	return memInfo{name: filepath.Base(f.name), size: int64(len(f.m.st.inodes[f.ino].data))}, nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, os.ErrClosed)
	}
	f.closed = true
	f.m.handles--
	return nil
}

// memMapping is a read-only MAP_SHARED view of an inode, n bytes long.
type memMapping struct {
	m      *memFS
	name   string
	ino    int
	n      int
	closed bool // under m.mu
}

func (mp *memMapping) Len() int { return mp.n }

// ReadAt is golang.org/x/exp/mmap's ReaderAt.ReadAt over the live file.
func (mp *memMapping) ReadAt(p []byte, off int64) (int, error) {
	mp.m.mu.Lock()
	defer mp.m.mu.Unlock()
	if mp.closed {
		return 0, errors.New("mmap: closed")
	}
	if off < 0 || int64(mp.n) < off {
		return 0, fmt.Errorf("mmap: invalid ReadAt offset %d", off)
	}
	want := min(int64(len(p)), int64(mp.n)-off)
	data := mp.m.st.inodes[mp.ino].data
	if off+want > int64(len(data)) {
		mp.m.sigbus++
		return 0, fmt.Errorf("memfs: SIGBUS: %s mapped with %d bytes, now %d, read at %d+%d", mp.name, mp.n, len(data), off, want)
	}
	n := copy(p[:want], data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (mp *memMapping) Close() error {
	mp.m.mu.Lock()
	defer mp.m.mu.Unlock()
	if mp.closed {
		return errors.New("mmap: closed twice")
	}
	mp.closed = true
	mp.m.handles--
	return nil
}

// materialize writes the files of img under memDir into realDir, so a case
// can be cross-checked on the real file system (OSFS, real mmap).
func materialize(tb testing.TB, img memImage, memDir, realDir string) {
	tb.Helper()
	for p, b := range img.files {
		rel, err := filepath.Rel(memDir, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		dst := filepath.Join(realDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// imageFromDir reads the regular files of realDir (one level) as an image
// of memDir: the inverse of materialize.
func imageFromDir(tb testing.TB, realDir, memDir string) memImage {
	tb.Helper()
	ents, err := os.ReadDir(realDir)
	if err != nil {
		tb.Fatal(err)
	}
	img := memImage{dirs: []string{memDir}, files: map[string][]byte{}}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(realDir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		img.files[filepath.Join(memDir, e.Name())] = b
	}
	return img
}

// TestMemFS pins down the model the crash and damage suites rely on.
func TestMemFS(t *testing.T) {
	const dir = "/d"
	newFS := func(t *testing.T) *memFS {
		t.Helper()
		m := newMemFS(memImage{})
		if err := m.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return m
	}
	write := func(t *testing.T, f File, s string, off int64) {
		t.Helper()
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	content := func(img memImage, name string) (string, bool) {
		b, ok := img.files[filepath.Join(dir, name)]
		return string(b), ok
	}

	t.Run("unsynced create is lost on power loss", func(t *testing.T) {
		m := newFS(t)
		f, err := m.OpenFile(dir+"/a", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		must(t, err)
		write(t, f, "hello", 0)
		must(t, f.Sync())
		if _, ok := content(m.powerLossImage(false), "a"); ok {
			t.Fatal("file durable before SyncDir")
		}
		if s, ok := content(m.crashImage(), "a"); !ok || s != "hello" {
			t.Fatalf("process crash lost the page cache: %q %v", s, ok)
		}
		must(t, m.SyncDir(dir))
		if s, _ := content(m.powerLossImage(false), "a"); s != "hello" {
			t.Fatalf("power loss after sync: %q", s)
		}
		write(t, f, " world", 5)
		if s, _ := content(m.powerLossImage(false), "a"); s != "hello" {
			t.Fatalf("unsynced write survived power loss: %q", s)
		}
		if s, _ := content(m.powerLossImage(true), "a"); s != "hello\x00\x00\x00\x00\x00\x00" {
			t.Fatalf("zero-tail power loss: %q", s)
		}
		if s, _ := content(m.crashImage(), "a"); s != "hello world" {
			t.Fatalf("process crash: %q", s)
		}
		must(t, f.Close())
		if m.openHandles() != 0 {
			t.Fatalf("%d handles open", m.openHandles())
		}
	})

	t.Run("rename and remove durable only after SyncDir", func(t *testing.T) {
		m := newFS(t)
		f, err := createFile(m, dir+"/a")
		must(t, err)
		write(t, f, "x", 0)
		must(t, f.Sync())
		must(t, f.Close())
		must(t, m.Rename(dir+"/a", dir+"/b"))
		pl := m.powerLossImage(false)
		if _, ok := content(pl, "a"); !ok {
			t.Fatal("old name lost before SyncDir")
		}
		if _, ok := content(pl, "b"); ok {
			t.Fatal("new name durable before SyncDir")
		}
		must(t, m.SyncDir(dir))
		must(t, m.Remove(dir+"/b"))
		if s, _ := content(m.powerLossImage(false), "b"); s != "x" {
			t.Fatalf("removal durable before SyncDir: %q", s)
		}
		if _, ok := content(m.crashImage(), "b"); ok {
			t.Fatal("removed file in the process-crash image")
		}
	})

	t.Run("open flags", func(t *testing.T) {
		m := newFS(t)
		if _, err := m.OpenFile(dir+"/a", os.O_RDONLY, 0); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("open missing: %v", err)
		}
		f, err := m.OpenFile(dir+"/a", os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		write(t, f, "abc", 0)
		must(t, f.Close())
		if _, err := m.OpenFile(dir+"/a", os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("O_EXCL on existing: %v", err)
		}
		r, err := m.OpenFile(dir+"/a", os.O_RDONLY, 0)
		must(t, err)
		if _, err := r.WriteAt([]byte("z"), 0); err == nil {
			t.Fatal("write through O_RDONLY")
		}
		if err := r.Truncate(0); err == nil {
			t.Fatal("truncate through O_RDONLY")
		}
		must(t, r.Sync())
		b := make([]byte, 5)
		if n, err := r.ReadAt(b, 1); n != 2 || !errors.Is(err, io.EOF) || string(b[:n]) != "bc" {
			t.Fatalf("short ReadAt: %d %v %q", n, err, b[:n])
		}
		must(t, r.Close())
		if err := r.Close(); err == nil {
			t.Fatal("double close")
		}
		f, err = m.OpenFile(dir+"/a", os.O_RDWR|os.O_TRUNC, 0)
		must(t, err)
		if fi, err := f.Stat(); err != nil || fi.Size() != 0 {
			t.Fatalf("O_TRUNC: %v %v", fi, err)
		}
		must(t, f.Close())
		if _, err := m.OpenFile("/nodir/a", os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("create in a missing directory: %v", err)
		}
	})

	t.Run("ReadDir sorted", func(t *testing.T) {
		m := newFS(t)
		for _, n := range []string{"c", "a", "b"} {
			f, err := m.OpenFile(dir+"/"+n, os.O_RDWR|os.O_CREATE, 0o644)
			must(t, err)
			must(t, f.Close())
		}
		ents, err := m.ReadDir(dir)
		must(t, err)
		var got []string
		for _, e := range ents {
			got = append(got, e.Name())
		}
		if strings.Join(got, ",") != "a,b,c" {
			t.Fatalf("ReadDir = %v", got)
		}
	})

	t.Run("mapping is live with a fixed length", func(t *testing.T) {
		m := newFS(t)
		f, err := m.OpenFile(dir+"/a", os.O_RDWR|os.O_CREATE, 0o644)
		must(t, err)
		write(t, f, "abcd", 0)
		mp, err := m.Map(dir + "/a")
		must(t, err)
		write(t, f, "XY", 1)
		write(t, f, "tail", 4)
		b := make([]byte, 4)
		if n, err := mp.ReadAt(b, 0); err != nil || string(b[:n]) != "aXYd" || mp.Len() != 4 {
			t.Fatalf("mapping: %q %v len %d", b[:n], err, mp.Len())
		}
		must(t, f.Truncate(2))
		if _, err := mp.ReadAt(b, 0); err == nil || m.sigbusCount() != 1 {
			t.Fatalf("read past a shrunk file: %v, sigbus %d", err, m.sigbusCount())
		}
		must(t, mp.Close())
		must(t, f.Close())
	})

	t.Run("replay reaches every prefix", func(t *testing.T) {
		m := newFS(t)
		f, err := createFile(m, dir+"/a")
		must(t, err)
		write(t, f, "one", 0)
		mid := m.opCount()
		must(t, f.Sync())
		write(t, f, "two", 3)
		must(t, f.Close())
		var states []string
		m.replay(func(k int, s *memState) bool {
			st, _ := content(s.processCrashImage(), "a")
			pl, _ := content(s.powerLossImage(false), "a")
			states = append(states, st+"/"+pl)
			return true
		})
		if len(states) != m.opCount()+1 {
			t.Fatalf("%d states for %d ops", len(states), m.opCount())
		}
		if states[mid] != "one/" || states[mid+1] != "one/one" || states[len(states)-1] != "onetwo/one" {
			t.Fatalf("states %q (mid %d)", states, mid)
		}
		if got := m.crashImage(); !got.equal(func() memImage {
			var last memImage
			m.replay(func(_ int, s *memState) bool { last = s.processCrashImage(); return true })
			return last
		}()) {
			t.Fatal("replaying every op does not give the live state")
		}
	})

	t.Run("a Log runs on it", func(t *testing.T) {
		m := newFS(t)
		opts := Options{MaxSegmentBytes: 200, MaxIndexBytes: 120, Sync: SyncPolicy{Mode: SyncAlways}, FS: m}
		l := openLog(t, dir, opts)
		appendN(t, l, 0, 20, 3)
		checkRange(t, l, 0, 20)
		closeLog(t, l)
		if m.openHandles() != 0 {
			t.Fatalf("%d handles open after Close", m.openHandles())
		}
		for _, img := range []memImage{m.crashImage(), m.powerLossImage(false)} {
			opts.FS = newMemFS(img)
			l := openLog(t, dir, opts)
			checkRange(t, l, 0, 20)
			closeLog(t, l)
		}
	})

	t.Run("materialize round trip", func(t *testing.T) {
		m := newFS(t)
		f, err := createFile(m, dir+"/a")
		must(t, err)
		write(t, f, "content", 0)
		must(t, f.Close())
		img := m.crashImage()
		real := t.TempDir()
		materialize(t, img, dir, real)
		if back := imageFromDir(t, real, dir); !back.equal(img) {
			t.Fatalf("round trip: %v vs %v", back.files, img.files)
		}
	})
}
