package cluster

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/grpc"

	"github.com/strata-log/strata/pkg/client"
)

// TestTraceFollowsRecordToEveryReplica produces one record with a traced
// client into a real three-process cluster whose brokers and replicators
// export by OTLP to a collector in this test, and checks the trace's
// parent/child chain: Producer.Produce → the leader's Partition.Append →
// each follower's Fetcher.Fetch → that follower broker's
// Partition.AppendReplicated (through the replicator's LocalReplica.Append), and the leader's Partition.AdvanceHighWatermark
// (a child of the fetch whose report moved the high watermark past the
// record) before its Partition.WaitHighWatermark, which released the
// acknowledgement, ended; the record count and bytes are attributes.
func TestTraceFollowsRecordToEveryReplica(t *testing.T) {
	col := startCollector(t)
	// The services' default sampler follows the producer's decision; the
	// short batch delay gets their spans out within the test.
	c := newClusterEnv(t, "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+col.addr, "OTEL_BSP_SCHEDULE_DELAY=100")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) }) // in-memory: nothing to lose
	var cl *client.Client
	eventually(t, 30*time.Second, func() error {
		var err error
		cl, err = client.New(ctx, client.Config{Brokers: c.brokerAddrs(), TLS: c.tls("127.0.0.1"), TracerProvider: tp})
		return err
	})
	t.Cleanup(func() { cl.Close() })
	eventually(t, 60*time.Second, func() error {
		_, err := cl.CreateTopic(ctx, topic, &client.TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInsyncReplicas: 2})
		return err
	})
	parts := waitFullISR(t, cl, 30*time.Second)
	leader := strconv.Itoa(int(parts[0].GetLeaderId()))

	prod, err := cl.NewProducer(client.ProducerOptions{Acks: client.AcksAll})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close(ctx)
	value := []byte("traced record")
	meta, err := prod.ProduceSync(ctx, &client.Record{Topic: topic, Key: []byte("k"), Value: value})
	if err != nil {
		t.Fatal(err)
	}
	var root sdktrace.ReadOnlySpan
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Name() == "Producer.Produce" {
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no Producer.Produce span among %d client spans", len(exp.GetSpans()))
	}
	traceID, rootID := root.SpanContext().TraceID().String(), root.SpanContext().SpanID().String()

	eventually(t, 30*time.Second, func() error {
		return checkTrace(col.trace(traceID), rootID, leader, meta.Offset)
	})
}

// checkTrace checks the chain below the producer's span rootID.
func checkTrace(spans []otlpSpan, rootID, leader string, offset int64) error {
	one := func(name, parent string) (otlpSpan, error) {
		var found []otlpSpan
		for _, s := range spans {
			if s.name == name && s.parent == parent {
				found = append(found, s)
			}
		}
		if len(found) != 1 {
			return otlpSpan{}, fmt.Errorf("%d %s spans under %s, want 1 (trace has %v)", len(found), name, parent, spans)
		}
		return found[0], nil
	}
	appendSpan, err := one("Partition.Append", rootID)
	if err != nil {
		return err
	}
	if appendSpan.instance != leader || appendSpan.service != "strata-broker" {
		return fmt.Errorf("Partition.Append from %s %s, want the leader's broker %s", appendSpan.service, appendSpan.instance, leader)
	}
	if appendSpan.attrs["messaging.batch.message_count"] != "1" || appendSpan.attrs["strata.bytes"] == "" ||
		appendSpan.attrs["strata.base_offset"] != strconv.FormatInt(offset, 10) {
		return fmt.Errorf("Partition.Append attributes %v: want 1 record at offset %d and its bytes", appendSpan.attrs, offset)
	}
	wait, err := one("Partition.WaitHighWatermark", rootID)
	if err != nil {
		return err
	}
	fetches := map[string]otlpSpan{} // by follower
	for _, s := range spans {
		if s.name == "Fetcher.Fetch" && s.parent == appendSpan.id {
			if s.service != "strata-replicator" || s.instance == leader {
				return fmt.Errorf("Fetcher.Fetch from %s %s: want a follower's replicator", s.service, s.instance)
			}
			fetches[s.instance] = s
		}
	}
	if len(fetches) != 2 {
		return fmt.Errorf("Fetcher.Fetch from followers %v under the leader's append, want 2", keys(fetches))
	}
	for node, f := range fetches {
		if f.attrs["messaging.batch.message_count"] != "1" {
			return fmt.Errorf("follower %s: Fetcher.Fetch attributes %v, want 1 record", node, f.attrs)
		}
		replicated, err := one("Partition.AppendReplicated", f.id)
		if err != nil {
			return err
		}
		if replicated.service != "strata-broker" || replicated.instance != node || replicated.attrs["messaging.batch.message_count"] != "1" {
			return fmt.Errorf("Partition.AppendReplicated from %s %s with %v: want follower %s's broker, 1 record",
				replicated.service, replicated.instance, replicated.attrs, node)
		}
	}
	var advance []otlpSpan
	for _, s := range spans {
		if _, ok := fetchesByID(fetches)[s.parent]; ok && s.name == "Partition.AdvanceHighWatermark" {
			advance = append(advance, s)
		}
	}
	released := false
	for _, a := range advance {
		hw, _ := strconv.ParseInt(a.attrs["strata.high_watermark"], 10, 64)
		before, _ := strconv.ParseInt(a.attrs["strata.high_watermark.before"], 10, 64)
		if a.instance == leader && before <= offset && hw > offset && a.start <= wait.end {
			released = true
		}
	}
	if !released {
		return fmt.Errorf("no Partition.AdvanceHighWatermark on the leader past offset %d under a follower's fetch before the wait ended (%v)", offset, advance)
	}
	return nil
}

func fetchesByID(m map[string]otlpSpan) map[string]otlpSpan {
	out := map[string]otlpSpan{}
	for _, s := range m {
		out[s.id] = s
	}
	return out
}

func keys(m map[string]otlpSpan) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// otlpSpan is a span as a service exported it.
type otlpSpan struct {
	service, instance string
	name, id, parent  string
	traceID           string
	start, end        uint64
	attrs             map[string]string
}

func (s otlpSpan) String() string {
	return fmt.Sprintf("%s(%s/%s %s<-%s)", s.name, s.service, s.instance, s.id, s.parent)
}

// collector is an OTLP/gRPC trace receiver keeping every span.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr  string
	mu    sync.Mutex
	spans []otlpSpan
}

func startCollector(t *testing.T) *collector {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis) // returns when stopped
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return col
}

func (col *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				col.spans = append(col.spans, otlpSpan{service: res["service.name"], instance: res["service.instance.id"],
					name: s.GetName(), id: hex.EncodeToString(s.GetSpanId()), parent: hex.EncodeToString(s.GetParentSpanId()),
					traceID: hex.EncodeToString(s.GetTraceId()), start: s.GetStartTimeUnixNano(), end: s.GetEndTimeUnixNano(),
					attrs: attrMap(s.GetAttributes())})
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// trace returns the spans received of one trace.
func (col *collector) trace(id string) []otlpSpan {
	col.mu.Lock()
	defer col.mu.Unlock()
	var out []otlpSpan
	for _, s := range col.spans {
		if s.traceID == id {
			out = append(out, s)
		}
	}
	return out
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = strconv.FormatInt(v.GetIntValue(), 10)
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = strconv.FormatBool(v.GetBoolValue())
		default:
			m[kv.GetKey()] = strings.TrimSpace(v.GetStringValue())
		}
	}
	return m
}
