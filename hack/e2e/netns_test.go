//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// testHost is a network namespace joined to the host by a veth pair, with
// addresses from 198.18.0.0/15 (reserved for benchmarks). The API server
// refuses loopback endpoint addresses, so a repo that must appear as a pod
// needs an address of its own.
type testHost struct {
	name   string
	hostIP string
	podIP  string
}

// newTestHost creates the namespace and the veth pair; t.Cleanup removes them.
func newTestHost(t *testing.T, index int) *testHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("e2e tests create network namespaces and must run as root")
	}
	id := fmt.Sprintf("%04x%02x", os.Getpid()&0xffff, index)
	h := &testHost{
		name:   "uic" + id,
		hostIP: fmt.Sprintf("198.18.%d.%d", index, 1),
		podIP:  fmt.Sprintf("198.18.%d.%d", index, 2),
	}
	hostIf, nsIf := "uich"+id, "uicn"+id
	steps := [][]string{
		{"netns", "add", h.name},
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf},
		{"link", "set", nsIf, "netns", h.name},
		{"addr", "add", h.hostIP + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", h.name, "addr", "add", h.podIP + "/30", "dev", nsIf},
		{"-n", h.name, "link", "set", nsIf, "up"},
		{"-n", h.name, "link", "set", "lo", "up"},
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", hostIf).Run()
		_ = exec.Command("ip", "netns", "del", h.name).Run()
	})
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", s, err, out)
		}
	}
	return h
}

// listen opens a TCP listener inside the namespace. The socket keeps the
// namespace it was created in, so the calling thread only visits it.
func (h *testHost) listen(t *testing.T, port int) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + h.name)
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter %s: %v", h.name, err)
	}
	l, lerr := net.Listen("tcp", fmt.Sprintf("%s:%d", h.podIP, port))
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the test namespace: keep it locked so the
		// runtime discards it instead of reusing it.
		t.Fatalf("leave %s: %v", h.name, err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		t.Fatalf("listen in %s: %v", h.name, lerr)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}
