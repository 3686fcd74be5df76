package broker

import (
	"errors"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-log/strata/pkg/pki"
)

// peerPool dials other brokers under this broker's own certificate (the
// group coordinator asks partition leaders for their high watermarks):
// one connection per address, all closed at shutdown.
type peerPool struct {
	rl *pki.Reloader // nil: plaintext (insecure-no-auth)

	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool
}

func newPeerPool(rl *pki.Reloader) *peerPool {
	return &peerPool{rl: rl, conns: map[string]*grpc.ClientConn{}}
}

// Conn is the connection to the broker at addr, dialled on first use.
func (p *peerPool) Conn(addr string) (grpc.ClientConnInterface, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("broker: peer pool closed")
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	creds := insecure.NewCredentials()
	if p.rl != nil {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("broker: peer %q: %w", addr, err)
		}
		tc, err := p.rl.ClientConfig(host)
		if err != nil {
			return nil, fmt.Errorf("broker: peer %s tls: %w", addr, err)
		}
		creds = credentials.NewTLS(tc)
	}
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("broker: peer %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

// Close closes every connection.
func (p *peerPool) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	var errs []error
	for _, c := range p.conns {
		errs = append(errs, c.Close())
	}
	clear(p.conns)
	return errors.Join(errs...)
}
