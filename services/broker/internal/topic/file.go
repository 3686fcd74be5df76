package topic

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/strata-log/strata/pkg/atomicfile"
	"github.com/strata-log/strata/pkg/topicconfig"
)

// configFile is the name of a topic's persisted config inside its directory.
// Its presence is the commit point of a topic's creation.
const configFile = "topic.json"

// fileFormat is the content of topic.json.
type fileFormat struct {
	Version int                `json:"version"`
	Name    string             `json:"name"`
	Config  topicconfig.Config `json:"config"`
	// ID is the controller's topic id in cluster mode (empty on a single
	// node): a local copy with another id is a different, deleted topic.
	ID string `json:"id,omitempty"`
}

const fileVersion = 1

// maxConfigFileBytes bounds what is read from topic.json.
const maxConfigFileBytes = 64 << 10

func readConfig(dir string) (fileFormat, error) {
	path := filepath.Join(dir, configFile)
	f, err := os.Open(path)
	if err != nil {
		return fileFormat{}, err
	}
	defer f.Close() // read-only: nothing to lose on close
	var ff fileFormat
	dec := json.NewDecoder(io.LimitReader(f, maxConfigFileBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ff); err != nil {
		return fileFormat{}, fmt.Errorf("topic: %s: %w", path, err)
	}
	if ff.Version != fileVersion {
		return fileFormat{}, fmt.Errorf("topic: %s: unsupported version %d", path, ff.Version)
	}
	return ff, nil
}

// writeConfig writes dir/topic.json atomically and durably: temp file,
// fsync, rename, fsync of the directory.
func writeConfig(dir string, ff fileFormat) error {
	data, err := json.MarshalIndent(ff, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, configFile), append(data, '\n'), 0o644)
}
