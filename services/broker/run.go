package main

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/strata-log/strata/pkg/telemetry"
	"github.com/strata-log/strata/services/broker/internal/broker"
	"github.com/strata-log/strata/services/broker/internal/config"
)

// run builds the logger and runs the broker until ctx ends.
func run(ctx context.Context, cfg config.Config) error {
	lg, err := telemetry.NewLogger(cfg.LogOptions())
	if err != nil {
		return err
	}
	err = broker.Run(ctx, cfg, lg, broker.Options{})
	if err != nil {
		lg.Error("broker failed", zap.Error(err))
	}
	return errors.Join(err, telemetry.SyncLogger(lg))
}
