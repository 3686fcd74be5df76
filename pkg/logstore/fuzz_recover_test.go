package logstore

import (
	"path/filepath"
	"slices"
	"testing"
)

// fuzzEdit sizes: an input is a selector byte then up to maxFuzzEdits
// edits of fuzzEditSize bytes each.
const (
	fuzzEditSize = 5
	maxFuzzEdits = 8
)

// decodeFuzzDamage turns a fuzz input into damage to one of the seed
// directories. in[0] bit 0 picks the directory (0: after a clean Close,
// 1: as kill -9 left it); then each 5 bytes [file, pos hi, pos lo, op,
// val] edit the file'th file (by name order, modulo their number):
//
//	op%6 == 0  set the byte at pos to val
//	op%6 == 1  xor the byte at pos with val (1 if val is 0)
//	op%6 == 2  truncate at pos
//	op%6 == 3  zero from pos to the end
//	op%6 == 4  append val%64+1 garbage bytes
//	op%6 == 5  copy up to one frame's bytes from position val*len/256 to pos
//
// Positions are taken modulo the file's current length (plus one where the
// end is a position).
func decodeFuzzDamage(models []*recModel, in []byte) (*recModel, memImage) {
	if len(in) == 0 {
		return models[0], models[0].pristine
	}
	m := models[int(in[0]&1)%len(models)]
	img := m.pristine.clone()
	names := img.names(m.dir)
	in = in[1:]
	for e := 0; e < maxFuzzEdits && len(in) >= fuzzEditSize; e++ {
		ed := in[:fuzzEditSize]
		in = in[fuzzEditSize:]
		p := filepath.Join(m.dir, names[int(ed[0])%len(names)])
		b := slices.Clone(img.files[p])
		pos := int(ed[1])<<8 | int(ed[2])
		val := ed[4]
		switch ed[3] % 6 {
		case 0:
			if len(b) > 0 {
				b[pos%len(b)] = val
			}
		case 1:
			if len(b) > 0 {
				b[pos%len(b)] ^= max(val, 1)
			}
		case 2:
			b = b[:pos%(len(b)+1)]
		case 3:
			clear(b[pos%(len(b)+1):])
		case 4:
			b = append(b, garbage()[:int(val)%64+1]...)
		case 5:
			if len(b) > 0 {
				dst, src := pos%len(b), int(val)*len(b)/256
				copy(b[dst:], b[src:min(len(b), src+int(damageFrame()))])
			}
		}
		img.files[p] = b
	}
	return m, img
}

// FuzzRecover damages a real log directory (a few segments, the
// recovery point, the leader-epoch checkpoint; after a clean Close or as
// kill -9 left it) with fuzzer-chosen edits, reopens it and checks the
// recovery invariants of invariants_test.go: the records an edit touched
// are known from the bytes, so every invariant applies.
func FuzzRecover(f *testing.F) {
	clean, crash := buildDamageLog(f, SyncPolicy{Mode: SyncAlways}, 22)
	models := []*recModel{clean, crash}
	f.Add([]byte{0})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, img := decodeFuzzDamage(models, in)
		for _, v := range checkRecovery(t, memHost{dir: damageDir}, m, img) {
			t.Errorf("invariant %s: %s", v.inv, v.msg)
		}
	})
}
