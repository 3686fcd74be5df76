package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/strata-log/strata/pkg/grpctls"
	stratav1 "github.com/strata-log/strata/pkg/proto/strata/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Client is a connection to a Strata cluster. It is safe for concurrent use.
type Client struct {
	cfg Config
	lg  *zap.Logger

	// ctx is cancelled by Close; every background goroutine derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	conns    map[string]*grpc.ClientConn
	meta     *stratav1.MetadataResponse
	topics   map[string]*stratav1.TopicMetadata
	metaAt   time.Time
	metaWait chan struct{} // non-nil while a refresh runs; closed when done
	metaErr  error
	closers  map[closer]struct{}
}

type closer interface{ closeFromClient() }

// New connects to the cluster: it fetches the metadata from the first
// bootstrap broker that answers.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		cfg:     cfg,
		lg:      cfg.Logger,
		ctx:     cctx,
		cancel:  cancel,
		conns:   make(map[string]*grpc.ClientConn),
		topics:  make(map[string]*stratav1.TopicMetadata),
		closers: make(map[closer]struct{}),
	}
	if err := c.RefreshMetadata(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

// Close closes every producer and consumer made by the client and every
// connection. Pending produce results fail with ErrClosed; use
// Producer.Close or Flush first to deliver them.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	closers := make([]closer, 0, len(c.closers))
	for cl := range c.closers {
		closers = append(closers, cl)
	}
	c.mu.Unlock()
	for _, cl := range closers {
		cl.closeFromClient()
	}
	c.cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for addr, cc := range c.conns {
		if err := cc.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", addr, err))
		}
		delete(c.conns, addr)
	}
	return errors.Join(errs...)
}

func (c *Client) register(cl closer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	c.closers[cl] = struct{}{}
	return nil
}

func (c *Client) unregister(cl closer) {
	c.mu.Lock()
	delete(c.closers, cl)
	c.mu.Unlock()
}

// conn returns the connection to addr, creating it (lazily connecting) on
// first use.
func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if cc, ok := c.conns[addr]; ok {
		return cc, nil
	}
	var opts []grpc.DialOption
	if c.cfg.Insecure {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		opts = grpctls.DialOptions(c.cfg.TLS)
	}
	opts = append(opts,
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(c.cfg.MaxMessageBytes),
			grpc.MaxCallSendMsgSize(c.cfg.MaxMessageBytes),
		),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: c.cfg.DialTimeout,
		}),
		grpc.WithInitialWindowSize(4<<20),
		grpc.WithInitialConnWindowSize(16<<20),
	)
	opts = append(opts, c.cfg.DialOptions...)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("client: connect %s: %w", addr, err)
	}
	c.conns[addr] = cc
	return cc, nil
}

// anyConn returns a connection to some broker: a known live one first, then
// the bootstrap list.
func (c *Client) brokerAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool)
	var out []string
	if c.meta != nil {
		for _, b := range c.meta.GetBrokers() {
			if b.GetAlive() && b.GetAddress() != "" && !seen[b.GetAddress()] {
				seen[b.GetAddress()] = true
				out = append(out, b.GetAddress())
			}
		}
	}
	for _, b := range c.cfg.Brokers {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

// RefreshMetadata fetches the cluster metadata now (joining a refresh that
// is already running).
func (c *Client) RefreshMetadata(ctx context.Context) error {
	return c.refresh(ctx, true)
}

// refresh updates the metadata cache. Without force it is skipped when the
// cache is younger than MetadataMinInterval.
func (c *Client) refresh(ctx context.Context, force bool) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if w := c.metaWait; w != nil {
		c.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.metaErr
	}
	if !force && c.meta != nil && time.Since(c.metaAt) < c.cfg.MetadataMinInterval {
		c.mu.Unlock()
		return nil
	}
	w := make(chan struct{})
	c.metaWait = w
	c.mu.Unlock()

	resp, err := c.fetchMetadata(ctx)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.metaWait = nil
	c.metaErr = err
	close(w)
	if err != nil {
		return err
	}
	c.meta = resp
	c.metaAt = time.Now()
	c.topics = make(map[string]*stratav1.TopicMetadata, len(resp.GetTopics()))
	for _, t := range resp.GetTopics() {
		c.topics[t.GetName()] = t
	}
	return nil
}

func (c *Client) fetchMetadata(ctx context.Context) (*stratav1.MetadataResponse, error) {
	// Every known broker is asked at once and the first answer wins: a
	// broker that is paused or cut off (its connection open but silent)
	// would otherwise hold each refresh for the whole dial timeout, just
	// when clients need new leaders. The other calls are cancelled.
	addrs := c.brokerAddrs()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	type answer struct {
		addr string
		resp *stratav1.MetadataResponse
		err  error
	}
	answers := make(chan answer, len(addrs))
	for _, addr := range addrs {
		cc, err := c.conn(addr)
		if err != nil {
			answers <- answer{addr: addr, err: err}
			continue
		}
		go func() {
			// Fail fast (no WaitForReady): a dead broker's connection goes
			// to TRANSIENT_FAILURE at once.
			resp, err := stratav1.NewMetadataClient(cc).Metadata(rctx, &stratav1.MetadataRequest{})
			answers <- answer{addr, resp, err}
		}()
	}
	// A refusal (PermissionDenied, Unauthenticated) is an answer: the
	// other brokers hold the same policy and CA, so it ends the wait
	// rather than counting as one broker down.
	var (
		errs    []error
		won     *stratav1.MetadataResponse
		refusal error
	)
	for range addrs { // every call returns: the winner cancels the rest
		a := <-answers
		switch {
		case a.err == nil && won == nil:
			won = a.resp
			cancel()
		case a.err != nil && won == nil:
			c.lg.Debug("metadata request failed", zap.String("broker", a.addr), zap.Error(a.err))
			err := fromStatus(a.err)
			if refused(err) && refusal == nil {
				refusal = err
				cancel()
			}
			errs = append(errs, fmt.Errorf("%s: %w", a.addr, err))
		}
	}
	if won != nil {
		return won, nil
	}
	if refusal != nil {
		return nil, refusal
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("%w: %w", ErrNoBrokers, errors.Join(errs...))
}

// topicNotFoundRetries are the waits between metadata refreshes for a
// topic the cluster does not report yet: in a cluster a topic just created
// through one node reaches the others' metadata a moment later (Kafka's
// producer likewise waits for metadata). About 0.7 s in all, so that a
// topic that really does not exist is still reported promptly.
var topicNotFoundRetries = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}

// topic returns the cached metadata of a topic, refreshing when it is
// unknown (a few times, briefly: see topicNotFoundRetries).
func (c *Client) topic(ctx context.Context, name string) (*stratav1.TopicMetadata, error) {
	c.mu.Lock()
	t, ok := c.topics[name]
	c.mu.Unlock()
	if ok {
		return t, nil
	}
	for attempt := 0; ; attempt++ {
		if err := c.refresh(ctx, attempt > 0); err != nil {
			return nil, err
		}
		c.mu.Lock()
		t, ok = c.topics[name]
		c.mu.Unlock()
		if ok {
			return t, nil
		}
		if attempt == len(topicNotFoundRetries) {
			return nil, fmt.Errorf("%w: %q", ErrTopicNotFound, name)
		}
		timer := time.NewTimer(topicNotFoundRetries[attempt])
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
	}
}

// leader returns the address of a partition's leader from the cache.
func (c *Client) leader(ctx context.Context, topic string, partition int32) (string, error) {
	t, err := c.topic(ctx, topic)
	if err != nil {
		return "", err
	}
	for _, p := range t.GetPartitions() {
		if p.GetPartition() == partition {
			if p.GetLeaderId() < 0 || p.GetOffline() || p.GetLeaderAddress() == "" {
				return "", fmt.Errorf("%w: %s/%d", ErrNoLeader, topic, partition)
			}
			return p.GetLeaderAddress(), nil
		}
	}
	return "", fmt.Errorf("%w: %s/%d", ErrPartitionNotFound, topic, partition)
}

// applyLeaderHint records a NotLeader hint in the cache so the next attempt
// goes to the named leader even before a refresh. It reports whether the
// hint named a leader.
func (c *Client) applyLeaderHint(nl *NotLeaderError) bool {
	if nl == nil || nl.LeaderAddress == "" || nl.LeaderID < 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.topics[nl.Topic]
	if !ok {
		return false
	}
	t = proto.Clone(t).(*stratav1.TopicMetadata)
	for _, p := range t.GetPartitions() {
		if p.GetPartition() == nl.Partition && p.GetLeaderEpoch() <= nl.LeaderEpoch {
			p.LeaderId = nl.LeaderID
			p.LeaderAddress = nl.LeaderAddress
			p.LeaderEpoch = nl.LeaderEpoch
			p.Offline = false
		}
	}
	c.topics[nl.Topic] = t
	return true
}

// Metadata asks a broker for the metadata of topics (all when none) and
// refreshes the cache with the answer when it covers all topics.
func (c *Client) Metadata(ctx context.Context, topics ...string) (*stratav1.MetadataResponse, error) {
	if len(topics) == 0 {
		if err := c.RefreshMetadata(ctx); err != nil {
			return nil, err
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.meta, nil
	}
	var resp *stratav1.MetadataResponse
	err := c.callAny(ctx, func(ctx context.Context, cc *grpc.ClientConn) error {
		var err error
		resp, err = stratav1.NewMetadataClient(cc).Metadata(ctx, &stratav1.MetadataRequest{Topics: topics})
		return err
	})
	return resp, err
}

// callAny runs a unary call against the first broker that answers without
// Unavailable.
func (c *Client) callAny(ctx context.Context, call func(context.Context, *grpc.ClientConn) error) error {
	var errs []error
	for _, addr := range c.brokerAddrs() {
		cc, err := c.conn(addr)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		err = call(rctx, cc)
		cancel()
		if err == nil {
			return nil
		}
		cerr := fromStatus(err)
		if ctx.Err() != nil || !IsRetriable(cerr) {
			return cerr
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, cerr))
	}
	return errors.Join(errs...)
}
