package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// Context is a named set of connection settings.
type Context struct {
	Brokers  []string `json:"brokers,omitempty"`
	CA       string   `json:"ca,omitempty"`
	Cert     string   `json:"cert,omitempty"`
	Key      string   `json:"key,omitempty"`
	Admin    string   `json:"admin,omitempty"`
	Insecure bool     `json:"insecure,omitempty"`
}

// ContextFile is the contexts file: $STRATA_CONTEXT_FILE or
// <user config dir>/strata/contexts.json.
type ContextFile struct {
	Current  string              `json:"current,omitempty"`
	Contexts map[string]*Context `json:"contexts"`
}

// contextPath returns the contexts file's path.
func contextPath(getenv func(string) string) (string, error) {
	if p := getenv("STRATA_CONTEXT_FILE"); p != "" {
		return p, nil
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			d, err := os.UserConfigDir()
			if err != nil {
				return "", fmt.Errorf("no config directory for contexts (set STRATA_CONTEXT_FILE): %w", err)
			}
			return filepath.Join(d, "strata", "contexts.json"), nil
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "strata", "contexts.json"), nil
}

// loadContexts reads the file; a missing file is an empty one.
func loadContexts(path string) (*ContextFile, error) {
	cf := &ContextFile{Contexts: map[string]*Context{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cf, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read contexts: %w", err)
	}
	if err := json.Unmarshal(b, cf); err != nil {
		return nil, fmt.Errorf("contexts file %s: %w", path, err)
	}
	if cf.Contexts == nil {
		cf.Contexts = map[string]*Context{}
	}
	return cf, nil
}

// save writes the file atomically and durably (pkg/atomicfile), mode 0600.
func (cf *ContextFile) save(path string) error {
	b, err := json.MarshalIndent(cf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save contexts: %w", err)
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save contexts: %w", err)
	}
	return nil
}

func (cf *ContextFile) names() []string {
	out := make([]string, 0, len(cf.Contexts))
	for n := range cf.Contexts {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
