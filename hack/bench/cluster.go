//go:build bench

package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

const benchNS = cleanup.DefaultNamespace

// clients are the bench's own clients; their rate limit is lifted so that
// the bench, not client-go, sets the pace.
type clients struct {
	rest    *rest.Config
	kube    kubernetes.Interface
	dynamic dynamic.Interface
}

func newClients(kubeconfig string) (*clients, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 5000, 5000
	cfg.UserAgent = "upgrade-image-cleanup-bench"
	c := &clients{rest: cfg}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if c.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return nil, err
	}
	return c, nil
}

// prepareCluster installs what the controller needs on a bare control
// plane: the Upgrade CRD from deploy/, the namespace and a Node for the repo
// pod (the EndpointSlice controller looks the node up).
func prepareCluster(ctx context.Context, c *clients, root string) error {
	return cleanuptest.PrepareCluster(ctx, c.kube, c.dynamic, filepath.Join(root, cleanuptest.CRDPath), benchNS, "node1")
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// controllerProc is the controller binary, run by the bench.
type controllerProc struct {
	cmd         *exec.Cmd
	metricsAddr string
	exited      chan struct{}
	logPath     string
}

// startController runs the binary with --dry-run and metrics and health
// endpoints, and waits until /readyz says its caches have synced. It
// returns how long that took from the process start.
func startController(ctx context.Context, bin, kubeconfig, logPath string, extra ...string) (*controllerProc, time.Duration, error) {
	return runController(ctx, bin, logPath, append([]string{"--kubeconfig", kubeconfig, "--dry-run"}, extra...)...)
}

// runController runs the binary with args and metrics and health
// endpoints, and waits until /readyz says its caches have synced. It
// returns how long that took from the process start.
func runController(ctx context.Context, bin, logPath string, args ...string) (*controllerProc, time.Duration, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, 0, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, 0, err
	}
	args = append(args, "--metrics-addr", addr, "--health-addr", addr, "--log-format", "json")
	p := &controllerProc{cmd: exec.Command(bin, args...), metricsAddr: addr, exited: make(chan struct{}), logPath: logPath}
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Should the bench die without stopping it, the controller stops too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	began := time.Now()
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, 0, err
	}
	go func() { _ = p.cmd.Wait(); logFile.Close(); close(p.exited) }()
	err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		select {
		case <-p.exited:
			return false, fmt.Errorf("controller exited; log %s", logPath)
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false, nil
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		p.stop()
		return nil, 0, fmt.Errorf("controller not ready: %w", err)
	}
	return p, time.Since(began), nil
}

// stop sends SIGTERM and waits, then SIGKILL after 30 s.
func (p *controllerProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// metrics scrapes the controller's /metrics into name{labels} → value.
func (p *controllerProc) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// procStatus reads VmRSS and VmHWM (peak RSS) of pid, in bytes.
func procStatus(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			hwm = kb * 1024
		}
	}
	return rss, hwm, nil
}

// procCPU reads the user+system CPU time of pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// Fields after the command (in parentheses, which may hold spaces).
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}
