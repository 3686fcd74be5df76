package main

import (
	"context"
	"errors"
	"syscall"

	"go.uber.org/zap"

	"github.com/strata-log/strata/services/broker/internal/broker"
	"github.com/strata-log/strata/services/broker/internal/config"
	"github.com/strata-log/strata/services/broker/internal/logging"
)

// run builds the logger and runs the broker until ctx ends.
func run(ctx context.Context, cfg config.Config) error {
	lg, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	err = broker.Run(ctx, cfg, lg, broker.Options{})
	if err != nil {
		lg.Error("broker failed", zap.Error(err))
	}
	return errors.Join(err, syncLogger(lg))
}

// syncLogger flushes the logger; stderr that cannot be synced (a terminal
// or pipe) is not an error.
func syncLogger(lg *zap.Logger) error {
	err := lg.Sync()
	if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTTY) || errors.Is(err, syscall.EBADF) {
		return nil
	}
	return err
}
