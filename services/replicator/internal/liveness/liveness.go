// Package liveness tells whether the replicator's own broker is up. A
// Prober asks the broker (grpc.health.v1 Check) every Interval, each probe
// bounded by Timeout, and reports the broker down once Failures probes in
// a row have failed, and up again at the first probe that succeeds. The
// node gossips what it reports (membership.SetBrokerUp), and the
// controller treats a node whose broker is down as dead for leadership,
// ISRs and placement (issue 12).
//
// With the defaults a killed broker (connection refused at once) is
// reported down 1-1.5s after it died, a hung one (every probe times out)
// after 3-3.5s; one slow or failed probe, or two, change nothing. While
// the broker is down a probe waits for a connection (up to Timeout)
// instead of failing at once, so its return is seen the moment the client
// reconnects (internal/brokerdial: within about a second).
package liveness

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// Checker asks the broker whether it serves: nil when it does. With wait
// it waits for a connection (until ctx ends) rather than failing at once
// when there is none.
type Checker interface {
	Check(ctx context.Context, wait bool) error
}

// Options configure a Prober. Zero values mean defaults.
type Options struct {
	// Interval is the time from one probe's start to the next; default
	// 500ms. A probe that takes longer is followed at once by the next.
	Interval time.Duration
	// Timeout bounds one probe; default 1s.
	Timeout time.Duration
	// Failures is how many probes in a row must fail before the broker is
	// reported down; default 3.
	Failures int
	// OnChange is called, from Run's goroutine, each time the reported
	// state changes: up false once Failures probes in a row failed, true
	// at the first success after that. The broker counts as up until then:
	// there is no call for the first successful probe.
	OnChange func(up bool)
	// OnProbe, when set, is called after every probe with its outcome (metrics).
	OnProbe func(ok bool)
}

// Defaults for Options.
const (
	DefaultInterval = 500 * time.Millisecond
	DefaultTimeout  = time.Second
	DefaultFailures = 3
)

// Prober probes one broker from one goroutine (Run).
type Prober struct {
	lg   *zap.Logger
	c    Checker
	opts Options
}

// New returns a prober of the broker behind c.
func New(c Checker, opts Options, lg *zap.Logger) *Prober {
	if lg == nil {
		lg = zap.NewNop()
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Failures <= 0 {
		opts.Failures = DefaultFailures
	}
	if opts.OnChange == nil {
		opts.OnChange = func(bool) {}
	}
	if opts.OnProbe == nil {
		opts.OnProbe = func(bool) {}
	}
	return &Prober{lg: lg.Named("liveness"), c: c, opts: opts}
}

// Run probes until ctx is done, the first probe at once.
func (p *Prober) Run(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	up, failed := true, 0
	var downSince time.Time
	for {
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
		err := p.c.Check(cctx, !up)
		cancel()
		if ctx.Err() != nil {
			return
		}
		p.opts.OnProbe(err == nil)
		switch {
		case err == nil && !up:
			up, failed = true, 0
			p.lg.Info("local broker up", zap.Duration("down_for", time.Since(downSince)))
			p.opts.OnChange(true)
		case err == nil:
			if failed > 0 {
				p.lg.Info("local broker answered again", zap.Int("failed_probes", failed))
			}
			failed = 0
		case up:
			failed++
			if failed < p.opts.Failures {
				p.lg.Info("local broker probe failed", zap.Int("failed_probes", failed), zap.Int("down_after", p.opts.Failures),
					zap.Duration("took", time.Since(start)), zap.Error(err))
				break
			}
			up, downSince = false, time.Now()
			p.lg.Warn("local broker down", zap.Int("failed_probes", failed), zap.Error(err))
			p.opts.OnChange(false)
		default:
			p.lg.Debug("local broker still down", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
