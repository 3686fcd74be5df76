package logstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
)

// FuzzDecodeFrame: any bytes decode to a frame, io.ErrUnexpectedEOF or a
// corruption error, without panicking; a decoded frame re-encodes to itself.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, 0, 1_700_000_000_000, []byte("hello")))
	f.Add(AppendFrame(nil, 1<<40, -1, nil))
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := DecodeFrame(b, 1<<10)
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if n < frameHeaderSize || n > len(b) || len(fr.Raw) != n {
			t.Fatalf("size %d of %d", n, len(b))
		}
		if re := AppendFrame(nil, fr.Offset, fr.Timestamp, fr.Payload); !bytes.Equal(re, b[:n]) {
			t.Fatal("re-encoding differs")
		}
	})
}

// FuzzOpen opens a directory of arbitrary bytes (a store, its index and a
// recovery point, plus a second segment) and reads and appends: no panic,
// no error other than the documented ones.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	l, err := Open(dir, Options{MaxSegmentBytes: 120, MaxIndexBytes: 120})
	if err != nil {
		f.Fatal(err)
	}
	for i := int64(0); i < 6; i++ {
		if _, err := l.Append(0, []Record{{Timestamp: i, Payload: payload(i)}}); err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	st, ix := read(storeName(0)), read(indexName(0))
	f.Add(st, ix, read(recoveryPointFileName))
	f.Add(st, []byte{}, []byte{})
	f.Add(append(st, make([]byte, 64)...), append(ix, make([]byte, 120)...), append(encodeRecoveryPointSlot(new([rpSlotSize]byte), 1, 0), encodeRecoveryPointSlot(new([rpSlotSize]byte), 2, 0)...))
	f.Fuzz(func(t *testing.T, store, index, rp []byte) {
		d := t.TempDir()
		for name, b := range map[string][]byte{
			storeName(0): store, indexName(0): index, recoveryPointFileName: rp,
			storeName(3): store, epochFileName: rp,
		} {
			if err := os.WriteFile(filepath.Join(d, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := Open(d, Options{MaxSegmentBytes: 120, MaxIndexBytes: 120, MaxRecordBytes: 256, Logger: zap.NewNop()})
		if err != nil {
			return // an I/O-level refusal is fine; a panic is not
		}
		defer func() {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}()
		start, end := l.LogStartOffset(), l.LogEndOffset()
		if start > end {
			t.Fatalf("start %d > end %d", start, end)
		}
		for off := start; off < end && off < start+64; off++ {
			if _, err := l.Read(off); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Read(%d): %v", off, err)
			}
		}
		r, err := l.NewReader(start)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 256; i++ {
			_, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Next: %v", err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(l.LatestEpoch()+1, []Record{{Payload: []byte("x")}}); err != nil {
			t.Fatalf("Append: %v", err)
		}
		if _, err := l.Read(l.LogEndOffset() - 1); err != nil {
			t.Fatalf("Read of the appended record: %v", err)
		}
	})
}
