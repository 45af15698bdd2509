//go:build !linux

package remover

import "fmt"

// mountReadOnly cannot tell on this system: --plan-configmap is for the
// kubelet's Linux volumes, and a check that cannot be made refuses.
func mountReadOnly(path string) (bool, error) {
	return false, fmt.Errorf("cannot read the mount flags of %s: supported on Linux only", path)
}
