package logstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is an injectable Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openLog(tb testing.TB, dir string, o Options) *Log {
	tb.Helper()
	if o.Logger == nil {
		o.Logger = zaptest.NewLogger(tb)
	}
	l, err := Open(dir, o)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return l
}

func closeLog(tb testing.TB, l *Log) {
	tb.Helper()
	if err := l.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
}

func payload(off int64) []byte { return []byte(fmt.Sprintf("record-%06d", off)) }

// appendN appends n records of payload(offset), in batches of batch.
func appendN(tb testing.TB, l *Log, epoch int32, n, batch int) {
	tb.Helper()
	for n > 0 {
		k := min(n, batch)
		recs := make([]Record, k)
		next := l.LogEndOffset()
		for i := range recs {
			recs[i] = Record{Timestamp: next + int64(i), Payload: payload(next + int64(i))}
		}
		base, err := l.Append(epoch, recs)
		if err != nil {
			tb.Fatalf("Append: %v", err)
		}
		if base != next {
			tb.Fatalf("Append base %d, want %d", base, next)
		}
		n -= k
	}
}

// readAll reads [from, end) with a Reader and checks every record.
func readAll(tb testing.TB, l *Log, from int64) []Frame {
	tb.Helper()
	r, err := l.NewReader(from)
	if err != nil {
		tb.Fatalf("NewReader(%d): %v", from, err)
	}
	defer func() {
		if err := r.Close(); err != nil {
			tb.Fatalf("Reader.Close: %v", err)
		}
	}()
	var out []Frame
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			tb.Fatalf("Next at %d: %v", r.Offset(), err)
		}
		if string(f.Payload) != string(payload(f.Offset)) {
			tb.Fatalf("offset %d payload %q", f.Offset, f.Payload)
		}
		out = append(out, Frame{Offset: f.Offset, Timestamp: f.Timestamp})
	}
}

// checkRange asserts the log holds exactly [start, end) with good payloads.
func checkRange(tb testing.TB, l *Log, start, end int64) {
	tb.Helper()
	if got := l.LogStartOffset(); got != start {
		tb.Fatalf("LogStartOffset %d, want %d", got, start)
	}
	if got := l.LogEndOffset(); got != end {
		tb.Fatalf("LogEndOffset %d, want %d", got, end)
	}
	fs := readAll(tb, l, start)
	if int64(len(fs)) != end-start {
		tb.Fatalf("read %d records, want %d", len(fs), end-start)
	}
	for i, f := range fs {
		if f.Offset != start+int64(i) {
			tb.Fatalf("record %d has offset %d", i, f.Offset)
		}
	}
	for _, off := range []int64{start, (start + end) / 2, end - 1} {
		if off < start || off >= end {
			continue
		}
		f, err := l.Read(off)
		if err != nil || f.Offset != off || string(f.Payload) != string(payload(off)) {
			tb.Fatalf("Read(%d) = %d %q, %v", off, f.Offset, f.Payload, err)
		}
	}
}

// snapshotDir copies a log directory as it is on disk right now: what
// kill -9 leaves behind (the page cache survives a process crash).
func snapshotDir(tb testing.TB, src string) string {
	tb.Helper()
	dst := tb.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}

func segFiles(tb testing.TB, dir, suffix string) []string {
	tb.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// faultFS wraps OSFS and fails writes or fsyncs of store files on demand,
// or runs out of space: noSpace cuts store writes short with ENOSPC,
// noSpaceCreate refuses to create files.
type faultFS struct {
	OSFS
	failWrite     atomic.Bool
	failSync      atomic.Bool
	noSpace       atomic.Bool
	noSpaceCreate atomic.Bool
}

var errInjected = errors.New("injected fault")

func (f *faultFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	if flag&os.O_CREATE != 0 && f.noSpaceCreate.Load() {
		if _, err := os.Stat(name); errors.Is(err, fs.ErrNotExist) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
		}
	}
	file, err := f.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, store: filepath.Ext(name) == storeSuffix}, nil
}

type faultFile struct {
	File
	fs    *faultFS
	store bool
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.store && f.fs.noSpace.Load() {
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		return n, errors.Join(&fs.PathError{Op: "write", Path: "store", Err: syscall.ENOSPC}, err)
	}
	if f.store && f.fs.failWrite.Load() {
		// A short write: half the bytes reach the file.
		n, err := f.File.WriteAt(p[:len(p)/2], off)
		return n, errors.Join(errInjected, err)
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Sync() error {
	if f.store && f.fs.failSync.Load() {
		return errInjected
	}
	return f.File.Sync()
}
