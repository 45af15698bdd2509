//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

const ns = "harvester-system"

// nodeNames are the cluster's nodes: Node objects only, no kubelet. The
// repo pod is bound to the first.
var nodeNames = []string{"node1", "node2"}

// removerImage is never pulled: no kubelet runs, the test plays the Jobs.
const removerImage = "registry.invalid/image-remover:e2e"

// installUpgradeCRD creates the Upgrade CRD from deploy/, the namespace
// and the nodes, and waits until Upgrades are served.
func installUpgradeCRD(ctx context.Context) error {
	return cleanuptest.PrepareCluster(ctx, env.kube, env.dynamic, filepath.Join("../..", cleanuptest.CRDPath), ns, nodeNames...)
}

// uniqueName gives each run its own objects, so a rerun against a kept
// cluster (E2E_KUBECONFIG) does not meet the last run's leftovers.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%s", prefix, rand.String(5))
}

// createRepo creates the repo Service and Pod as Harvester does; the Pod is
// bound to node1 and not Ready. No kubelet runs: the test writes its status.
func createRepo(t *testing.T, ctx context.Context, upgrade string, h *testHost, port int32) {
	t.Helper()
	svc := cleanuptest.RepoService(upgrade, port)
	if _, err := env.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Service: %v", err)
	}
	pod := cleanuptest.RepoPod(upgrade, nodeNames[0], port)
	if _, err := env.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Pod: %v", err)
	}
	t.Cleanup(func() {
		_ = env.kube.CoreV1().Services(ns).Delete(context.Background(), svc.Name, metav1.DeleteOptions{})
		_ = env.kube.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
	setPodReady(t, ctx, pod.Name, h, false)
}

// setPodReady writes the repo Pod's status as a kubelet would.
func setPodReady(t *testing.T, ctx context.Context, name string, h *testHost, ready bool) {
	t.Helper()
	pod, err := env.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status = h.PodStatus(ready)
	if _, err := env.kube.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update Pod status: %v", err)
	}
}

// createCompletedUpgrade creates an Upgrade from previous to v1.5.0 whose
// Completed condition is True, as at the end of Harvester's upgrade.
func createCompletedUpgrade(t *testing.T, ctx context.Context, name, previous string) {
	t.Helper()
	createUpgrade(t, ctx, cleanuptest.Upgrade(name).Namespace(ns).PreviousVersion(previous))
}

// createUpgrade creates w's Upgrade, deleted when the test ends, and writes
// its status: the API server keeps no status on create.
func createUpgrade(t *testing.T, ctx context.Context, w *cleanuptest.UpgradeWrapper) {
	t.Helper()
	u := w.Obj()
	res := env.dynamic.Resource(informers.UpgradeGVR).Namespace(u.GetNamespace())
	created, err := res.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Upgrade: %v", err)
	}
	t.Cleanup(func() { _ = res.Delete(context.Background(), u.GetName(), metav1.DeleteOptions{}) })
	created.Object["status"] = u.Object["status"]
	if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("write Upgrade %s's status: %v", u.GetName(), err)
	}
}

func upgradeAnnotations(t *testing.T, ctx context.Context, name string) map[string]string {
	t.Helper()
	u, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get Upgrade: %v", err)
	}
	return u.GetAnnotations()
}

// controllerProc is a controller process the test started.
type controllerProc struct {
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	killed  bool // by the test, with SIGKILL
}

// log returns what the process has logged so far.
func (p *controllerProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// servingAddr returns the address the process logged it serves flag
// (--metrics-addr, --health-addr) on, so port 0 works; "" until logged.
func (p *controllerProc) servingAddr(flag string) string {
	addr := ""
	for _, line := range strings.Split(p.log(), "\n") {
		var entry struct{ Msg, Flag, Addr string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "Serving" && entry.Flag == flag {
			addr = entry.Addr
		}
	}
	return addr
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would.
func (p *controllerProc) kill() {
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// startController runs the built binary against the cluster, as the
// cluster's admin, until the test ends; name tells several apart.
func startController(t *testing.T, name string, args ...string) *controllerProc {
	t.Helper()
	return startControllerAs(t, name, env.kubeconfig, nil, args...)
}

// startControllerAs is startController with another kubeconfig (another
// identity) and extra environment variables (NAME=value).
func startControllerAs(t *testing.T, name, kubeconfig string, environ []string, args ...string) *controllerProc {
	t.Helper()
	p := &controllerProc{logPath: filepath.Join(env.workdir, t.Name()+"-"+name+".log"), exited: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(env.controller, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	p.cmd.Env = append(os.Environ(), environ...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start controller: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			// SIGTERM is a clean stop: exit code 0.
			if code := p.cmd.ProcessState.ExitCode(); !p.killed && code != 0 {
				t.Errorf("controller %s exited %d on SIGTERM, want 0", name, code)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("controller %s ignored SIGTERM for 30s; killing it", name)
			p.kill()
		}
		_ = logFile.Close()
		if t.Failed() {
			t.Logf("controller %s log:\n%s", name, p.log())
		}
	})
	return p
}

func waitFor(t *testing.T, ctx context.Context, what string, timeout time.Duration, cond func(context.Context) (bool, error)) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// finishJob plays the Job controller and the kubelet for one removal Job: a
// pod from the Job's template whose remover container terminated with r as
// its message, then the Job's status as the Job controller writes it.
func finishJob(t *testing.T, ctx context.Context, j *batchv1.Job, r report.Result) {
	t.Helper()
	msg, err := cleanuptest.RemoverMessage(j, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := cleanuptest.FinishJob(ctx, env.kube, j, true, msg); err != nil {
		t.Fatal(err)
	}
}

// removalJobs lists an upgrade's removal Jobs by node.
func removalJobs(t *testing.T, ctx context.Context, upgrade string) map[string]*batchv1.Job {
	t.Helper()
	jobs, err := cleanuptest.RemovalJobs(ctx, env.kube, ns, upgrade)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}
