// Package tracing sets up OpenTelemetry tracing for the gRPC server: an
// OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set, nothing otherwise.
package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"google.golang.org/grpc/stats"
)

// EndpointEnv turns tracing on.
const EndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// SamplerEnv chooses the sampler (the SDK's standard variable, with
// OTEL_TRACES_SAMPLER_ARG); unset, new traces are sampled at
// DefaultSampleRatio and a caller's sampled flag is followed.
const SamplerEnv = "OTEL_TRACES_SAMPLER"

// DefaultSampleRatio is the share of new traces sampled by default.
const DefaultSampleRatio = 0.01

// Tracing is the tracer provider and the gRPC stats handler using it.
type Tracing struct {
	tp *sdktrace.TracerProvider
	// Handler instruments a gRPC server (otelgrpc).
	Handler stats.Handler
}

// Setup returns nil (tracing off) unless getenv(EndpointEnv) is set. The
// exporter reads the standard OTEL_EXPORTER_OTLP_* variables; no global
// provider is installed.
func Setup(ctx context.Context, getenv func(string) string, nodeID int32) (*Tracing, error) {
	if getenv(EndpointEnv) == "" {
		return nil, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("tracing: otlp exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("strata-broker"), semconv.ServiceInstanceID(fmt.Sprint(nodeID)))
	topts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if getenv(SamplerEnv) == "" {
		// The SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
		// itself; unset, Strata samples 1% of new traces and follows a
		// caller's decision.
		topts = append(topts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(DefaultSampleRatio))))
	}
	tp := sdktrace.NewTracerProvider(topts...)
	h := otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()),
		otelgrpc.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})),
	)
	return &Tracing{tp: tp, Handler: h}, nil
}

// Shutdown flushes and stops the exporter.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}
