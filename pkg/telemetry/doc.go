// Package telemetry is how Strata's services build their logger and serve
// their metrics: one zap logger configuration (level, JSON or console
// text) and one plain-HTTP server for a Prometheus registry and, when
// asked, the Go profiler, with the same timeouts everywhere.
package telemetry
