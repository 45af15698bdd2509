package remover

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// mountReadOnly reads the read-only flag of the mount holding path: the
// flag of the bind mount the container sees, which the kubelet sets for a
// volumeMount with readOnly: true, and not only the file system's own.
func mountReadOnly(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint64(st.Flags)&unix.ST_RDONLY != 0, nil
}
