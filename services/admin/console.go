package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/strata-log/strata/services/admin/internal/clusterview"
	"github.com/strata-log/strata/services/admin/internal/console"
	"github.com/strata-log/strata/services/admin/internal/httpapi"
	"github.com/strata-log/strata/services/admin/internal/scrape"
)

// defaultScrapeInterval is how often admin scrapes --metrics-targets.
const defaultScrapeInterval = 5 * time.Second

// mountConsole builds the web console and mounts it on api at
// console.DefaultBase: a view of cfg.ClusterAddrs (dialled as admin's own
// identity through tlsFor) and a scraper of cfg.MetricsTargets, which
// runs until stop is called. stop waits for the scraper and closes the
// view's connections.
func mountConsole(cfg serveConfig, api *httpapi.API, tlsFor clusterview.TLSFor, lg *zap.Logger) (stop func() error, err error) {
	opts := console.Options{Backend: api}
	var view *clusterview.View
	if len(cfg.ClusterAddrs) > 0 {
		if view, err = clusterview.Dial(cfg.ClusterAddrs, tlsFor, clusterview.Options{}, lg.Named("console")); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		opts.Cluster = view
	}
	closeView := func() error {
		if view == nil {
			return nil
		}
		return view.Close()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	if len(cfg.MetricsTargets) > 0 {
		s := scrape.New(cfg.MetricsTargets, scrape.Options{Interval: cfg.ScrapeInterval}, lg.Named("scrape"))
		opts.Metrics = s
		go func() {
			defer close(done)
			s.Run(ctx)
		}()
	} else {
		close(done)
	}
	stop = func() error {
		cancel()
		<-done
		return closeView()
	}
	con, err := console.New(opts, lg.Named("console"))
	if err == nil {
		err = api.Mount(console.DefaultBase, con.Routes())
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("console: %w", err), stop())
	}
	return stop, nil
}
