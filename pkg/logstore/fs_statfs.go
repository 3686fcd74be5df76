//go:build linux || darwin

package logstore

import "syscall"

// FreeBytes implements spaceReporter with statfs(2).
func (OSFS) FreeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
