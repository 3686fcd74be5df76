package acl

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/adminapi"
)

// The policy watch protocol between the admin service and a Watcher (the
// route, header and waits are pkg/adminapi's):
//
//	GET <admin>/v1/acl/policy?after=<version>&wait=<duration>
//
// answers 200 with an adminapi.Policy as soon as the admin's version N is
// greater than after; when nothing newer arrives within wait (at most
// adminapi.MaxWatchWait) it answers 304 Not Modified with no body. Both
// answers carry the admin's current version in
// adminapi.PolicyVersionHeader.

// Watcher defaults.
const (
	defaultMinBackoff = 200 * time.Millisecond
	defaultMaxBackoff = 10 * time.Second
	// maxPolicyResponse bounds the body read from admin; a policy is far
	// smaller (admin bounds request bodies at 1 MiB).
	maxPolicyResponse = 4 << 20
	// pollSlack is added to the wait for the HTTP client's own timeout,
	// so that a hung admin is noticed but a slow answer is not cut.
	pollSlack = 15 * time.Second
)

// WatcherOptions configures a Watcher. Zero values mean defaults.
type WatcherOptions struct {
	// AdminURL is the admin service's base URL, "https://host:port".
	// Required; plain http is refused.
	AdminURL string
	// TLS is the client TLS configuration: the node's own certificate and
	// the cluster CA, e.g. pki.Reloader.ClientConfig(host of AdminURL).
	// Required.
	TLS *tls.Config
	// Wait is how long the admin service holds one poll open when nothing
	// changes. Default adminapi.DefaultWatchWait; at most adminapi.MaxWatchWait.
	Wait time.Duration
	// MinBackoff and MaxBackoff bound the exponential, jittered pause after
	// a failed poll. Defaults 200ms and 10s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// OnApply, when set, is called with the version of every policy the
	// watcher puts in force, after it is in force. It runs on the
	// watcher's goroutine and must not block.
	OnApply func(version uint64)
}

// Watcher keeps an Authorizer's policy in step with the admin service. It
// long-polls admin with the version in force and puts every newer policy
// in force with Authorizer.ReplaceAt, which also saves it to the
// Authorizer's cache file, so a restarted node enforces it even while
// admin is down.
//
// While admin is unreachable or answers errors, the watcher backs off and
// the Authorizer keeps enforcing the last good policy. A policy that does
// not parse is refused and skipped (the next newer one is awaited); a
// version not newer than the one in force is never applied.
//
// Run it with Run (the caller owns the goroutine) or Start and Close.
type Watcher struct {
	authz     *Authorizer
	opts      WatcherOptions
	lg        *zap.Logger
	pollURL   string // base URL + adminapi.PathPolicy
	client    *http.Client
	transport *http.Transport

	running atomic.Bool // set by the first Run

	mu     sync.Mutex // guards cancel and done
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result when started by Start; read after done
}

// NewWatcher checks opts and builds a Watcher for a. Nothing runs yet.
func NewWatcher(a *Authorizer, opts WatcherOptions, lg *zap.Logger) (*Watcher, error) {
	if lg == nil {
		lg = zap.NewNop()
	}
	if a == nil {
		return nil, fmt.Errorf("%w: nil authorizer", ErrBadWatcherOptions)
	}
	base, err := AdminBaseURL(opts.AdminURL)
	if err != nil {
		return nil, err
	}
	if opts.TLS == nil {
		return nil, fmt.Errorf("%w: a client TLS config is required", ErrBadWatcherOptions)
	}
	if opts.Wait == 0 {
		opts.Wait = adminapi.DefaultWatchWait
	}
	if opts.Wait < time.Second || opts.Wait > adminapi.MaxWatchWait {
		return nil, fmt.Errorf("%w: wait %s outside [1s, %s]", ErrBadWatcherOptions, opts.Wait, adminapi.MaxWatchWait)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = defaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("%w: max backoff %s < min backoff %s", ErrBadWatcherOptions, opts.MaxBackoff, opts.MinBackoff)
	}
	tr := &http.Transport{
		TLSClientConfig:     opts.TLS.Clone(),
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     2 * opts.Wait,
		MaxIdleConns:        2,
	}
	return &Watcher{
		authz:     a,
		opts:      opts,
		lg:        lg.With(zap.String("admin", base)),
		pollURL:   base + adminapi.PathPolicy,
		client:    &http.Client{Transport: tr, Timeout: opts.Wait + pollSlack},
		transport: tr,
	}, nil
}

// AdminBaseURL checks an admin service URL ("https://host:port", nothing
// else) and returns it in canonical form. Errors wrap
// ErrBadWatcherOptions. Configuration code uses it to refuse a bad URL at
// start.
func AdminBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: admin URL %q: %w", ErrBadWatcherOptions, raw, err)
	}
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("%w: admin URL %q: scheme must be https", ErrBadWatcherOptions, raw)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("%w: admin URL %q has no host", ErrBadWatcherOptions, raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", fmt.Errorf("%w: admin URL %q: want only https://host:port", ErrBadWatcherOptions, raw)
	}
	return "https://" + u.Host, nil
}

// Run watches until ctx ends, then returns nil. It may be called once per
// Watcher (ErrWatcherRunning otherwise).
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrWatcherRunning
	}
	return w.run(ctx)
}

func (w *Watcher) run(ctx context.Context) error {
	// Idle HTTP/2 connections own reader goroutines; close them so that a
	// stopped watcher leaves nothing running.
	defer w.transport.CloseIdleConnections()
	_, inForce := w.authz.Policy()
	w.lg.Info("acl policy watch started", zap.Uint64("version", inForce))

	backoff := w.opts.MinBackoff
	// seen is the newest version admin has shown, applied or not, so a
	// refused policy is not fetched again and again.
	var seen uint64
	for {
		_, inForce := w.authz.Policy()
		after := max(inForce, seen)
		started := time.Now()
		res, err := w.poll(ctx, after)
		if ctx.Err() != nil {
			w.lg.Info("acl policy watch stopped", zap.Uint64("version", after))
			return nil
		}
		if err != nil {
			pause := jitter(backoff)
			w.lg.Warn("acl policy watch failed; enforcing the last good policy",
				zap.Error(err), zap.Uint64("version", inForce), zap.Duration("retry_in", pause))
			if !sleepCtx(ctx, pause) {
				return nil
			}
			backoff = min(2*backoff, w.opts.MaxBackoff)
			continue
		}
		backoff = w.opts.MinBackoff
		applied := w.apply(res, after)
		seen = max(seen, res.version)
		// An admin that answers "nothing new" at once would make this loop
		// spin; the protocol holds such answers for the wait, so a fast
		// empty answer is a misbehaving peer and earns a pause.
		if !applied && time.Since(started) < w.opts.MinBackoff {
			if !sleepCtx(ctx, w.opts.MinBackoff) {
				return nil
			}
		}
	}
}

// pollResult is one answer of the admin service.
type pollResult struct {
	changed bool   // 200 with a policy
	text    string // the policy when changed
	version uint64 // admin's version (body when changed, header otherwise)
}

// poll makes one long-poll request.
func (w *Watcher) poll(ctx context.Context, after uint64) (pollResult, error) {
	q := url.Values{}
	q.Set("after", strconv.FormatUint(after, 10))
	q.Set("wait", w.opts.Wait.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.pollURL+"?"+q.Encode(), nil)
	if err != nil {
		return pollResult{}, fmt.Errorf("acl watch: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		return pollResult{}, fmt.Errorf("acl watch: %w", err)
	}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxPolicyResponse+1))
	closeErr := resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if err := errors.Join(readErr, closeErr); err != nil {
			return pollResult{}, fmt.Errorf("acl watch: read policy: %w", err)
		}
		if len(body) > maxPolicyResponse {
			return pollResult{}, fmt.Errorf("acl watch: policy answer larger than %d bytes", maxPolicyResponse)
		}
		var doc adminapi.Policy
		if err := json.Unmarshal(body, &doc); err != nil {
			return pollResult{}, fmt.Errorf("acl watch: decode policy: %w", err)
		}
		return pollResult{changed: true, text: doc.Policy, version: doc.Version}, nil
	case http.StatusNotModified:
		v, err := strconv.ParseUint(resp.Header.Get(adminapi.PolicyVersionHeader), 10, 64)
		if err != nil {
			return pollResult{}, fmt.Errorf("acl watch: 304 without a valid %s: %w", adminapi.PolicyVersionHeader, err)
		}
		return pollResult{version: v}, nil
	default:
		var e adminapi.Error
		msg := string(body)
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if resp.StatusCode == http.StatusForbidden {
			// A policy written before describe_acl existed grants the
			// nodes only describe: say what to add.
			return pollResult{}, fmt.Errorf("acl watch: admin answered %s: %s: this node's identity may not read the policy; grant it %s on %s (the default policy has \"p, broker, cluster, %s, allow\" and the same for replicator)",
				resp.Status, msg, ActionDescribeACL, ObjectCluster, ActionDescribeACL)
		}
		return pollResult{}, fmt.Errorf("acl watch: admin answered %s: %s", resp.Status, msg)
	}
}

// apply puts a newer policy in force and reports whether it did.
func (w *Watcher) apply(res pollResult, after uint64) bool {
	if !res.changed {
		if _, inForce := w.authz.Policy(); res.version < inForce {
			// Admin lost its state or was restored from an old backup:
			// never go back to an older policy; an operator must publish
			// one with a higher version.
			w.lg.Warn("admin's acl policy is older than the one in force; keeping ours",
				zap.Uint64("admin_version", res.version), zap.Uint64("version", inForce))
		}
		return false
	}
	if res.version <= after {
		w.lg.Warn("admin sent an acl policy that is not newer; ignored",
			zap.Uint64("admin_version", res.version), zap.Uint64("after", after))
		return false
	}
	if err := w.authz.ReplaceAt(res.text, res.version); err != nil {
		if errors.Is(err, ErrStaleVersion) {
			// Someone else (a local Replace) moved ahead meanwhile.
			w.lg.Info("acl policy from admin already superseded", zap.Uint64("admin_version", res.version), zap.Error(err))
			return false
		}
		w.lg.Error("acl policy from admin refused; enforcing the last good policy",
			zap.Uint64("admin_version", res.version), zap.Error(err))
		return false
	}
	w.lg.Info("acl policy from admin in force", zap.Uint64("version", res.version))
	if w.opts.OnApply != nil {
		w.opts.OnApply(res.version)
	}
	return true
}

// Start runs the watcher on its own goroutine until Close. Calling it
// again does nothing; after Run, Close reports ErrWatcherRunning.
func (w *Watcher) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	if !w.running.CompareAndSwap(false, true) {
		w.err = ErrWatcherRunning
		close(w.done)
		return
	}
	go func() {
		defer close(w.done)
		w.err = w.run(ctx)
	}()
}

// Close stops a watcher started with Start and waits for its goroutine to
// end. It is safe to call more than once, and without Start.
func (w *Watcher) Close() error {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if done == nil {
		return nil
	}
	cancel()
	<-done
	return w.err
}

// jitter returns d scaled by a random factor in [0.5, 1.5), so that nodes
// that lost admin together do not retry in lockstep.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// sleepCtx waits for d or for ctx to end; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
