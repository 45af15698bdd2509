//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestAPIServerKilledWhileWaiting: while the Upgrade waits for its repo, the
// kube-apiserver dies (SIGKILL) and comes back on the same port and etcd.
// The controller, never restarted, must recover through its watches alone:
// when the repo pod then becomes Ready it plans and starts the removal, and
// the repo gets no request before Ready.
func TestAPIServerKilledWhileWaiting(t *testing.T) {
	if _, err := os.Stat(filepath.Join(env.clusterDir, "kube-apiserver.cmd")); err != nil {
		t.Skipf("cannot restart the API server of %s: %v (bring the cluster up with hack/local-cluster up, which records its command line)", env.clusterDir, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	upgrade := uniqueName("hvst-upgrade")
	pod := cleanuptest.RepoPodName(upgrade)
	h := newTestHost(t, 11)
	r := serveRepo(t, h.listen(t, 8080))
	createRepo(t, ctx, upgrade, h, 8080)
	createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
	ctl := startController(t, "controller", "--remover-image", removerImage)
	waitState(t, ctx, upgrade, cleanup.StateWaitingForRepo, 30*time.Second)
	// Registered after the cleanups that need the API (deleting the repo,
	// the Upgrade, stopping the controller), so it runs before them: a test
	// that failed between kill and restart leaves a working cluster to the
	// next tests. Then the dump, which needs the API too.
	t.Cleanup(func() {
		if err := localCluster("start-apiserver"); err != nil {
			t.Errorf("bringing the API server back after the test: %v", err)
			return
		}
		// The clients' reflectors retry with a growing backoff (up to a
		// minute after restarts in a row), so kube-controller-manager may
		// still lag when this test ends. The next tests need it working.
		start := time.Now()
		if err := waitControlPlaneWorks(h); err != nil {
			t.Errorf("kube-controller-manager after the API server restart: %v", err)
			return
		}
		t.Logf("kube-controller-manager proven working (new slice, garbage collection) %v after the test", time.Since(start).Round(time.Millisecond))
	})
	dumpOnFailure(t, upgrade, r.String)

	killedAt := time.Now()
	if err := localCluster("kill-apiserver"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.kube.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{}); err == nil {
		t.Fatal("the API server still answers after kill-apiserver")
	}
	if err := localCluster("start-apiserver"); err != nil {
		t.Fatal(err)
	}
	down := time.Since(killedAt)
	select {
	case <-ctl.exited:
		t.Fatalf("the controller exited while the API server was down (code %d)", ctl.cmd.ProcessState.ExitCode())
	default:
	}
	if reqs := r.Requests(); len(reqs) != 0 {
		t.Fatalf("the repo got %d requests while its pod was not Ready: %+v", len(reqs), reqs)
	}
	if a := upgradeAnnotations(t, ctx, upgrade); a[cleanup.StateAnnotation] != string(cleanup.StateWaitingForRepo) {
		t.Fatalf("state after the restart = %q (%s), want still WaitingForRepo", a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation])
	}

	// From here on (the watch did not live through the restart): the plan
	// is created once.
	plans := recordCreations(t, ctx, configMapsGVR, informers.UpgradeLabel+"="+upgrade)

	readyAt := time.Now()
	// The test's own client may still hold the dead connection for a moment:
	// retry the write until the restarted API server takes it.
	var lastErr error
	waitFor(t, ctx, "the pod status write to reach the restarted API server", 30*time.Second, func(ctx context.Context) (bool, error) {
		lastErr = writePodReady(ctx, pod, h, true)
		return lastErr == nil, nil
	})
	// The real EndpointSlice controller must have reconnected too; if it
	// has not, the controller below has nothing to react to.
	waitFor(t, ctx, "kube-controller-manager to publish the endpoint Ready after the restart", 2*time.Minute, func(ctx context.Context) (bool, error) {
		s, err := sliceReadiness(ctx, upgrade)
		return err == nil && s == "ready", nil
	})
	sliceAt := time.Now()
	waitState(t, ctx, upgrade, cleanup.StateRemoving, 2*time.Minute)
	removingAt := time.Now()

	select {
	case <-ctl.exited:
		t.Fatal("the controller process exited; it should have recovered in place")
	default:
	}
	if n := strings.Count(ctl.log(), "Starting workers"); n != 1 {
		t.Errorf("the controller started its workers %d times, want once (same process, never restarted)", n)
	}
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %+v, want the previous and the current list once each", reqs)
	}
	for i, q := range reqs {
		if q.At.Before(readyAt) {
			t.Errorf("request %d (%s) at %s came before the pod was Ready (%s)", i+1, q.Path, q.At.Format(time.StampMicro), readyAt.Format(time.StampMicro))
		}
	}
	if want := []string{cleanup.ListPath("v1.4.2"), cleanup.ListPath(cleanup.CurrentVersion)}; reqs[0].Path != want[0] || reqs[1].Path != want[1] {
		t.Errorf("paths = %s, %s; want %v", reqs[0].Path, reqs[1].Path, want)
	}
	checkOnePlan(t, ctx, upgrade, plans)
	js := checkJobsPerNode(t, ctx, upgrade)
	for _, n := range nodeNames {
		finishJob(t, ctx, js[n], report.Result{Removed: 2})
	}
	waitState(t, ctx, upgrade, cleanup.StateSucceeded, 60*time.Second)
	checkSucceeded(t, ctx, upgrade, 2)
	if got := removalJobs(t, ctx, upgrade); len(got) != len(nodeNames) {
		t.Errorf("%d Jobs at the end, want %d", len(got), len(nodeNames))
	}
	if n := len(r.Requests()); n != 2 {
		t.Errorf("requests at the end = %d, want still 2", n)
	}
	t.Logf("API server down and back (kill to /readyz) in %v; pod Ready -> slice ready %v -> Removing %v; first request %v after Ready",
		down.Round(time.Millisecond), sliceAt.Sub(readyAt).Round(time.Millisecond),
		removingAt.Sub(sliceAt).Round(time.Millisecond), reqs[0].At.Sub(readyAt).Round(time.Millisecond))
}

// localCluster runs hack/local-cluster CMD on the tests' cluster folder.
func localCluster(cmd string) error {
	out, err := exec.Command(filepath.Join(env.root, "hack/local-cluster"), cmd, env.clusterDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("hack/local-cluster %s %s: %w\n%s", cmd, env.clusterDir, err, out)
	}
	return nil
}

// waitControlPlaneWorks shows that kube-controller-manager serves new
// objects: the EndpointSlice controller publishes a new Service's Ready
// endpoint (its Service, Pod and EndpointSlice informers are live), and the
// garbage collector deletes a ConfigMap's dependents, a ConfigMap and a Job
// (its monitors of both are live), as the removal Jobs and plans need.
func waitControlPlaneWorks(h *testHost) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	name := uniqueName("canary")
	sel := map[string]string{"e2e-canary": name}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}}},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: sel},
		Spec:       corev1.PodSpec{NodeName: nodeNames[0], Containers: []corev1.Container{{Name: "c", Image: "registry.invalid/canary:e2e"}}},
	}
	owner := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	defer func() {
		bg := context.Background()
		_ = env.kube.CoreV1().Services(ns).Delete(bg, name, metav1.DeleteOptions{})
		_ = env.kube.CoreV1().Pods(ns).Delete(bg, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		_ = env.kube.CoreV1().ConfigMaps(ns).Delete(bg, name, metav1.DeleteOptions{})
		_ = env.kube.CoreV1().ConfigMaps(ns).Delete(bg, name+"-dependent", metav1.DeleteOptions{})
		background := metav1.DeletePropagationBackground
		_ = env.kube.BatchV1().Jobs(ns).Delete(bg, name+"-dependent", metav1.DeleteOptions{PropagationPolicy: &background})
	}()
	// Create may meet the API server still settling: retry it.
	create := func(what string, f func(context.Context) error) error {
		var last error
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			last = f(ctx)
			return last == nil || apierrors.IsAlreadyExists(last), nil
		})
		if err != nil {
			return fmt.Errorf("create %s: %v (last error: %v)", what, err, last)
		}
		return nil
	}
	if err := create("Service", func(ctx context.Context) error {
		_, err := env.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := create("Pod", func(ctx context.Context) error {
		_, err := env.kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if err := writePodReady(ctx, name, h, true); err != nil {
		return err
	}
	var created *corev1.ConfigMap
	if err := create("ConfigMap", func(ctx context.Context) error {
		var err error
		created, err = env.kube.CoreV1().ConfigMaps(ns).Create(ctx, owner, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	ref := []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: name, UID: created.UID}}
	if _, err := env.kube.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-dependent", Namespace: ns, OwnerReferences: ref},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create dependent ConfigMap: %w", err)
	}
	if _, err := env.kube.BatchV1().Jobs(ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-dependent", Namespace: ns, OwnerReferences: ref},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "c", Image: "registry.invalid/canary:e2e"}},
		}}},
	}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create dependent Job: %w", err)
	}

	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := env.kube.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
		if err != nil {
			return false, nil
		}
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready != nil && *e.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("no Ready endpoint in a slice of a new Service: %w", err)
	}
	if err := env.kube.CoreV1().ConfigMaps(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete owner ConfigMap: %w", err)
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, cmErr := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, name+"-dependent", metav1.GetOptions{})
		_, jobErr := env.kube.BatchV1().Jobs(ns).Get(ctx, name+"-dependent", metav1.GetOptions{})
		return apierrors.IsNotFound(cmErr) && apierrors.IsNotFound(jobErr), nil
	})
	if err != nil {
		return fmt.Errorf("the garbage collector did not delete a deleted ConfigMap's dependents: %w", err)
	}
	return nil
}
