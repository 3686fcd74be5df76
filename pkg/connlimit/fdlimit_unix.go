//go:build unix

package connlimit

import "syscall"

// fileLimit is the process's soft limit on open file descriptors.
func fileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true // int64 on some BSDs
}
