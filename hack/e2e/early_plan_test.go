//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"maps"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// TestPlanEarlyRemoveWithoutRepo is issue 14's acceptance test of early
// planning, on a real control plane. While the upgrade runs (latest,
// previousVersion set, not Completed) and its repo is Ready, the controller
// fetches both lists once, writes the plan and records Planned, and starts
// no Job. The repo then goes away (server stopped, endpoint not ready), as
// a single node's repo does when the upgrade ends. When the Upgrade turns
// Completed, the written plan starts one Job per target node, and nothing
// is asked of the repo: it has had exactly the two list requests of the
// plan.
func TestPlanEarlyRemoveWithoutRepo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	upgrade := uniqueName("hvst-upgrade")
	pod := cleanuptest.RepoPodName(upgrade)
	// A third managed node, so one Job per node means more than the
	// cluster's two, and one the selector leaves out.
	extra, unmanaged := uniqueName("node"), uniqueName("node-unmanaged")
	createNode(t, ctx, extra, true)
	createNode(t, ctx, unmanaged, false)
	targets := slices.Sorted(slices.Values(append(slices.Clone(nodeNames), extra)))

	h := newTestHost(t, 14)
	r := serveRepo(t, h.listen(t, 8080))
	createRepo(t, ctx, upgrade, h, 8080)
	plans := recordCreations(t, ctx, configMapsGVR, informers.UpgradeLabel+"="+upgrade)
	jobs := recordCreations(t, ctx, jobsGVR, informers.UpgradeLabel+"="+upgrade)
	createRunningUpgrade(t, ctx, upgrade, "v1.4.2")
	dumpCleanupObjectsOnFailure(t, upgrade)
	// -v 2 logs each decision, so the test can tell when the controller
	// has acted on its own Planned state.
	ctl := startController(t, "controller", "--remover-image", removerImage, "--metrics-addr", "127.0.0.1:0", "-v", "2")

	// 1. The repo is Ready while the upgrade runs: the plan is written,
	// and no Job is started.
	readyAt := time.Now()
	setPodReady(t, ctx, pod, h, true)
	waitFor(t, ctx, "the plan ConfigMap", 30*time.Second, func(context.Context) (bool, error) {
		return len(plans.names()) > 0, nil
	})
	planSeenAt := time.Now()
	assertNoJobs(t, ctx, upgrade, jobs, "when the plan was written")

	a := awaitCleanupState(t, ctx, upgrade, cleanup.StatePlanned, 30*time.Second)
	const earlyMsg = "while the upgrade ran; removal starts when it completes, without the repo"
	if msg := a[cleanup.MessageAnnotation]; !strings.Contains(msg, earlyMsg) {
		t.Errorf("Planned message = %q, want it to say %q", msg, earlyMsg)
	}
	cm := checkOnePlan(t, ctx, upgrade, plans)
	if cm.Annotations[cleanup.PlannedEarlyAnnotation] != "true" {
		t.Errorf("plan annotation %s = %q, want \"true\"", cleanup.PlannedEarlyAnnotation, cm.Annotations[cleanup.PlannedEarlyAnnotation])
	}
	if got, want := a[cleanup.PlanDigestAnnotation], cm.Annotations[cleanup.PlanDigestAnnotation]; got != want {
		t.Errorf("Upgrade's plan digest = %q, the plan's %q", got, want)
	}
	waitEvent(t, ctx, upgrade, "ImageCleanup"+string(cleanup.StatePlanned))
	// The controller has synced the Upgrade as Planned (its own patch came
	// back through its informer) and decided to wait: still no Job. A Job
	// ends the wait at once, to fail with what was created.
	const settledWhy = "planned while the upgrade runs; removal starts when it completes"
	waitFor(t, ctx, "the controller to act on the Planned state", 30*time.Second, func(context.Context) (bool, error) {
		return decisions(ctl, upgrade, settledWhy) > 0 || len(jobs.names()) > 0, nil
	})
	assertNoJobs(t, ctx, upgrade, jobs, "after the controller synced the Planned Upgrade")

	reqs := r.Requests()
	wantPaths := []string{cleanup.ListPath("v1.4.2"), cleanup.ListPath(cleanup.CurrentVersion)}
	if len(reqs) != 2 || reqs[0].Path != wantPaths[0] || reqs[1].Path != wantPaths[1] {
		t.Fatalf("requests to the repo = %s; want %v, once each", r, wantPaths)
	}

	// 2. The repo goes away: its server stops and its pod goes not Ready.
	// The port stays open only to count: a connection is closed unanswered,
	// as a dead repo would fail it, so a request the controller still
	// tried would show.
	if err := r.Close(); err != nil {
		t.Fatalf("stop the repo: %v", err)
	}
	dialed := countConnections(h.listen(t, 8080))
	adds, err := controllerMetric(ctx, ctl, queueAdds)
	if err != nil {
		t.Fatal(err)
	}
	setPodReady(t, ctx, pod, h, false)
	waitFor(t, ctx, "no Ready endpoint in the repo's EndpointSlice", 30*time.Second, func(ctx context.Context) (bool, error) {
		s, err := sliceReadiness(ctx, upgrade)
		return s != "ready", err
	})
	// The gate enqueues the upgrade when its cache sees the change: from
	// then on the controller knows the repo is gone.
	waitFor(t, ctx, "the controller to see the repo go away", 30*time.Second, func(ctx context.Context) (bool, error) {
		now, err := controllerMetric(ctx, ctl, queueAdds)
		return err == nil && now > adds, nil
	})

	// 3. The upgrade completes: the stored plan runs on every target node,
	// with no request to the repo.
	completedAt := time.Now()
	completeUpgrade(t, ctx, upgrade)
	waitFor(t, ctx, "one removal Job per target node", 30*time.Second, func(ctx context.Context) (bool, error) {
		js, err := cleanuptest.RemovalJobs(ctx, env.kube, ns, upgrade)
		return len(js) >= len(targets), err
	})
	a = awaitCleanupState(t, ctx, upgrade, cleanup.StateRemoving, 30*time.Second)
	const noRepoMsg = "plan written while the upgrade ran: no request to the repo at completion"
	if msg := a[cleanup.MessageAnnotation]; !strings.Contains(msg, noRepoMsg) {
		t.Errorf("Removing message = %q, want it to say %q", msg, noRepoMsg)
	}
	js := removalJobs(t, ctx, upgrade)
	if got := slices.Sorted(maps.Keys(js)); !slices.Equal(got, targets) {
		t.Errorf("removal Jobs on nodes %v, want one on each of %v (not on %s, which the selector leaves out)", got, targets, unmanaged)
	}
	for n, j := range js {
		if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Name != cm.Name {
			t.Errorf("Job %s on %s owners = %+v, want the plan ConfigMap %s", j.Name, n, j.OwnerReferences, cm.Name)
		}
	}
	jobs.check(t)
	if got := jobs.names(); len(got) != len(targets) {
		t.Errorf("Jobs created = %v, want one per target node %v", got, targets)
	}
	checkOnePlan(t, ctx, upgrade, plans)

	if reqs := r.Requests(); len(reqs) != 2 {
		t.Errorf("requests to the repo's server = %s; want only the plan's 2", r)
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("%d connections to the repo's address after it went away, want 0", n)
	}
	// The controller's own count agrees: two list fetches in all, both
	// the plan's.
	for _, res := range []string{cleanup.FetchSuccess, cleanup.FetchNotFound, cleanup.FetchHTTPError, cleanup.FetchInvalid, cleanup.FetchNetworkError} {
		want := 0.0
		if res == cleanup.FetchSuccess {
			want = 2
		}
		got, err := controllerMetric(ctx, ctl, `upgrade_image_cleanup_list_fetches_total{result="`+res+`"}`)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("list fetches with result %s = %v, want %v", res, got, want)
		}
	}
	// Measured, not asserted: timings belong in benchmarks (hack/bench).
	t.Logf("pod Ready -> plan seen: %v; Completed written -> Removing seen: %v; %s images planned",
		planSeenAt.Sub(readyAt).Round(time.Millisecond), time.Since(completedAt).Round(time.Millisecond), cm.Annotations[cleanup.PlanCountAnnotation])
}

// createNode creates a Node for this test only, managed (the default node
// selector picks it) or not; t.Cleanup deletes it so that later tests see
// the cluster's nodes only.
func createNode(t *testing.T, ctx context.Context, name string, managed bool) {
	t.Helper()
	n := cleanuptest.Node(name)
	if !managed {
		n.Labels = nil
	}
	if _, err := env.kube.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Node %s: %v", name, err)
	}
	t.Cleanup(func() {
		err := env.kube.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete Node %s: %v", name, err)
		}
	})
}

// createRunningUpgrade creates an Upgrade from previous to v1.5.0, labelled
// latest, whose Completed condition is False: Harvester's Upgrade once it
// has recorded the version it upgrades from, while the upgrade runs.
func createRunningUpgrade(t *testing.T, ctx context.Context, name, previous string) {
	t.Helper()
	createUpgrade(t, ctx, cleanuptest.Upgrade(name).Namespace(ns).PreviousVersion(previous).Completed(false))
}

// completeUpgrade turns the Upgrade's Completed condition True through the
// status subresource, as Harvester does at the end of the upgrade.
func completeUpgrade(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	res := env.dynamic.Resource(informers.UpgradeGVR).Namespace(ns)
	// The controller patches the same object's annotations.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		u, err := res.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, err := unstructured.NestedSlice(u.Object, "status", "conditions")
		if err != nil {
			return err
		}
		found := false
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Completed" {
				m["status"], found = "True", true
			}
		}
		if !found {
			conds = append(conds, map[string]any{"type": "Completed", "status": "True"})
		}
		if err := unstructured.SetNestedSlice(u.Object, conds, "status", "conditions"); err != nil {
			return err
		}
		_, err = res.UpdateStatus(ctx, u, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("complete Upgrade: %v", err)
	}
}

// assertNoJobs fails the test if the upgrade has, or ever had since the
// recorder started, a removal Job.
func assertNoJobs(t *testing.T, ctx context.Context, upgrade string, jobs *creations, when string) {
	t.Helper()
	jobs.check(t)
	if got := jobs.names(); len(got) != 0 {
		t.Fatalf("Jobs created %s: %v, want none before the upgrade completes", when, got)
	}
	if js := removalJobs(t, ctx, upgrade); len(js) != 0 {
		t.Fatalf("%d removal Jobs %s, want none before the upgrade completes", len(js), when)
	}
}

// waitEvent waits for an Event of reason on the Upgrade.
func waitEvent(t *testing.T, ctx context.Context, upgrade, reason string) {
	t.Helper()
	waitFor(t, ctx, "Event "+reason, 30*time.Second, func(ctx context.Context) (bool, error) {
		evs, err := env.kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + upgrade})
		if err != nil {
			return false, err
		}
		return slices.ContainsFunc(evs.Items, func(e corev1.Event) bool { return e.Reason == reason }), nil
	})
}

// decisions counts the controller's "Nothing to do" log lines (logged at
// -v 2) for upgrade whose reason contains why.
func decisions(p *controllerProc, upgrade, why string) int {
	n := 0
	for _, line := range strings.Split(p.log(), "\n") {
		var entry struct{ Msg, Why, Upgrade string }
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "Nothing to do" &&
			entry.Upgrade == ns+"/"+upgrade && strings.Contains(entry.Why, why) {
			n++
		}
	}
	return n
}

// countConnections accepts connections on l until it is closed, closing
// each at once, and counts them.
func countConnections(l net.Listener) *atomic.Int64 {
	var n atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed when the test ends
			}
			n.Add(1)
			_ = c.Close()
		}
	}()
	return &n
}
