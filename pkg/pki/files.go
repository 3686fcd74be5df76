package pki

import (
	"errors"
	"io/fs"
	"os"
)

// File modes of written PEM files.
const (
	certFileMode fs.FileMode = 0o644
	keyFileMode  fs.FileMode = 0o600
)

// exists reports whether path exists; errors other than "not exist" are
// returned.
func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}
