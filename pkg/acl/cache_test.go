package acl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"
)

func TestCacheRoundTrip(t *testing.T) {
	c := NewCache(filepath.Join(t.TempDir(), "policy.cache"))
	if _, _, err := c.Load(); !errors.Is(err, ErrNoCache) {
		t.Fatalf("Load of a missing cache = %v", err)
	}
	if err := c.Save(matrixPolicy, 42); err != nil {
		t.Fatal(err)
	}
	text, v, err := c.Load()
	if err != nil || text != matrixPolicy || v != 42 {
		t.Fatalf("Load = v%d, same=%v, %v", v, text == matrixPolicy, err)
	}
	if err := c.Save(DefaultPolicy, 43); err != nil {
		t.Fatal(err)
	}
	if text, v, err = c.Load(); err != nil || text != DefaultPolicy || v != 43 {
		t.Fatalf("Load after overwrite = v%d, %v", v, err)
	}
	if err := c.Save("p, a, t, fly, allow", 44); !errors.Is(err, ErrInvalidPolicy) {
		t.Fatalf("Save(invalid) = %v", err)
	}
	entries, err := os.ReadDir(filepath.Dir(c.path))
	if err != nil || len(entries) != 1 {
		t.Fatalf("temp files left behind: %v %v", entries, err)
	}
}

func TestCacheCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.cache")
	c := NewCache(path)
	if err := c.Save(DefaultPolicy, 7); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"torn":           string(good[:len(good)-10]),
		"altered":        strings.Replace(string(good), "replicate", "admin", 1),
		"no header":      DefaultPolicy,
		"bad version":    strings.Replace(string(good), "version=7", "version=x", 1),
		"only header":    strings.SplitN(string(good), "\n", 2)[0],
		"empty file":     "",
		"foreign header": "# something else\n" + DefaultPolicy,
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Load(); !errors.Is(err, ErrCorruptCache) {
				t.Fatalf("Load = %v, want ErrCorruptCache", err)
			}
		})
	}
}

// TestAuthorizerCache: accepted policies are saved; a restarted Authorizer
// enforces the cached policy and version instead of its configured one; a
// corrupt cache falls back to the configured policy.
func TestAuthorizerCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.cache")
	lg := zaptest.NewLogger(t)
	a, err := NewAuthorizer(Options{CachePath: path}, lg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ReplaceAt(DefaultPolicy+"p, alice, orders, produce, allow\n", 5); err != nil {
		t.Fatal(err)
	}
	if err := a.Replace("p, alice, orders, fly, allow\n"); err == nil {
		t.Fatal("invalid policy accepted")
	}

	restarted, err := NewAuthorizer(Options{CachePath: path}, lg)
	if err != nil {
		t.Fatal(err)
	}
	if _, v := restarted.Policy(); v != 5 {
		t.Fatalf("restarted at version %d, want the cached 5", v)
	}
	if ok, err := restarted.Allowed("alice", "orders", ActionProduce); !ok || err != nil {
		t.Fatalf("cached policy not enforced after restart: %v %v", ok, err)
	}

	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	fallback, err := NewAuthorizer(Options{CachePath: path}, lg)
	if err != nil {
		t.Fatal(err)
	}
	if text, v := fallback.Policy(); text != DefaultPolicy || v != 1 {
		t.Fatalf("corrupt cache: got version %d, default=%v", v, text == DefaultPolicy)
	}
}
