package scrape

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Kind is what a target is.
type Kind string

// Kinds of target.
const (
	KindBroker     Kind = "broker"
	KindReplicator Kind = "replicator"
)

// Target is one /metrics endpoint of a broker or a replicator.
type Target struct {
	// Name is broker-N or replicator-N.
	Name string
	Kind Kind
	// Node is N.
	Node int32
	// URL is the endpoint scraped.
	URL string
}

// ErrBadTarget is wrapped by every ParseTargets error.
var ErrBadTarget = errors.New("scrape: bad target")

// ParseTargets parses a comma-separated list of NAME=ADDR, where NAME is
// broker-N or replicator-N and ADDR is host:port (scraped as
// http://host:port/metrics) or an http(s) URL.
func ParseTargets(s string) ([]Target, error) {
	var out []Target
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, addr, ok := strings.Cut(item, "=")
		if !ok || addr == "" {
			return nil, fmt.Errorf("%w: %q: want NAME=host:port", ErrBadTarget, item)
		}
		t, err := newTarget(name, addr)
		if err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%w: %s named twice", ErrBadTarget, t.Name)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	return out, nil
}

func newTarget(name, addr string) (Target, error) {
	t := Target{Name: name}
	kind, id, ok := strings.Cut(name, "-")
	n, err := strconv.ParseInt(id, 10, 32)
	switch {
	case !ok || err != nil || n < 0:
		return t, fmt.Errorf("%w: name %q: want broker-N or replicator-N", ErrBadTarget, name)
	case Kind(kind) != KindBroker && Kind(kind) != KindReplicator:
		return t, fmt.Errorf("%w: name %q: want broker-N or replicator-N", ErrBadTarget, name)
	}
	t.Kind, t.Node = Kind(kind), int32(n)
	if strings.Contains(addr, "://") {
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return t, fmt.Errorf("%w: %s: %q is not an http(s) URL", ErrBadTarget, name, addr)
		}
		t.URL = u.String()
		return t, nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return t, fmt.Errorf("%w: %s: %q: want host:port", ErrBadTarget, name, addr)
	}
	t.URL = "http://" + addr + "/metrics"
	return t, nil
}
