package cluster

import (
	"crypto/tls"
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDialRefusals(t *testing.T) {
	tlsFor := func(string) (*tls.Config, error) { return &tls.Config{MinVersion: tls.VersionTLS13}, nil }
	if _, err := Dial(nil, tlsFor, nil); !errors.Is(err, ErrNoAddrs) {
		t.Fatalf("Dial(no addresses) = %v", err)
	}
	if _, err := Dial([]string{"127.0.0.1:1", "no-port"}, tlsFor, nil); err == nil {
		t.Fatal("Dial accepted an address without a port")
	}
	bad := errors.New("no tls for you")
	if _, err := Dial([]string{"127.0.0.1:1"}, func(string) (*tls.Config, error) { return nil, bad }, nil); !errors.Is(err, bad) {
		t.Fatalf("Dial with a TLS error = %v", err)
	}
	var names []string
	c, err := Dial([]string{"127.0.0.1:1", "broker-2:9092"}, func(h string) (*tls.Config, error) {
		names = append(names, h)
		return tlsFor(h)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "127.0.0.1" || names[1] != "broker-2" {
		t.Fatalf("server names %v: each address must be verified by its own host", names)
	}
}
