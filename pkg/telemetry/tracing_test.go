package telemetry

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestSetupTracingOffWithoutEndpoint(t *testing.T) {
	tr, err := SetupTracing(context.Background(), func(string) string { return "" }, "strata-test", "1")
	if err != nil || tr != nil {
		t.Fatalf("SetupTracing without %s = %v, %v; want nil, nil (off)", TracingEndpointEnv, tr, err)
	}
	h := http.NotFoundHandler()
	if tr.Tracer("x") != nil || tr.ServerHandler() != nil || tr.ClientHandler() != nil || tr.Shutdown(context.Background()) != nil {
		t.Fatal("a nil Tracing must give nil tracers and handlers")
	}
	if got := tr.HTTPHandler(h, "op"); got == nil {
		t.Fatal("HTTPHandler of a nil Tracing must return the handler")
	}
}

func TestSetupTracingOn(t *testing.T) {
	env := map[string]string{TracingEndpointEnv: "http://127.0.0.1:1"}
	tr, err := SetupTracing(context.Background(), func(k string) string { return env[k] }, "strata-test", "1")
	if err != nil || tr == nil {
		t.Fatalf("SetupTracing = %v, %v; want a provider", tr, err)
	}
	defer func() {
		if err := tr.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if tr.Tracer("x") == nil || tr.ServerHandler() == nil || tr.ClientHandler() == nil {
		t.Fatal("tracing on must give a tracer and handlers")
	}
	// 1% of new traces by default: of 10000 roots, about 100. A sampled
	// span is not ended, so nothing is exported to the unreachable
	// endpoint.
	sampled := 0
	for range 10000 {
		_, s := tr.Tracer("x").Start(context.Background(), "root")
		if s.SpanContext().IsSampled() {
			sampled++
			continue
		}
		s.End()
	}
	if sampled == 0 || sampled > 500 {
		t.Errorf("%d of 10000 new traces sampled, want about 100", sampled)
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sc, ok := ParseTraceParent(tp)
	if !ok || !sc.IsSampled() || !sc.IsRemote() {
		t.Fatalf("ParseTraceParent(%q) = %v, %v", tp, sc, ok)
	}
	if got := TraceParent(sc); got != tp {
		t.Fatalf("TraceParent = %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "00-zz-b7ad6b7169203331-01", "00-00000000000000000000000000000000-b7ad6b7169203331-01"} {
		if _, ok := ParseTraceParent(bad); ok {
			t.Errorf("ParseTraceParent(%q) accepted", bad)
		}
	}
	if got := TraceParent(trace.SpanContext{}); got != "" {
		t.Errorf("TraceParent of an invalid context = %q, want empty", got)
	}
}
