//go:build !unix

package connlimit

// fileLimit is unknown outside unix.
func fileLimit() (uint64, bool) { return 0, false }
