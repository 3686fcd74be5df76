package healthcheck

import (
	"errors"
	"testing"
)

func TestLocalAddr(t *testing.T) {
	for listen, want := range map[string]string{
		"0.0.0.0:9092":   "127.0.0.1:9092",
		":9092":          "127.0.0.1:9092",
		"[::]:9092":      "[::1]:9092",
		"10.0.0.7:9092":  "10.0.0.7:9092",
		"broker-1:9092":  "broker-1:9092",
		"127.0.0.1:9092": "127.0.0.1:9092",
	} {
		if got, err := LocalAddr(listen); err != nil || got != want {
			t.Errorf("LocalAddr(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := LocalAddr("no-port"); err == nil {
		t.Error("LocalAddr accepted an address without a port")
	}
}

func TestOneLine(t *testing.T) {
	err := errors.Join(errors.New("config: node-id must be positive"), errors.New("  tls-cert\\n is   required "))
	if got, want := OneLine(err), "config: node-id must be positive; tls-cert\\n is required"; got != want {
		t.Fatalf("OneLine = %q, want %q", got, want)
	}
}
