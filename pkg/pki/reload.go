package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudflare/cfssl/helpers"
	"go.uber.org/zap"
)

// Files names the PEM files of one identity's TLS material.
type Files struct {
	// CertFile is the leaf certificate (optionally followed by
	// intermediates).
	CertFile string
	// KeyFile is the leaf's private key.
	KeyFile string
	// CAFile holds the CA certificate(s) that peers must chain to.
	CAFile string
}

// DirFiles returns the Files of identity name in an InitCluster directory.
func DirFiles(dir, name string) Files {
	return Files{
		CertFile: filepath.Join(dir, CertFileName(name)),
		KeyFile:  filepath.Join(dir, KeyFileName(name)),
		CAFile:   filepath.Join(dir, CAFileName),
	}
}

// ReloaderOptions configures a Reloader. Zero values mean defaults.
type ReloaderOptions struct {
	// MinCheckInterval is the least time between two stats of the files
	// triggered by handshakes. Default one second.
	MinCheckInterval time.Duration
}

// DefaultMinCheckInterval is ReloaderOptions.MinCheckInterval's default.
const DefaultMinCheckInterval = time.Second

// Reloader holds an identity's certificate, key and CA pool, and reloads
// them from disk when the files change. Handshakes check the files' size
// and modification time (at most once per MinCheckInterval); Reload forces
// a reload (call it on SIGHUP). A file set that fails to load (unreadable,
// malformed, key not matching the certificate, certificate not signed by
// the CA) is logged and the previous material stays in force; it is not
// retried until the files change again. Open connections are never touched:
// only new handshakes see new material.
//
// A Reloader owns no goroutine and needs no Close. It is safe for
// concurrent use.
type Reloader struct {
	files       Files
	lg          *zap.Logger
	minInterval time.Duration

	cur       atomic.Pointer[material]
	lastCheck atomic.Int64 // unix nanoseconds of the last stat check

	mu     sync.Mutex // serialises loads
	failed stamps     // stamps of the last file set that failed; guarded by mu
}

// material is one immutable, loaded file set.
type material struct {
	cert   *tls.Certificate
	leaf   *x509.Certificate
	pool   *x509.CertPool
	stamps stamps
}

type fileStamp struct {
	size    int64
	modTime time.Time
}

type stamps [3]fileStamp // cert, key, CA

// NewReloader loads files; the first load must succeed.
func NewReloader(files Files, opts ReloaderOptions, lg *zap.Logger) (*Reloader, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.MinCheckInterval <= 0 {
		opts.MinCheckInterval = DefaultMinCheckInterval
	}
	r := &Reloader{files: files, lg: lg, minInterval: opts.MinCheckInterval}
	st, err := r.stat()
	if err != nil {
		return nil, fmt.Errorf("tls reloader: %w", err)
	}
	m, err := loadMaterial(files, st)
	if err != nil {
		return nil, fmt.Errorf("tls reloader: %w", err)
	}
	r.cur.Store(m)
	r.lastCheck.Store(time.Now().UnixNano())
	return r, nil
}

// Reload reads the files now, whether or not they look changed. On error
// the previous material stays in force and the error is returned (and
// logged).
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastCheck.Store(time.Now().UnixNano())
	st, err := r.stat()
	if err == nil {
		err = r.loadLocked(st)
	}
	if err != nil {
		r.lg.Error("tls reload failed; keeping previous certificates", zap.Error(err),
			zap.String("cert", r.files.CertFile))
		return fmt.Errorf("tls reload: %w", err)
	}
	return nil
}

// Leaf returns the certificate currently in force.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().leaf }

// current returns the material in force, first reloading it if the files
// changed and the check interval has passed.
func (r *Reloader) current() *material {
	now := time.Now().UnixNano()
	last := r.lastCheck.Load()
	if now-last >= int64(r.minInterval) && r.lastCheck.CompareAndSwap(last, now) {
		r.checkFiles()
	}
	return r.cur.Load()
}

// checkFiles reloads when the files' stamps differ from the loaded ones and
// from the last failed ones.
func (r *Reloader) checkFiles() {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.stat()
	if err != nil {
		// Files mid-rotation may be briefly missing; keep serving.
		r.lg.Warn("tls files not readable; keeping previous certificates", zap.Error(err))
		return
	}
	if st == r.cur.Load().stamps || st == r.failed {
		return
	}
	if err := r.loadLocked(st); err != nil {
		r.lg.Error("tls reload failed; keeping previous certificates", zap.Error(err),
			zap.String("cert", r.files.CertFile))
	}
}

func (r *Reloader) loadLocked(st stamps) error {
	m, err := loadMaterial(r.files, st)
	if err != nil {
		r.failed = st
		return err
	}
	r.failed = stamps{}
	old := r.cur.Swap(m)
	if old.leaf.SerialNumber.Cmp(m.leaf.SerialNumber) != 0 {
		r.lg.Info("tls certificates reloaded",
			zap.String("cn", m.leaf.Subject.CommonName),
			zap.String("serial", m.leaf.SerialNumber.Text(16)),
			zap.Time("not_after", m.leaf.NotAfter))
	}
	return nil
}

func (r *Reloader) stat() (stamps, error) {
	var st stamps
	for i, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.CAFile} {
		fi, err := os.Stat(p)
		if err != nil {
			return st, err
		}
		st[i] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
	}
	return st, nil
}

// loadMaterial reads and checks one file set: the key matches the
// certificate and the certificate chains to the CA file.
func loadMaterial(files Files, st stamps) (*material, error) {
	cert, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load key pair %s: %w", files.CertFile, err)
	}
	caPEM, err := os.ReadFile(files.CAFile)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	cas, err := helpers.ParseCertificatesPEM(caPEM)
	if err != nil || len(cas) == 0 {
		return nil, fmt.Errorf("load CA %s: %w: %v", files.CAFile, ErrBadPEM, err)
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parse %s: %w", files.CertFile, err)
		}
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("parse chain of %s: %w", files.CertFile, err)
		}
		inter.AddCert(c)
	}
	// Check the chain only, at a moment when leaf and CA are both valid:
	// expiry is judged by the peers at each handshake.
	at := leaf.NotBefore
	for _, c := range cas {
		if c.NotBefore.After(at) {
			at = c.NotBefore
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:         pool,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("%s does not chain to %s: %w", files.CertFile, files.CAFile, err)
	}
	return &material{cert: &cert, leaf: leaf, pool: pool, stamps: st}, nil
}
