package topic

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-log/strata/pkg/atomicfile"
)

// storageIDFile holds the data directory's storage id.
const storageIDFile = "storage.id"

// loadStorageID returns the data directory's storage id, creating it (a
// random 128-bit id in hex, written atomically and durably) when the file
// does not exist: on a new directory, and on a directory from before
// storage ids, which keeps its records and only gains an id.
//
// The id is Kafka's directory id (KIP-858): the controller records it, and
// a broker that reports another one has a new, empty directory (a replaced
// disk), so none of the records the metadata counts on it are there.
func loadStorageID(dir string) (string, error) {
	path := filepath.Join(dir, storageIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		id := strings.TrimSpace(string(b))
		if id == "" {
			return "", fmt.Errorf("topic: %s is empty", path)
		}
		return id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("topic: %w", err)
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := hex.EncodeToString(raw[:])
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("topic: %w", err)
	}
	return id, nil
}
