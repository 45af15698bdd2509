//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestSingleNodeUpgradeWaitsForReady plays the single-node story on a real
// control plane: the upgrade completes while the repo pod is not Ready; the
// controller asks the repo nothing until the real EndpointSlice controller
// marks the endpoint Ready, then writes the plan and starts one removal Job
// per node; when both Jobs succeed the Upgrade reads Succeeded.
func TestSingleNodeUpgradeWaitsForReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	upgrade := uniqueName("hvst-upgrade")
	h := newTestHost(t, 1)
	r := serveRepo(t, h.listen(t, 8080))
	createRepo(t, ctx, upgrade, h, 8080)
	startController(t, "controller", "--remover-image", removerImage)
	createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")

	waitFor(t, ctx, "state WaitingForRepo", 30*time.Second, func(ctx context.Context) (bool, error) {
		return upgradeAnnotations(t, ctx, upgrade)[cleanup.StateAnnotation] == string(cleanup.StateWaitingForRepo), nil
	})
	if reqs := r.Requests(); len(reqs) != 0 {
		t.Fatalf("the repo got %d requests while its pod was not Ready: %+v", len(reqs), reqs)
	}

	cmName := cleanup.PlanConfigMapName(upgrade)
	// Watch from a cached list's resourceVersion, as an informer does: a
	// watch without one asks for a consistent read, which Debian's etcd 3.4
	// cannot confirm (the API server answers "Too large resource version").
	sel := metav1.ListOptions{FieldSelector: "metadata.name=" + cmName, ResourceVersion: "0"}
	list, err := env.kube.CoreV1().ConfigMaps(ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	sel.ResourceVersion = list.ResourceVersion
	w, err := env.kube.CoreV1().ConfigMaps(ns).Watch(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	readyAt := time.Now()
	setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
	var planAt time.Time
	for planAt.IsZero() {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatal("the ConfigMap watch closed before the plan appeared")
			}
			if ev.Type == watch.Error {
				t.Fatalf("ConfigMap watch: %+v", ev.Object)
			}
			if ev.Type == watch.Added {
				planAt = time.Now()
			}
		case <-ctx.Done():
			t.Fatal("no plan ConfigMap after the repo became Ready")
		}
	}

	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %+v, want the previous and the current list once each", reqs)
	}
	for _, q := range reqs {
		if q.At.Before(readyAt) {
			t.Errorf("request %s came before the pod was Ready", q.Path)
		}
	}
	wantPaths := []string{cleanup.ListPath("v1.4.2"), cleanup.ListPath(cleanup.CurrentVersion)}
	if got := []string{reqs[0].Path, reqs[1].Path}; !slices.Equal(got, wantPaths) {
		t.Errorf("paths = %v, want %v", got, wantPaths)
	}
	cm, err := env.kube.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	planned := strings.Fields(cm.Data[cleanup.PlanKey])
	current := readList(t, cleanup.CurrentVersion)
	if len(planned) == 0 {
		t.Fatal("the plan is empty")
	}
	for _, img := range planned {
		if slices.Contains(current, img) {
			t.Errorf("plan removes %s, which the current list still has", img)
		}
		if strings.Contains(img, "harvester-upgrade") || strings.Contains(img, "longhorn-engine") {
			t.Errorf("plan removes retained image %s", img)
		}
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].Name != upgrade {
		t.Errorf("owner references = %+v, want the Upgrade", cm.OwnerReferences)
	}
	waitFor(t, ctx, "state Removing", 10*time.Second, func(ctx context.Context) (bool, error) {
		return upgradeAnnotations(t, ctx, upgrade)[cleanup.StateAnnotation] == string(cleanup.StateRemoving), nil
	})
	jobs := removalJobs(t, ctx, upgrade)
	if len(jobs) != len(nodeNames) {
		t.Fatalf("%d removal Jobs, want one per node (%v)", len(jobs), nodeNames)
	}
	for _, n := range nodeNames {
		j := jobs[n]
		if j == nil {
			t.Fatalf("no Job on node %s", n)
		}
		if len(j.OwnerReferences) != 1 || j.OwnerReferences[0].Name != cmName {
			t.Errorf("Job %s owners = %+v, want the plan ConfigMap", j.Name, j.OwnerReferences)
		}
	}
	result := report.Result{Removed: len(planned), BytesReclaimed: 5e9, Skipped: map[report.Reason]int{report.ReasonInUse: 1}}
	for _, n := range nodeNames {
		finishJob(t, ctx, jobs[n], result)
	}
	waitFor(t, ctx, "state Succeeded", 30*time.Second, func(ctx context.Context) (bool, error) {
		return upgradeAnnotations(t, ctx, upgrade)[cleanup.StateAnnotation] == string(cleanup.StateSucceeded), nil
	})
	a := upgradeAnnotations(t, ctx, upgrade)
	if a[cleanup.HarvesterDoneAnnotation] != "true" {
		t.Errorf("Harvester's %s = %q, want \"true\"", cleanup.HarvesterDoneAnnotation, a[cleanup.HarvesterDoneAnnotation])
	}
	var s cleanup.Summary
	if err := json.Unmarshal([]byte(a[cleanup.SummaryAnnotation]), &s); err != nil {
		t.Fatalf("summary: %v", err)
	}
	if len(s.Nodes) != 2 || s.Total.Removed != 2*len(planned) || s.Total.Skipped[report.ReasonInUse] != 2 {
		t.Errorf("summary = %+v", s)
	}
	if again := removalJobs(t, ctx, upgrade); len(again) != len(nodeNames) {
		t.Errorf("%d Jobs after the run, want still %d", len(again), len(nodeNames))
	}
	// Measured, not asserted: timings belong in benchmarks (hack/bench).
	t.Logf("pod Ready written -> first repo request: %v; -> plan ConfigMap seen: %v; %d images planned",
		reqs[0].At.Sub(readyAt).Round(time.Millisecond), planAt.Sub(readyAt).Round(time.Millisecond), len(planned))
}
