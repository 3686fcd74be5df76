package fetcher

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/strata-log/strata/pkg/logstore"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"github.com/strata-log/strata/services/replicator/internal/brokerdial"
	"github.com/strata-log/strata/services/replicator/internal/testbroker"
)

// received is wire as gRPC hands a received message to the codec: one
// pooled buffer per HTTP/2 DATA frame (16 KiB), copied out of the
// transport's read buffer; the caller frees it after decoding, as gRPC
// does.
func received(wire []byte) mem.BufferSlice {
	var out mem.BufferSlice
	for len(wire) > 0 {
		k := min(16<<10, len(wire))
		out = append(out, mem.Copy(wire[:k], mem.DefaultBufferPool()))
		wire = wire[k:]
	}
	return out
}

// BenchmarkRelay is the replicator's own work per fetched response, from
// the message received (gRPC's copy into its pooled buffers included) to
// the AppendRequest handed to gRPC and released, at 1 KiB records:
// "proto" decodes the FetchResponse with proto.Unmarshal and marshals an
// AppendRequest (before AppendStream), "raw" is rawCodec (views of the
// received buffers, nothing copied).
func BenchmarkRelay(b *testing.B) {
	for _, records := range []int{16, 64, 1000} {
		frames := bytes.Repeat([]byte{'r'}, records*(1024+30))
		wire, err := proto.Marshal(&stratav1.FetchResponse{LeaderEpoch: 3, HighWatermark: 1000, LogEndOffset: 2000,
			RecordsEpoch: 3, BaseOffset: 1000, Frames: frames})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("proto/%d", records), func(b *testing.B) {
			b.SetBytes(int64(len(frames)))
			b.ReportAllocs()
			for b.Loop() {
				resp := new(stratav1.FetchResponse)
				data := received(wire)
				if err := codec.proto.Unmarshal(data, resp); err != nil {
					b.Fatal(err)
				}
				data.Free()
				out, err := codec.proto.Marshal(&stratav1.AppendRequest{Topic: "orders", Partition: 1, LeaderEpoch: 3,
					RecordsEpoch: resp.GetRecordsEpoch(), Frames: resp.GetFrames(), LeaderHighWatermark: resp.GetHighWatermark()})
				if err != nil {
					b.Fatal(err)
				}
				out.Free()
			}
		})
		b.Run(fmt.Sprintf("raw/%d", records), func(b *testing.B) {
			b.SetBytes(int64(len(frames)))
			b.ReportAllocs()
			resp := new(rawFetchResponse)
			for b.Loop() {
				data := received(wire)
				if err := codec.Unmarshal(data, resp); err != nil {
					b.Fatal(err)
				}
				data.Free()
				out, err := codec.Marshal(&rawAppendRequest{topic: "orders", partition: 1, leaderEpoch: 3,
					recordsEpoch: resp.GetRecordsEpoch(), leaderHW: resp.GetHighWatermark(), requestID: 7, frames: resp.frames})
				if err != nil {
					b.Fatal(err)
				}
				out.Free()
				resp.release()
			}
		})
	}
}

// TestAppendLegSideBySide measures the local leg of replication, from a
// fetched response as gRPC hands it over to the local broker's answer,
// three ways in the same run, alternating their order every round:
//
//   - unary-tls: as before AppendStream: proto.Unmarshal of the response,
//     a unary LocalReplica.Append per batch over mutual TLS (the ACL
//     interceptor and the identity check on every call);
//   - stream-tls-proto: AppendStream over mutual TLS, but proto.Unmarshal
//     of the response and a marshaled AppendRequest (the stream alone);
//   - stream-tls: rawCodec and the shared AppendStream over mutual TLS;
//   - stream-uds: the same over the broker's local socket (plain gRPC).
//
// The broker is services/broker/brokertest in this process (its gRPC
// server, ACL, partitions and logstore; not the production broker's
// metrics and per-identity limit interceptors), so CPU is both ends of
// the leg. Records are 1 KiB, batches STRATA_APPEND_BENCH_BATCH records
// (64) fetched from a leader as a fetcher gets them, the topic's fsync
// the default (interval:1s); STRATA_APPEND_BENCH_BATCHES batches (1000) per
// arm and round, STRATA_APPEND_BENCH_ROUNDS rounds (5), each arm into a
// new partition. A measurement: set STRATA_APPEND_BENCH=1.
func TestAppendLegSideBySide(t *testing.T) {
	if os.Getenv("STRATA_APPEND_BENCH") == "" {
		t.Skip("a measurement: set STRATA_APPEND_BENCH=1")
	}
	batch, batches, rounds := envInt(t, "STRATA_APPEND_BENCH_BATCH", 64), envInt(t, "STRATA_APPEND_BENCH_BATCHES", 1000),
		envInt(t, "STRATA_APPEND_BENCH_ROUNDS", 5)
	e := newEnvWith(t, envOptions{localSocket: true})
	leader := e.brokers[1]

	// The leader's log: batches of 1 KiB records, read back as a fetcher
	// reads it (one response per batch).
	leader.SetRole(topic, 0, stratav1.Role_ROLE_LEADER, 0)
	value := strings.Repeat("v", 1024-8)
	for i := range batches {
		vals := make([]string, batch)
		for j := range vals {
			vals[j] = fmt.Sprintf("%08d", i*batch+j)[:8] + value
		}
		leader.Produce(topic, 0, vals...)
	}
	wires := fetchAll(t, e, leader, batch*batches, batch)
	var frameBytes int
	for _, w := range wires {
		r := new(stratav1.FetchResponse)
		if err := proto.Unmarshal(w, r); err != nil {
			t.Fatal(err)
		}
		frameBytes += len(r.GetFrames())
	}
	t.Logf("%d responses, %.1f records and %.1f KiB of frames each", len(wires),
		float64(batch*batches)/float64(len(wires)), float64(frameBytes)/float64(len(wires))/1024)

	ctx := context.Background()
	tcp := e.ownConn()
	uds, err := brokerdial.DialLocal(e.local.LocalSocket(), uint32(os.Getuid()), brokerdial.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer uds.Close()
	streamTLS, streamUDS := NewLocalClient(tcp), NewLocalClient(tcp, WithLocalReplica(uds))
	defer streamTLS.Close()
	defer streamUDS.Close()
	unary := stratav1.NewLocalReplicaClient(tcp)
	// The stream with the proto codec both ways on this side: AppendStream
	// without the raw frames, one request in flight as a fetcher has.
	protoStream, err := unary.AppendStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer protoStream.CloseSend() //nolint:errcheck // the test's end
	var protoID uint64

	arms := []struct {
		name   string
		append func(topic string, wire []byte) (int64, error)
	}{
		{"unary-tls", func(name string, wire []byte) (int64, error) {
			resp := new(stratav1.FetchResponse)
			data := received(wire)
			err := codec.proto.Unmarshal(data, resp)
			data.Free()
			if err != nil {
				return 0, err
			}
			ar, err := unary.Append(ctx, &stratav1.AppendRequest{Topic: name, LeaderEpoch: 0, RecordsEpoch: resp.GetRecordsEpoch(),
				Frames: resp.GetFrames(), LeaderHighWatermark: resp.GetHighWatermark()})
			return ar.GetLogEndOffset(), err
		}},
		{"stream-tls-proto", func(name string, wire []byte) (int64, error) {
			resp := new(stratav1.FetchResponse)
			data := received(wire)
			err := codec.proto.Unmarshal(data, resp)
			data.Free()
			if err != nil {
				return 0, err
			}
			protoID++
			if err := protoStream.Send(&stratav1.AppendRequest{Topic: name, RecordsEpoch: resp.GetRecordsEpoch(),
				Frames: resp.GetFrames(), LeaderHighWatermark: resp.GetHighWatermark(), RequestId: protoID}); err != nil {
				return 0, err
			}
			ar, err := protoStream.Recv()
			if err != nil {
				return 0, err
			}
			if e := ar.GetError(); e != nil {
				return 0, appendErrorStatus(e)
			}
			return ar.GetLogEndOffset(), nil
		}},
		{"stream-tls", rawAppend(ctx, streamTLS)},
		{"stream-uds", rawAppend(ctx, streamUDS)},
	}
	type sample struct{ mbps, usPerBatch, cpuPerBatch, allocsPerBatch, kbPerBatch float64 }
	results := map[string][]sample{}
	for round := range rounds {
		order := slices.Clone(arms)
		for range round % len(arms) { // rotate: each arm goes first, second and last
			order = append(order[1:], order[0])
		}
		for _, arm := range order {
			name := fmt.Sprintf("%s-%d", arm.name, round)
			e.local.SetPartition(name, 0, stratav1.Role_ROLE_FOLLOWER, 0, 0)
			runtime.GC()
			var ms0, ms1 runtimeMem
			ms0.read()
			cpu0, start := cpuTime(), time.Now()
			var leo int64
			for _, w := range wires {
				if leo, err = arm.append(name, w); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
			wall, cpu := time.Since(start), cpuTime()-cpu0
			ms1.read()
			if leo != int64(batch*batches) {
				t.Fatalf("%s: log end %d, want %d", name, leo, batch*batches)
			}
			n := float64(len(wires))
			results[arm.name] = append(results[arm.name], sample{
				mbps:           float64(frameBytes) / wall.Seconds() / 1e6,
				usPerBatch:     float64(wall.Microseconds()) / n,
				cpuPerBatch:    float64(cpu.Microseconds()) / n,
				allocsPerBatch: float64(ms1.mallocs-ms0.mallocs) / n,
				kbPerBatch:     float64(ms1.bytes-ms0.bytes) / n / 1024,
			})
		}
	}
	t.Logf("local leg, %d rounds alternating, medians (min-max): %d records of 1 KiB per batch, fsync interval:1s", rounds, batch)
	t.Logf("%-16s %20s %20s %20s %16s %18s", "arm", "MB/s", "wall us/batch", "CPU us/batch", "allocs/batch", "alloc KiB/batch")
	for _, arm := range arms {
		s := results[arm.name]
		col := func(f func(sample) float64) string {
			v := make([]float64, len(s))
			for i := range s {
				v[i] = f(s[i])
			}
			slices.Sort(v)
			return fmt.Sprintf("%.0f (%.0f-%.0f)", v[len(v)/2], v[0], v[len(v)-1])
		}
		t.Logf("%-16s %20s %20s %20s %16s %18s", arm.name, col(func(s sample) float64 { return s.mbps }),
			col(func(s sample) float64 { return s.usPerBatch }), col(func(s sample) float64 { return s.cpuPerBatch }),
			col(func(s sample) float64 { return s.allocsPerBatch }), col(func(s sample) float64 { return s.kbPerBatch }))
	}
}

func rawAppend(ctx context.Context, c *LocalClient) func(string, []byte) (int64, error) {
	resp := new(rawFetchResponse)
	return func(name string, wire []byte) (int64, error) {
		data := received(wire)
		err := codec.Unmarshal(data, resp)
		data.Free()
		if err != nil {
			return 0, err
		}
		defer resp.release()
		return c.Append(ctx, &LocalAppend{Topic: name, RecordsEpoch: resp.GetRecordsEpoch(), Frames: resp.frames,
			LeaderHighWatermark: resp.GetHighWatermark()})
	}
}

// fetchAll reads the leader's log as replicator-2 does, one FetchResponse
// per produced batch (max_bytes fits a batch's frames and not one more:
// the leader sends whole frames), in wire format.
func fetchAll(t *testing.T, e *env, leader *testbroker.Broker, records, batch int) [][]byte {
	t.Helper()
	conns := NewConns(e.ca.ClientTLS(t, "replicator-2"))
	defer conns.Close()
	l, err := conns.Leader(leader.Addr())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(maxBytes int) grpc.BidiStreamingClient[stratav1.FetchRequest, stratav1.FetchResponse] {
		s, err := l.Fetch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&stratav1.FetchRequest{Topic: topic, ReplicaId: localID, MaxBytes: int32(maxBytes)}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	one, err := open(1).Recv() // at least one frame, whatever max_bytes says
	if err != nil {
		t.Fatal(err)
	}
	s := open(batch * len(one.GetFrames()))
	var wires [][]byte
	for next := int64(0); next < int64(records); {
		r, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if len(r.GetFrames()) == 0 {
			continue // a heartbeat
		}
		r.HighWatermark = r.GetBaseOffset() // the follower's HW a batch behind, as under load
		w, err := proto.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, w)
		next = r.GetBaseOffset() + countFrames(t, r.GetFrames())
		if err := s.Send(&stratav1.FetchRequest{FetchOffset: next}); err != nil {
			t.Fatal(err)
		}
	}
	return wires
}

func countFrames(t *testing.T, frames []byte) int64 {
	t.Helper()
	var n int64
	for len(frames) > 0 {
		_, k, err := logstore.DecodeFrame(frames, len(frames))
		if err != nil {
			t.Fatal(err)
		}
		frames = frames[k:]
		n++
	}
	return n
}

// runtimeMem is the allocations so far at a moment.
type runtimeMem struct{ mallocs, bytes uint64 }

func (m *runtimeMem) read() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.mallocs, m.bytes = ms.Mallocs, ms.TotalAlloc
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
