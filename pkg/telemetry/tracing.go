package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"
)

// TracingEndpointEnv turns tracing on: the OTLP/gRPC collector's address,
// e.g. http://127.0.0.1:4317 (http:// means plaintext).
const TracingEndpointEnv = "OTEL_EXPORTER_OTLP_ENDPOINT"

// TracingSamplerEnv chooses the sampler (the SDK's standard variable, with
// OTEL_TRACES_SAMPLER_ARG); unset, new traces are sampled at
// DefaultSampleRatio and a caller's sampled flag is followed.
const TracingSamplerEnv = "OTEL_TRACES_SAMPLER"

// DefaultSampleRatio is the share of new traces sampled by default.
const DefaultSampleRatio = 0.01

// Tracing is a service's tracer provider, exporting by OTLP/gRPC. A nil
// *Tracing is tracing off: its methods return nil handlers and tracers,
// which Strata's code takes to mean "make no span".
type Tracing struct {
	tp *sdktrace.TracerProvider
}

// SetupTracing returns nil (tracing off, nothing built) unless
// getenv(TracingEndpointEnv) is set. The exporter reads the standard
// OTEL_EXPORTER_OTLP_* and OTEL_BSP_* variables; no global provider or
// propagator is installed. service names the resource (strata-broker,
// strata-replicator, strata-admin) and instance its service.instance.id
// (the node id).
func SetupTracing(ctx context.Context, getenv func(string) string, service, instance string) (*Tracing, error) {
	if getenv(TracingEndpointEnv) == "" {
		return nil, nil
	}
	exp, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName(service), semconv.ServiceInstanceID(instance))
	opts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
	if getenv(TracingSamplerEnv) == "" {
		// The SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
		// itself; unset, Strata samples 1% of new traces and follows a
		// caller's decision.
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(DefaultSampleRatio))))
	}
	return &Tracing{tp: sdktrace.NewTracerProvider(opts...)}, nil
}

// Propagator is W3C trace context and baggage, what every Strata process
// reads and writes.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// Tracer returns the named tracer, or nil when t is nil.
func (t *Tracing) Tracer(name string) trace.Tracer {
	if t == nil {
		return nil
	}
	return t.tp.Tracer(name)
}

// ServerHandler instruments a gRPC server (otelgrpc server spans, W3C
// context from the caller's metadata); nil when t is nil. The methods
// named in untraced (full names, /package.Service/Method) get no span of
// their own, but the caller's context is still extracted for the handler:
// for hot methods that make their own spans when the caller traces.
func (t *Tracing) ServerHandler(untraced ...string) stats.Handler {
	if t == nil {
		return nil
	}
	opts := []otelgrpc.Option{otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), otelgrpc.WithPropagators(Propagator())}
	if len(untraced) > 0 {
		opts = append(opts, otelgrpc.WithFilter(func(info *stats.RPCTagInfo) bool {
			return !slices.Contains(untraced, info.FullMethodName)
		}))
	}
	return otelgrpc.NewServerHandler(opts...)
}

// ClientHandler instruments a gRPC client (otelgrpc client spans, W3C
// context in the calls' metadata); nil when t is nil.
func (t *Tracing) ClientHandler() stats.Handler {
	if t == nil {
		return nil
	}
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(t.tp),
		otelgrpc.WithMeterProvider(metricnoop.NewMeterProvider()), otelgrpc.WithPropagators(Propagator()))
}

// HTTPHandler wraps h with server spans named operation, continuing a
// caller's W3C context (otelhttp); h itself when t is nil.
func (t *Tracing) HTTPHandler(h http.Handler, operation string) http.Handler {
	if t == nil {
		return h
	}
	return otelhttp.NewHandler(h, operation, otelhttp.WithTracerProvider(t.tp),
		otelhttp.WithMeterProvider(metricnoop.NewMeterProvider()), otelhttp.WithPropagators(Propagator()))
}

// Shutdown flushes and stops the exporter; a nil t does nothing.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.tp.Shutdown(ctx)
}

// TraceParent is sc as a W3C traceparent header value
// (version-traceid-spanid-flags), or "" when sc is not valid.
func TraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// ParseTraceParent is the remote span context in a W3C traceparent value;
// ok is false when v is empty or malformed.
func ParseTraceParent(v string) (sc trace.SpanContext, ok bool) {
	if v == "" {
		return trace.SpanContext{}, false
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": v})
	sc = trace.SpanContextFromContext(ctx)
	return sc, sc.IsValid()
}
