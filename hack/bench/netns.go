//go:build bench

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// netHost is a network namespace joined to the host by a veth pair, with
// addresses from 198.18.0.0/15 (reserved for benchmarks), as hack/e2e's
// testHost: the API server refuses loopback endpoint addresses, so the repo
// needs an address of its own to appear as a pod. Deleting the namespace
// (close, or `ip netns del NAME` from hack/bench/run's trap) deletes the
// veth pair with it.
type netHost struct {
	name   string
	hostIP string
	podIP  string
}

func newNetHost(name string, index int) (*netHost, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("creating a network namespace needs root")
	}
	if index < 0 || index > 255 {
		return nil, fmt.Errorf("netns index %d out of 0..255", index)
	}
	h := &netHost{
		name:   name,
		hostIP: fmt.Sprintf("198.18.%d.1", index),
		podIP:  fmt.Sprintf("198.18.%d.2", index),
	}
	id := fmt.Sprintf("%05d", os.Getpid()%100000)
	hostIf, nsIf := "ubh"+id, "ubn"+id
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
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "link", "del", hostIf).Run()
			_ = exec.Command("ip", "netns", "del", h.name).Run()
			return nil, fmt.Errorf("ip %v: %v: %s", s, err, out)
		}
	}
	return h, nil
}

func (h *netHost) close() {
	_ = exec.Command("ip", "netns", "del", h.name).Run()
}

// listen opens a TCP listener inside the namespace. The socket keeps the
// namespace it was created in, so the calling thread only visits it.
func (h *netHost) listen(port int) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + h.name)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter %s: %w", h.name, err)
	}
	l, lerr := net.Listen("tcp", fmt.Sprintf("%s:%d", h.podIP, port))
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the namespace: keep it locked so the
		// runtime discards it instead of reusing it.
		return nil, fmt.Errorf("leave %s: %w", h.name, err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		return nil, fmt.Errorf("listen in %s: %w", h.name, lerr)
	}
	return l, nil
}
