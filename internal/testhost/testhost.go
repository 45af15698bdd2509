// Package testhost makes a network namespace joined to the host by a veth
// pair, with addresses from 198.18.0.0/15 (reserved for benchmarks), for the
// end-to-end tests and the benchmarks. The API server refuses loopback
// endpoint addresses, so a repo that must appear as a pod needs an address
// of its own. Root is needed.
package testhost

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Host is one network namespace and its addresses.
type Host struct {
	Name string
	// HostIP is the host's end of the veth pair, PodIP the namespace's: the
	// address a test writes as the repo pod's podIP.
	HostIP, PodIP string
}

// New creates namespace name (at most 14 characters: the veth ends are
// named "h"+name and "n"+name) with 198.18.<index>.1 on the host's end and
// 198.18.<index>.2 inside. On failure it removes what it made. Close
// removes the namespace and the veth pair with it.
func New(name string, index int) (*Host, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("creating a network namespace needs root")
	}
	if index < 0 || index > 255 {
		return nil, fmt.Errorf("netns index %d out of 0..255", index)
	}
	if len(name) > 14 {
		return nil, fmt.Errorf("netns name %q is longer than 14 characters (interface names are at most 15)", name)
	}
	h := &Host{Name: name, HostIP: fmt.Sprintf("198.18.%d.1", index), PodIP: fmt.Sprintf("198.18.%d.2", index)}
	hostIf, nsIf := "h"+name, "n"+name
	steps := [][]string{
		{"netns", "add", name},
		{"link", "add", hostIf, "type", "veth", "peer", "name", nsIf},
		{"link", "set", nsIf, "netns", name},
		{"addr", "add", h.HostIP + "/30", "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", name, "addr", "add", h.PodIP + "/30", "dev", nsIf},
		{"-n", name, "link", "set", nsIf, "up"},
		{"-n", name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "link", "del", hostIf).Run()
			h.Close()
			return nil, fmt.Errorf("ip %v: %v: %s", s, err, out)
		}
	}
	return h, nil
}

// Close deletes the namespace, and with it the veth pair.
func (h *Host) Close() {
	_ = exec.Command("ip", "netns", "del", h.Name).Run()
}

// Listen opens a TCP listener on PodIP inside the namespace. The socket
// keeps the namespace it was created in, so the calling thread only visits
// it.
func (h *Host) Listen(port int) (net.Listener, error) {
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + h.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("enter %s: %w", h.Name, err)
	}
	l, lerr := net.Listen("tcp", fmt.Sprintf("%s:%d", h.PodIP, port))
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the namespace: keep it locked so the
		// runtime discards it instead of reusing it.
		return nil, fmt.Errorf("leave %s: %w", h.Name, err)
	}
	runtime.UnlockOSThread()
	if lerr != nil {
		return nil, fmt.Errorf("listen in %s: %w", h.Name, lerr)
	}
	return l, nil
}

// PodStatus is the status a kubelet would write for a running pod at PodIP,
// Ready or not: no kubelet runs in these clusters, the caller writes it.
func (h *Host) PodStatus(ready bool) corev1.PodStatus {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	now := metav1.Now()
	return corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  h.PodIP,
		PodIPs: []corev1.PodIP{{IP: h.PodIP}},
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: status, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: status, LastTransitionTime: now},
		},
	}
}
