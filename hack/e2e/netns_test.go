//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/testhost"
)

// testHost is the repo's own host: a network namespace with a routable
// address (internal/testhost), removed when the test ends.
type testHost struct {
	*testhost.Host
}

// newTestHost creates the namespace for netns index (unique per test);
// t.Cleanup removes it.
func newTestHost(t *testing.T, index int) *testHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("e2e tests create network namespaces and must run as root")
	}
	h, err := testhost.New(fmt.Sprintf("uic%04x%02x", os.Getpid()&0xffff, index), index)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &testHost{Host: h}
}

// listen opens a TCP listener on the pod address; t.Cleanup closes it.
func (h *testHost) listen(t *testing.T, port int) net.Listener {
	t.Helper()
	l, err := h.Listen(port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
