package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
)

// A broker answers metadata from its own replicator's copy of the Raft
// state. A node back from a network partition serves its old copy until
// it catches up, naming itself leader of partitions it lost, so one
// broker's answer is not the cluster's. The verify commands ask every
// broker and keep, per partition, the answer with the highest leader epoch.

// brokerConns holds one connection per broker address, over the CLI's
// own TLS settings.
type brokerConns struct {
	creds credentials.TransportCredentials
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

func (e *env) newBrokerConns() (*brokerConns, []string, error) {
	c, err := e.resolve()
	if err != nil {
		return nil, nil, err
	}
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, nil, err
	}
	bc := &brokerConns{conns: make(map[string]*grpc.ClientConn)}
	if tc == nil {
		bc.creds = insecure.NewCredentials()
	} else {
		bc.creds = credentials.NewTLS(tc)
	}
	return bc, c.Brokers, nil
}

func (bc *brokerConns) conn(addr string) (*grpc.ClientConn, error) {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	if cc, ok := bc.conns[addr]; ok {
		return cc, nil
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(bc.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(stratav1.MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	bc.conns[addr] = cc
	return cc, nil
}

func (bc *brokerConns) close() error {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	var errs []error
	for addr, cc := range bc.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}

// brokerAnswer is one broker's metadata answer, or why there is none.
type brokerAnswer struct {
	Address string `json:"address"`
	// ID is the broker's id: the one whose advertised address was asked;
	// -1 when no answer names it.
	ID    int32  `json:"id"`
	Error string `json:"error,omitempty"`
	md    *stratav1.MetadataResponse
}

// clusterView is what every broker said about one topic.
type clusterView struct {
	Topic   string         `json:"topic"`
	Answers []brokerAnswer `json:"brokers"`
	// Partitions are, per partition, the answer with the highest leader
	// epoch.
	Partitions []*stratav1.PartitionMetadata `json:"-"`
	// Converged: every broker answered, all agree on every partition's
	// leader, epoch and ISR, and every partition has a leader and all its
	// replicas in sync.
	Converged bool     `json:"converged"`
	Why       []string `json:"not_converged_because,omitempty"`
	addrs     map[int32]string
}

// view asks each of addrs, and every broker their answers name, for the
// metadata of topic, each request bounded by timeout. It fails only when
// no broker answers or none knows the topic.
func (bc *brokerConns) view(ctx context.Context, addrs []string, topic string, timeout time.Duration) (*clusterView, error) {
	v := &clusterView{Topic: topic, addrs: make(map[int32]string)}
	asked := make(map[string]bool)
	for len(addrs) > 0 {
		answers := make([]brokerAnswer, len(addrs))
		var wg sync.WaitGroup
		for i, addr := range addrs {
			asked[addr] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers[i] = bc.ask(ctx, addr, topic, timeout)
			}()
		}
		wg.Wait()
		v.Answers = append(v.Answers, answers...)
		// Brokers the answers name that were not asked yet: the bootstrap
		// list may be a subset of the cluster.
		addrs = nil
		for _, a := range answers {
			for _, b := range a.md.GetBrokers() {
				if b.GetAddress() != "" && !asked[b.GetAddress()] {
					asked[b.GetAddress()] = true
					addrs = append(addrs, b.GetAddress())
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v.merge()
	if v.Partitions == nil {
		var errs []string
		for _, a := range v.Answers {
			if a.Error != "" {
				errs = append(errs, a.Address+": "+a.Error)
			}
		}
		if len(errs) == len(v.Answers) {
			return nil, fmt.Errorf("no broker answered: %s", strings.Join(errs, "; "))
		}
		return nil, fmt.Errorf("topic %q not found", topic)
	}
	return v, nil
}

func (bc *brokerConns) ask(ctx context.Context, addr, topic string, timeout time.Duration) brokerAnswer {
	a := brokerAnswer{Address: addr, ID: -1}
	cc, err := bc.conn(addr)
	if err != nil {
		a.Error = err.Error()
		return a
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	md, err := stratav1.NewMetadataClient(cc).Metadata(cctx, &stratav1.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		a.Error = err.Error()
		return a
	}
	a.md = md
	for _, b := range md.GetBrokers() {
		if b.GetAddress() == addr {
			a.ID = b.GetId()
		}
	}
	return a
}

// merge picks each partition's freshest answer and decides Converged.
func (v *clusterView) merge() {
	best := make(map[int32]*stratav1.PartitionMetadata)
	answered := 0
	var why []string
	for _, a := range v.Answers {
		if a.Error != "" {
			why = append(why, fmt.Sprintf("broker %s did not answer", a.Address))
			continue
		}
		for _, b := range a.md.GetBrokers() {
			if b.GetAddress() != "" {
				v.addrs[b.GetId()] = b.GetAddress()
			}
		}
		tm := findTopicIn(a.md, v.Topic)
		if tm == nil {
			why = append(why, fmt.Sprintf("broker %s does not know the topic", a.Address))
			continue
		}
		answered++
		for _, p := range tm.GetPartitions() {
			if cur, ok := best[p.GetPartition()]; !ok || p.GetLeaderEpoch() > cur.GetLeaderEpoch() {
				best[p.GetPartition()] = p
			}
		}
	}
	if answered == 0 {
		v.Why = why
		return
	}
	for _, p := range best {
		v.Partitions = append(v.Partitions, proto.Clone(p).(*stratav1.PartitionMetadata))
	}
	sort.Slice(v.Partitions, func(i, j int) bool { return v.Partitions[i].GetPartition() < v.Partitions[j].GetPartition() })
	for _, a := range v.Answers {
		tm := findTopicIn(a.md, v.Topic)
		if tm == nil {
			continue
		}
		for _, p := range tm.GetPartitions() {
			b := best[p.GetPartition()]
			if p.GetLeaderId() != b.GetLeaderId() || p.GetLeaderEpoch() != b.GetLeaderEpoch() || !sameSet(p.GetIsr(), b.GetIsr()) {
				why = append(why, fmt.Sprintf("broker %s says partition %d: leader %d epoch %d isr [%s]; freshest: leader %d epoch %d isr [%s]",
					a.Address, p.GetPartition(), p.GetLeaderId(), p.GetLeaderEpoch(), joinInts(p.GetIsr()),
					b.GetLeaderId(), b.GetLeaderEpoch(), joinInts(b.GetIsr())))
			}
		}
	}
	for _, p := range v.Partitions {
		if p.GetOffline() || p.GetLeaderId() < 0 {
			why = append(why, fmt.Sprintf("partition %d has no leader", p.GetPartition()))
		} else if !sameSet(p.GetIsr(), p.GetReplicas()) {
			why = append(why, fmt.Sprintf("partition %d: isr [%s] of replicas [%s]", p.GetPartition(), joinInts(p.GetIsr()), joinInts(p.GetReplicas())))
		}
	}
	v.Why = why
	v.Converged = len(why) == 0
}

func findTopicIn(md *stratav1.MetadataResponse, topic string) *stratav1.TopicMetadata {
	for _, t := range md.GetTopics() {
		if t.GetName() == topic {
			return t
		}
	}
	return nil
}

func sameSet(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

func (v *clusterView) partition(id int32) *stratav1.PartitionMetadata {
	for _, p := range v.Partitions {
		if p.GetPartition() == id {
			return p
		}
	}
	return nil
}

// statusPartition is one partition in verify status --json.
type statusPartition struct {
	Partition   int32   `json:"partition"`
	Leader      int32   `json:"leader"`
	LeaderEpoch int32   `json:"leader_epoch"`
	Replicas    []int32 `json:"replicas"`
	ISR         []int32 `json:"isr"`
	Offline     bool    `json:"offline"`
}

func runVerifyStatus(ctx context.Context, e *env, args []string) (err error) {
	fs := e.flagSet()
	topic := fs.String("topic", "", "`topic` to report on (required)")
	timeout := fs.Duration("rpc-timeout", 3*time.Second, "bound on each broker's answer")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *topic == "" {
		return usagef("verify status: --topic is required")
	}
	ctx, cancel := e.withTimeout(ctx)
	defer cancel()
	bc, addrs, err := e.newBrokerConns()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, bc.close()) }()
	v, err := bc.view(ctx, addrs, *topic, *timeout)
	if err != nil {
		return err
	}
	if e.g.json {
		out := struct {
			*clusterView
			Partitions []statusPartition `json:"partitions"`
		}{clusterView: v}
		for _, p := range v.Partitions {
			out.Partitions = append(out.Partitions, statusPartition{Partition: p.GetPartition(), Leader: p.GetLeaderId(),
				LeaderEpoch: p.GetLeaderEpoch(), Replicas: nonNil(p.GetReplicas()), ISR: nonNil(p.GetIsr()), Offline: p.GetOffline()})
		}
		return printJSON(e.io.Out, out)
	}
	t := newTable(e.io.Out, "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR")
	for _, p := range v.Partitions {
		leader := fmt.Sprint(p.GetLeaderId())
		if p.GetOffline() || p.GetLeaderId() < 0 {
			leader = "offline"
		}
		t.row(p.GetPartition(), leader, p.GetLeaderEpoch(), joinInts(p.GetReplicas()), joinInts(p.GetIsr()))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if v.Converged {
		_, err = fmt.Fprintln(e.io.Out, "\nconverged: every broker agrees; every partition has a leader and a full ISR")
		return err
	}
	_, err = fmt.Fprintf(e.io.Out, "\nnot converged:\n  %s\n", strings.Join(v.Why, "\n  "))
	return err
}

func nonNil(xs []int32) []int32 {
	if xs == nil {
		return []int32{}
	}
	return xs
}
