package client

import (
	"context"
	"net"
	"sync"
	"testing"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// fakeCluster is an in-memory Strata cluster of fake brokers on loopback
// TCP. It implements the Log, Metadata and Topics services well enough for
// the client's unit tests, with hooks to inject errors.
type fakeCluster struct {
	mu      sync.Mutex
	brokers []*fakeBroker
	topics  map[string][]*fakePartition
	// produceErr, when set, may fail a produce request before it is appended.
	produceErr func(b *fakeBroker, req *stratav1.ProduceRequest) *stratav1.Error
	// breakConsumeAfter ends every ConsumeStream with Unavailable after this
	// many records (0: never).
	breakConsumeAfter int
	produceReqs       []*stratav1.ProduceRequest
	metadataCalls     int
	// streamEnds is what Recv returned when each ProduceStream ended.
	streamEnds []error
	nextPID    int64
	// streamFault and holdFirst, when set, make ProduceStream pipelined
	// with faults (fakepipe_test.go).
	streamFault func(b *fakeBroker, req *stratav1.ProduceRequest, n int) fakeFault
	holdFirst   int
	pipe        fakePipeState
}

type fakePartition struct {
	leader int // index into brokers
	log    []*stratav1.Record
	notify chan struct{} // closed and replaced on append
	// producers is the idempotent producers' dedupe state
	// (fakepipe_test.go), shared by every broker as a replicated log's is.
	producers map[int64]*fakeProducer
}

type fakeBroker struct {
	stratav1.UnimplementedLogServer
	stratav1.UnimplementedMetadataServer
	stratav1.UnimplementedTopicsServer
	c    *fakeCluster
	id   int
	addr string
	srv  *grpc.Server
}

func newFakeCluster(tb testing.TB, brokers int) *fakeCluster {
	tb.Helper()
	c := &fakeCluster{topics: make(map[string][]*fakePartition)}
	for i := 0; i < brokers; i++ {
		b := &fakeBroker{c: c, id: i}
		c.brokers = append(c.brokers, b)
		b.start(tb, "127.0.0.1:0")
	}
	tb.Cleanup(func() {
		for _, b := range c.brokers {
			b.srv.Stop()
		}
	})
	return c
}

func (b *fakeBroker) start(tb testing.TB, addr string) {
	tb.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	b.addr = lis.Addr().String()
	b.srv = grpc.NewServer()
	stratav1.RegisterLogServer(b.srv, b)
	stratav1.RegisterMetadataServer(b.srv, b)
	stratav1.RegisterTopicsServer(b.srv, b)
	srv := b.srv
	go func() { _ = srv.Serve(lis) }() // Serve returns when the test stops it
}

// restart stops the broker (breaking every stream) and serves again on the
// same address.
func (b *fakeBroker) restart(tb testing.TB) {
	tb.Helper()
	b.srv.Stop()
	b.start(tb, b.addr)
}

func (c *fakeCluster) addTopic(name string, partitions int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := make([]*fakePartition, partitions)
	for i := range ps {
		ps[i] = &fakePartition{leader: i % len(c.brokers), notify: make(chan struct{})}
	}
	c.topics[name] = ps
}

func (c *fakeCluster) setLeader(topic string, partition, broker int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.topics[topic][partition].leader = broker
}

func (c *fakeCluster) log(topic string, partition int) []*stratav1.Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*stratav1.Record(nil), c.topics[topic][partition].log...)
}

func (c *fakeCluster) requests() []*stratav1.ProduceRequest {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*stratav1.ProduceRequest(nil), c.produceReqs...)
}

func (c *fakeCluster) addrs() []string {
	var out []string
	for _, b := range c.brokers {
		out = append(out, b.addr)
	}
	return out
}

func (c *fakeCluster) appendLocked(p *fakePartition, recs []*stratav1.Record) (base, last int64) {
	base = int64(len(p.log))
	for _, r := range recs {
		r = proto.Clone(r).(*stratav1.Record)
		r.Offset = int64(len(p.log))
		p.log = append(p.log, r)
	}
	close(p.notify)
	p.notify = make(chan struct{})
	return base, int64(len(p.log)) - 1
}

// topicMetaLocked is a topic as this broker describes it: like a real
// broker it knows the offsets only of the partitions it leads (-1 for the
// others).
func (b *fakeBroker) topicMetaLocked(name string) *stratav1.TopicMetadata {
	ps := b.c.topics[name]
	tm := &stratav1.TopicMetadata{Name: name, Config: &stratav1.TopicConfig{Partitions: int32(len(ps)), ReplicationFactor: 1}}
	for i, p := range ps {
		l := b.c.brokers[p.leader]
		pm := &stratav1.PartitionMetadata{
			Partition: int32(i), LeaderId: int32(l.id), LeaderAddress: l.addr, Replicas: []int32{int32(l.id)},
			Isr: []int32{int32(l.id)}, LogStartOffset: -1, LogEndOffset: -1, HighWatermark: -1,
		}
		if p.leader == b.id {
			pm.LogStartOffset, pm.LogEndOffset, pm.HighWatermark = 0, int64(len(p.log)), int64(len(p.log))
		}
		tm.Partitions = append(tm.Partitions, pm)
	}
	return tm
}

func (b *fakeBroker) Metadata(_ context.Context, req *stratav1.MetadataRequest) (*stratav1.MetadataResponse, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	b.c.metadataCalls++
	resp := &stratav1.MetadataResponse{ControllerId: -1, ClusterId: "fake"}
	for _, br := range b.c.brokers {
		resp.Brokers = append(resp.Brokers, &stratav1.BrokerInfo{Id: int32(br.id), Address: br.addr, Alive: true, RaftRole: "none"})
	}
	for name := range b.c.topics {
		resp.Topics = append(resp.Topics, b.topicMetaLocked(name))
	}
	return resp, nil
}

func (b *fakeBroker) CreateTopic(_ context.Context, req *stratav1.CreateTopicRequest) (*stratav1.CreateTopicResponse, error) {
	b.c.mu.Lock()
	_, exists := b.c.topics[req.GetName()]
	b.c.mu.Unlock()
	if exists {
		return nil, status.Errorf(codes.AlreadyExists, "topic %q exists", req.GetName())
	}
	n := int(req.GetConfig().GetPartitions())
	if n == 0 {
		n = 1
	}
	b.c.addTopic(req.GetName(), n)
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	return &stratav1.CreateTopicResponse{Topic: b.topicMetaLocked(req.GetName())}, nil
}

func (b *fakeBroker) DescribeTopic(_ context.Context, req *stratav1.DescribeTopicRequest) (*stratav1.DescribeTopicResponse, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	if _, ok := b.c.topics[req.GetName()]; !ok {
		return nil, status.Errorf(codes.NotFound, "topic %q not found", req.GetName())
	}
	return &stratav1.DescribeTopicResponse{Topic: b.topicMetaLocked(req.GetName())}, nil
}

// produce appends req if this broker leads the partition.
func (b *fakeBroker) produce(req *stratav1.ProduceRequest) *stratav1.ProduceResponse {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.produceReqs = append(c.produceReqs, req)
	resp := &stratav1.ProduceResponse{Topic: req.GetTopic(), Partition: req.GetPartition(), CorrelationId: req.GetCorrelationId()}
	ps, ok := c.topics[req.GetTopic()]
	if !ok || int(req.GetPartition()) >= len(ps) {
		resp.Error = &stratav1.Error{Code: int32(codes.NotFound), Message: "no such partition"}
		return resp
	}
	p := ps[req.GetPartition()]
	if p.leader != b.id {
		resp.Error = &stratav1.Error{Code: int32(codes.FailedPrecondition), Message: "not the leader",
			NotLeader: &stratav1.NotLeader{Topic: req.GetTopic(), Partition: req.GetPartition(), LeaderId: -1}}
		return resp
	}
	if c.produceErr != nil {
		if e := c.produceErr(b, req); e != nil {
			resp.Error = e
			return resp
		}
	}
	if c.dedupeLocked(p, req, resp) {
		return resp // a duplicate or refused batch
	}
	resp.BaseOffset, resp.LastOffset = c.appendLocked(p, req.GetRecords())
	c.applySequenceLocked(p, req, resp.BaseOffset)
	if req.GetAcks() == stratav1.Acks_ACKS_NONE {
		resp.BaseOffset, resp.LastOffset = -1, -1
	}
	return resp
}

func (b *fakeBroker) Produce(_ context.Context, req *stratav1.ProduceRequest) (*stratav1.ProduceResponse, error) {
	resp := b.produce(req)
	if e := resp.GetError(); e != nil {
		return nil, status.Error(codes.Code(e.GetCode()), e.GetMessage())
	}
	return resp, nil
}

func (b *fakeBroker) ProduceStream(st grpc.BidiStreamingServer[stratav1.ProduceRequest, stratav1.ProduceResponse]) error {
	b.c.mu.Lock()
	pipelined := b.c.streamFault != nil || b.c.holdFirst > 0
	b.c.mu.Unlock()
	if pipelined {
		return b.pipelinedStream(st)
	}
	for {
		req, err := st.Recv()
		if err != nil {
			b.c.mu.Lock()
			b.c.streamEnds = append(b.c.streamEnds, err)
			b.c.mu.Unlock()
			return nil
		}
		if err := st.Send(b.produce(req)); err != nil {
			return err
		}
	}
}

func (b *fakeBroker) ConsumeStream(req *stratav1.ConsumeStreamRequest, st grpc.ServerStreamingServer[stratav1.ConsumeResponse]) error {
	c := b.c
	c.mu.Lock()
	ps, ok := c.topics[req.GetTopic()]
	if !ok || int(req.GetPartition()) >= len(ps) {
		c.mu.Unlock()
		return status.Error(codes.NotFound, "no such partition")
	}
	p := ps[req.GetPartition()]
	var next int64
	switch s := req.GetStart().(type) {
	case *stratav1.ConsumeStreamRequest_Offset:
		next = s.Offset
	case *stratav1.ConsumeStreamRequest_Position:
		if s.Position == stratav1.StartPosition_START_POSITION_LATEST {
			next = int64(len(p.log))
		}
	case *stratav1.ConsumeStreamRequest_TimestampMs:
		next = int64(len(p.log))
		for i, r := range p.log {
			if r.GetTimestampMs() >= s.TimestampMs {
				next = int64(i)
				break
			}
		}
	}
	if next > int64(len(p.log)) {
		c.mu.Unlock()
		st2, _ := status.New(codes.OutOfRange, "offset out of range").WithDetails(&stratav1.OffsetRange{Requested: next, EndOffset: int64(len(p.log))})
		return st2.Err()
	}
	limit := c.breakConsumeAfter
	c.mu.Unlock()
	sent := 0
	for {
		c.mu.Lock()
		if p.leader != b.id {
			c.mu.Unlock()
			st2, _ := status.New(codes.FailedPrecondition, "not the leader").WithDetails(&stratav1.NotLeader{Topic: req.GetTopic(), Partition: req.GetPartition(), LeaderId: -1})
			return st2.Err()
		}
		var batch []*stratav1.Record
		for next+int64(len(batch)) < int64(len(p.log)) && len(batch) < 7 && (limit == 0 || sent+len(batch) < limit) {
			batch = append(batch, p.log[next+int64(len(batch))])
		}
		wait := p.notify
		c.mu.Unlock()
		if len(batch) > 0 {
			next += int64(len(batch))
			sent += len(batch)
			if err := st.Send(&stratav1.ConsumeResponse{Topic: req.GetTopic(), Partition: req.GetPartition(), Records: batch, NextOffset: next}); err != nil {
				return err
			}
			continue
		}
		if limit > 0 && sent >= limit {
			return status.Error(codes.Unavailable, "injected stream break")
		}
		select {
		case <-wait:
		case <-st.Context().Done():
			return st.Context().Err()
		}
	}
}

// InitProducer hands out ids 1, 2, ... across the fake cluster.
func (b *fakeBroker) InitProducer(_ context.Context, req *stratav1.InitProducerRequest) (*stratav1.InitProducerResponse, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	b.c.nextPID++
	return &stratav1.InitProducerResponse{ProducerId: b.c.nextPID}, nil
}
