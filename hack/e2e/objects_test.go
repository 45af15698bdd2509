//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

const ns = "harvester-system"

// nodeNames are the cluster's nodes: Node objects only, no kubelet. The
// repo pod is bound to the first.
var nodeNames = []string{"node1", "node2"}

// removerImage is never pulled: no kubelet runs, the test plays the Jobs.
const removerImage = "registry.invalid/image-remover:e2e"

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installUpgradeCRD creates the Upgrade CRD from deploy/ and waits until it
// is served.
func installUpgradeCRD(ctx context.Context) error {
	// The CRD operators install on clusters without Harvester.
	f, err := os.Open("../../deploy/crd/crd-upgrades.yaml")
	if err != nil {
		return err
	}
	defer f.Close()
	crd := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&crd.Object); err != nil {
		return fmt.Errorf("decode deploy/crd/crd-upgrades.yaml: %w", err)
	}
	_, err = env.dynamic.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Upgrade CRD: %w", err)
	}
	if _, err := env.kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace: %w", err)
	}
	for _, name := range nodeNames {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"harvesterhci.io/managed": "true"}}}
		if _, err := env.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node: %w", err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
}

// uniqueName gives each run its own objects, so a rerun against a kept
// cluster (E2E_KUBECONFIG) does not meet the last run's leftovers.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%s", prefix, rand.String(5))
}

func repoLabels(upgrade string) map[string]string {
	return map[string]string{informers.UpgradeLabel: upgrade, informers.UpgradeComponentLabel: "repo"}
}

// createRepo creates the repo Service and Pod as Harvester does; the Pod is
// bound to node1 and not Ready. No kubelet runs: the test writes its status.
func createRepo(t *testing.T, ctx context.Context, upgrade string, h *testHost, port int32) {
	t.Helper()
	svcLabels := repoLabels(upgrade)
	svcLabels["harvesterhci.io/creator"] = "harvester"
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: informers.RepoServicePrefix + upgrade, Namespace: ns, Labels: svcLabels},
		Spec: corev1.ServiceSpec{
			Selector: repoLabels(upgrade),
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(port), Protocol: corev1.ProtocolTCP}},
		},
	}
	if _, err := env.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Service: %v", err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "upgrade-repo-" + upgrade + "-7d9f8", Namespace: ns, Labels: repoLabels(upgrade)},
		Spec: corev1.PodSpec{
			NodeName:   "node1",
			Containers: []corev1.Container{{Name: "repo", Image: "registry.invalid/repo:e2e", Ports: []corev1.ContainerPort{{ContainerPort: port}}}},
		},
	}
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
	res := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns)
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "harvesterhci.io/v1beta1", "kind": "Upgrade",
		"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{cleanup.LatestUpgradeLabel: "true"}},
		"spec":     map[string]any{"version": "v1.5.0"},
	}}
	created, err := res.Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Upgrade: %v", err)
	}
	t.Cleanup(func() { _ = res.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	created.Object["status"] = map[string]any{
		"previousVersion": previous,
		"conditions":      []any{map[string]any{"type": "Completed", "status": "True"}},
	}
	if _, err := res.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("complete Upgrade: %v", err)
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

// kill ends the process with SIGKILL, as a crash or an OOM kill would.
func (p *controllerProc) kill() {
	p.killed = true
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// startController runs the built binary against the cluster until the test
// ends; name tells several apart.
func startController(t *testing.T, name string, args ...string) *controllerProc {
	t.Helper()
	p := &controllerProc{logPath: filepath.Join(env.workdir, t.Name()+"-"+name+".log"), exited: make(chan struct{})}
	if err := os.MkdirAll(filepath.Dir(p.logPath), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(env.controller, append([]string{"--kubeconfig", env.kubeconfig}, args...)...)
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
func finishJob(t *testing.T, ctx context.Context, j *batchv1.Job, r remover.Result) {
	t.Helper()
	msg, err := r.TerminationMessage()
	if err != nil {
		t.Fatal(err)
	}
	// The Job controller labels pods from the template, which the API server
	// gave the Job's controller-uid selector.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: j.Name + "-x1", Namespace: ns, Labels: j.Spec.Template.Labels},
		Spec:       *j.Spec.Template.Spec.DeepCopy(),
	}
	created, err := env.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod of job %s: %v", j.Name, err)
	}
	now := metav1.Now()
	created.Status = corev1.PodStatus{
		Phase: corev1.PodSucceeded,
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: j.Spec.Template.Spec.Containers[0].Name, Image: removerImage, ImageID: "sha256:0000",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 0, Reason: "Completed", Message: string(msg), StartedAt: now, FinishedAt: now,
			}},
		}},
	}
	if _, err := env.kube.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("write pod status of job %s: %v", j.Name, err)
	}
	j = j.DeepCopy()
	j.Status = batchv1.JobStatus{
		StartTime: &now, CompletionTime: &now, Succeeded: 1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
		},
	}
	if _, err := env.kube.BatchV1().Jobs(ns).UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("write status of job %s: %v", j.Name, err)
	}
}

// removalJobs lists an upgrade's removal Jobs by node.
func removalJobs(t *testing.T, ctx context.Context, upgrade string) map[string]*batchv1.Job {
	t.Helper()
	list, err := env.kube.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: informers.UpgradeLabel + "=" + upgrade})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*batchv1.Job{}
	for i := range list.Items {
		j := &list.Items[i]
		if _, dup := out[j.Spec.Template.Spec.NodeName]; dup {
			t.Errorf("two Jobs on node %s", j.Spec.Template.Spec.NodeName)
		}
		out[j.Spec.Template.Spec.NodeName] = j
	}
	return out
}
