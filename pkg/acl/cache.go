package acl

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// Cache is a last-good-policy file. Layout:
//
//	# strata-acl-policy v1 version=<uint64> sha256=<hex of the text>\n
//	<policy text>
//
// It is written temp file → fsync → rename → fsync directory, so a crash
// leaves the old file or the new one. Load checks the checksum and parses
// the policy, so a torn or altered file is never enforced.
type Cache struct {
	path string
}

const cacheMagic = "# strata-acl-policy v1"

// NewCache returns the cache at path. Nothing is read or written yet.
func NewCache(path string) *Cache { return &Cache{path: path} }

// Save writes text and version atomically. text must be a valid policy.
func (c *Cache) Save(text string, version uint64) error {
	if _, err := ParsePolicy(text); err != nil {
		return fmt.Errorf("acl cache save: %w", err)
	}
	sum := sha256.Sum256([]byte(text))
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s version=%d sha256=%s\n", cacheMagic, version, hex.EncodeToString(sum[:]))
	b.WriteString(text)
	if err := atomicfile.Write(c.path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("acl cache save: %w", err)
	}
	return nil
}

// Load returns the cached policy text and version. ErrNoCache when the
// file does not exist, ErrCorruptCache when it is damaged, a *ParseError
// when it holds an invalid policy.
func (c *Cache) Load() (text string, version uint64, err error) {
	data, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", 0, fmt.Errorf("%w: %s", ErrNoCache, c.path)
	}
	if err != nil {
		return "", 0, fmt.Errorf("acl cache load: %w", err)
	}
	header, body, ok := strings.Cut(string(data), "\n")
	if !ok {
		return "", 0, fmt.Errorf("%w: %s: no header line", ErrCorruptCache, c.path)
	}
	rest, ok := strings.CutPrefix(header, cacheMagic+" ")
	if !ok {
		return "", 0, fmt.Errorf("%w: %s: bad header", ErrCorruptCache, c.path)
	}
	var vField, sumField string
	if _, err := fmt.Sscanf(rest, "version=%s sha256=%s", &vField, &sumField); err != nil {
		return "", 0, fmt.Errorf("%w: %s: bad header: %w", ErrCorruptCache, c.path, err)
	}
	version, err = strconv.ParseUint(vField, 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s: bad version: %w", ErrCorruptCache, c.path, err)
	}
	sum := sha256.Sum256([]byte(body))
	if hex.EncodeToString(sum[:]) != sumField {
		return "", 0, fmt.Errorf("%w: %s: checksum mismatch", ErrCorruptCache, c.path)
	}
	if _, err := ParsePolicy(body); err != nil {
		return "", 0, fmt.Errorf("acl cache load %s: %w", c.path, err)
	}
	return body, version, nil
}
