package logstore

import (
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var longFlag = flag.Bool("logstore.long", false,
	"run the long storage damage and crash suites: a larger log, both sync policies, every bit, the OSFS cross-check (also STRATA_LONG=1)")

// longTests says whether to run the long suites, by hand.
func longTests() bool { return *longFlag || os.Getenv("STRATA_LONG") == "1" }

// damageDir is the log directory on the memFS.
const damageDir = "/strata/p0"

// damageFrame is the size of every frame of the damage suite's log.
func damageFrame() int64 { return int64(len(recFrame(0))) }

// damageOptions roll a segment every 5 records or so; the index holds 8.
func damageOptions(policy SyncPolicy) Options {
	return Options{MaxSegmentBytes: 5 * damageFrame(), MaxIndexBytes: 8 * indexEntrySize, Sync: policy, Now: fixedNow}
}

// buildDamageLog appends n records on a memFS in batches of 1 to 3 under
// three leader epochs (0, 1, 3), and returns the model of the directory
// after a clean Close and of what kill -9 leaves with the log still open.
// Under SyncAlways every record is durable; otherwise the log is synced
// once, at about 60% of n, and only the records before are durable in the
// crash image.
func buildDamageLog(tb testing.TB, policy SyncPolicy, n int64) (clean, crash *recModel) {
	tb.Helper()
	mfs := newMemFS(memImage{dirs: []string{damageDir}})
	opts := damageOptions(policy)
	o := opts
	o.FS = mfs
	l := openLog(tb, damageDir, o)
	var epochs []EpochEntry
	durable := int64(-1)
	sizes := []int{1, 2, 1, 3, 2, 1}
	for i := 0; l.LogEndOffset() < n; i++ {
		base := l.LogEndOffset()
		k := min(int64(sizes[i%len(sizes)]), n-base)
		epoch := int32(0)
		switch {
		case base >= 2*n/3:
			epoch = 3
		case base >= n/3:
			epoch = 1
		}
		if len(epochs) == 0 || epochs[len(epochs)-1].Epoch < epoch {
			epochs = append(epochs, EpochEntry{Epoch: epoch, StartOffset: base})
		}
		if got, err := l.Append(epoch, recRecords(base, int(k))); err != nil || got != base {
			tb.Fatalf("Append at %d: %d, %v", base, got, err)
		}
		if policy.Mode != SyncAlways && durable < 0 && l.LogEndOffset() >= n*6/10 {
			if err := l.Sync(); err != nil {
				tb.Fatal(err)
			}
			durable = l.LogEndOffset()
		}
	}
	if policy.Mode == SyncAlways {
		durable = n
	}
	if got := l.Epochs(); !slices.Equal(got, epochs) {
		tb.Fatalf("epochs %v, want %v", got, epochs)
	}
	crashImg := mfs.crashImage()
	closeLog(tb, l)
	cleanImg := mfs.crashImage()
	return newRecModel(tb, cleanImg, damageDir, opts, n, n, epochs),
		newRecModel(tb, crashImg, damageDir, opts, n, durable, epochs)
}

type damageKind uint8

const (
	damageTruncate damageKind = iota // cut the file at pos
	damageFlip                       // flip one bit of the byte at pos
	damageZero                       // zero from pos to the end
	damageGarbage                    // append garbage at the end
)

func (k damageKind) String() string {
	return [...]string{"truncate", "bit flip", "zero to end", "appended garbage"}[k]
}

// damage is one change to one file of an image.
type damage struct {
	kind damageKind
	path string
	pos  int64
	bit  uint8
}

func (d damage) String() string {
	switch d.kind {
	case damageFlip:
		return fmt.Sprintf("%s of bit %d at %d in %s", d.kind, d.bit, d.pos, filepath.Base(d.path))
	case damageGarbage:
		return fmt.Sprintf("%s after %s", d.kind, filepath.Base(d.path))
	}
	return fmt.Sprintf("%s at %d in %s", d.kind, d.pos, filepath.Base(d.path))
}

// garbage is 64 fixed pseudo-random bytes.
func garbage() []byte {
	rng := rand.New(rand.NewPCG(7, 11))
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// apply returns img with d done to a copy of the file, and whether it
// changed anything.
func (d damage) apply(img memImage) (memImage, bool) {
	old := img.files[d.path]
	var b []byte
	switch d.kind {
	case damageTruncate:
		b = slices.Clone(old[:d.pos])
	case damageFlip:
		b = slices.Clone(old)
		b[d.pos] ^= 1 << d.bit
	case damageZero:
		b = slices.Clone(old)
		clear(b[d.pos:])
	case damageGarbage:
		b = append(slices.Clone(old), garbage()...)
	}
	if slices.Equal(b, old) {
		return img, false
	}
	out := img.clone()
	out.files[d.path] = b
	return out, true
}

// damages lists every damage of every file of img: every byte position ×
// {truncate, flip a bit, zero to the end}, and garbage appended once per
// file. The bit flipped is bit pos%8 in segment files, every bit in the
// (small) checkpoint files, or every bit everywhere with everyBit.
func damages(img memImage, dir string, everyBit bool) []damage {
	var out []damage
	for _, name := range img.names(dir) {
		p := filepath.Join(dir, name)
		allBits := everyBit || !strings.HasSuffix(name, storeSuffix) && !strings.HasSuffix(name, indexSuffix)
		for pos := range int64(len(img.files[p])) {
			out = append(out, damage{kind: damageTruncate, path: p, pos: pos})
			if allBits {
				for bit := range uint8(8) {
					out = append(out, damage{kind: damageFlip, path: p, pos: pos, bit: bit})
				}
			} else {
				out = append(out, damage{kind: damageFlip, path: p, pos: pos, bit: uint8(pos % 8)})
			}
			out = append(out, damage{kind: damageZero, path: p, pos: pos})
		}
		out = append(out, damage{kind: damageGarbage, path: p})
	}
	return out
}

// fileRole names what a file of a log directory is, for reports.
func fileRole(img memImage, dir, path string) string {
	name := filepath.Base(path)
	active := int64(-1)
	for _, n := range img.names(dir) {
		if b, ok := parseBase(n, storeSuffix); ok && strings.HasSuffix(n, storeSuffix) {
			active = max(active, b)
		}
	}
	switch {
	case name == recoveryPointFileName:
		return "recovery point"
	case name == epochFileName:
		return "leader-epoch checkpoint"
	case strings.HasSuffix(name, storeSuffix) || strings.HasSuffix(name, indexSuffix):
		kind := "store"
		if strings.HasSuffix(name, indexSuffix) {
			kind = "index"
		}
		b, _ := parseBase(strings.TrimSuffix(strings.TrimSuffix(name, storeSuffix), indexSuffix)+storeSuffix, storeSuffix)
		if b == active {
			return "active " + kind
		}
		return "sealed " + kind
	}
	return "file " + name
}

// damageReport groups the violations of many cases by what broke, where
// and how, so that a run reads as a short list of findings.
type damageReport struct {
	cases  int
	noops  int
	groups map[string]*violationGroup
}

type violationGroup struct {
	inv, role, kind string
	cases           int
	positions       []int64
	files           map[string]bool
	examples        []string
}

func (r *damageReport) add(role string, d damage, vs []violation) {
	if r.groups == nil {
		r.groups = map[string]*violationGroup{}
	}
	seen := map[string]bool{}
	for _, v := range vs {
		if seen[v.inv] {
			continue
		}
		seen[v.inv] = true
		key := v.inv + "|" + role + "|" + d.kind.String()
		g := r.groups[key]
		if g == nil {
			g = &violationGroup{inv: v.inv, role: role, kind: d.kind.String(), files: map[string]bool{}}
			r.groups[key] = g
		}
		g.cases++
		g.files[filepath.Base(d.path)] = true
		if len(g.positions) == 0 || g.positions[len(g.positions)-1] != d.pos {
			g.positions = append(g.positions, d.pos)
		}
		if len(g.examples) < 2 {
			g.examples = append(g.examples, d.String()+": "+v.msg)
		}
	}
}

// report fails tb once per group.
func (r *damageReport) report(tb testing.TB) {
	tb.Helper()
	keys := make([]string, 0, len(r.groups))
	for k := range r.groups {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		g := r.groups[k]
		pos := slices.Clone(g.positions)
		slices.Sort(pos)
		pos = slices.Compact(pos)
		tb.Errorf("invariant %s broken by %s of the %s (%s): %d cases, positions %s\n\te.g. %s",
			g.inv, g.kind, g.role, strings.Join(slices.Sorted(maps.Keys(g.files)), " "), g.cases,
			offRanges(pos), strings.Join(g.examples, "\n\t     "))
	}
}

// runDamage applies every damage to the model's directory and checks the
// invariants of each on h.
func runDamage(tb testing.TB, h recoveryHost, m *recModel, everyBit bool) *damageReport {
	tb.Helper()
	r := &damageReport{}
	// The undamaged directory first: every invariant must hold there too.
	r.cases++
	r.add("undamaged directory", damage{kind: damageGarbage, path: "(none)"}, checkRecovery(tb, h, m, m.pristine))
	for _, d := range damages(m.pristine, m.dir, everyBit) {
		img, changed := d.apply(m.pristine)
		if !changed {
			r.noops++
			continue
		}
		r.cases++
		r.add(fileRole(m.pristine, m.dir, d.path), d, checkRecovery(tb, h, m, img))
	}
	return r
}

// TestDamageEveryByte damages a small log exhaustively (DESIGN.md section
// 7): every byte of every file (stores, indexes, the recovery point, the
// leader-epoch checkpoint) × {truncate, flip a bit, zero to the end,
// appended garbage} × {after a clean Close, as kill -9 leaves it}, and
// checks the recovery invariants of invariants_test.go on each. By default
// it runs a 22-record log under SyncAlways on the memFS; with
// -logstore.long (or STRATA_LONG=1) a 60-record log, both sync policies,
// every bit of every byte, and a cross-check of the 22-record log on the
// real file system (OSFS, real mmap).
func TestDamageEveryByte(t *testing.T) {
	type suite struct {
		name     string
		policy   SyncPolicy
		n        int64
		everyBit bool
		onOS     bool
	}
	always, never := SyncPolicy{Mode: SyncAlways}, SyncPolicy{Mode: SyncNever}
	suites := []suite{{name: "always/22", policy: always, n: 22}}
	if longTests() {
		suites = []suite{
			{name: "always/60", policy: always, n: 60, everyBit: true},
			{name: "never/60", policy: never, n: 60, everyBit: true},
			{name: "always/22/osfs", policy: always, n: 22, onOS: true},
			{name: "never/22/osfs", policy: never, n: 22, onOS: true},
		}
	}
	for _, s := range suites {
		clean, crash := buildDamageLog(t, s.policy, s.n)
		for _, mode := range []struct {
			name string
			m    *recModel
		}{{"clean", clean}, {"crash", crash}} {
			t.Run(s.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				var h recoveryHost = memHost{dir: damageDir}
				if s.onOS {
					h = osHost{root: t.TempDir(), memDir: damageDir, n: new(int)}
				}
				t0 := time.Now()
				r := runDamage(t, h, mode.m, s.everyBit)
				t.Logf("%d damage cases (%d no-op damages skipped) over %d files, %d records (%d durable), in %v",
					r.cases, r.noops, len(mode.m.pristine.files), mode.m.n, mode.m.durable, time.Since(t0).Round(time.Millisecond))
				r.report(t)
			})
		}
	}
}
