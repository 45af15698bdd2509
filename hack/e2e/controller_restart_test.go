//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestControllerKilledMidRemoval: the controller is killed with SIGKILL
// while its removal Jobs run, and a new process takes over (no leader
// election: a plain restart, as after an OOM kill). The new process must
// pick up where the first stopped: no Job created twice, the plan neither
// fetched nor written again, and the Upgrade ends Succeeded with its summary.
func TestControllerKilledMidRemoval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	upgrade := uniqueName("hvst-upgrade")
	h := newTestHost(t, 12)
	r := serveRepo(t, h.listen(t, 8080))
	createRepo(t, ctx, upgrade, h, 8080)
	// Every Job and ConfigMap of the upgrade ever created, by UID, from
	// before the first controller starts to the end of the test.
	jobs := recordCreations(t, ctx, jobsGVR, informers.UpgradeLabel+"="+upgrade)
	plans := recordCreations(t, ctx, configMapsGVR, informers.UpgradeLabel+"="+upgrade)
	createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
	dumpOnFailure(t, upgrade, r.String)
	args := []string{"--remover-image", removerImage}
	first := startController(t, "first", args...)

	waitState(t, ctx, upgrade, cleanup.StateWaitingForRepo, 30*time.Second)
	readyAt := time.Now()
	setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
	waitState(t, ctx, upgrade, cleanup.StateRemoving, 30*time.Second)
	planBefore := checkOnePlan(t, ctx, upgrade, plans)
	before := checkJobsPerNode(t, ctx, upgrade)
	if n := len(r.Requests()); n != 2 {
		t.Fatalf("requests before the kill = %d, want the two lists once each: %+v", n, r.Requests())
	}

	first.kill()
	second := startController(t, "second", args...)
	waitFor(t, ctx, "the second controller to start its workers", 60*time.Second, func(context.Context) (bool, error) {
		return strings.Contains(second.log(), "Starting workers"), nil
	})

	// One Job at a time, so the second process shows it is the one
	// tracking them: the message counts the first finished Job.
	finishJob(t, ctx, before[nodeNames[0]], report.Result{Removed: 7})
	wantMsg := fmt.Sprintf("removing on %d nodes: 1 finished, %d running", len(nodeNames), len(nodeNames)-1)
	waitFor(t, ctx, "the second controller to count the first finished Job", 30*time.Second, func(ctx context.Context) (bool, error) {
		a, err := annotationsOf(ctx, upgrade)
		if err != nil {
			return false, nil
		}
		if s := a[cleanup.StateAnnotation]; s != string(cleanup.StateRemoving) {
			return false, fmt.Errorf("state %s (%s), want Removing", s, a[cleanup.MessageAnnotation])
		}
		// The count may be followed by where the plan came from
		// ("; plan written at completion"), which issue 14 added.
		msg := a[cleanup.MessageAnnotation]
		return msg == wantMsg || strings.HasPrefix(msg, wantMsg+"; "), nil
	})
	for _, n := range nodeNames[1:] {
		finishJob(t, ctx, before[n], report.Result{Removed: 7})
	}
	waitState(t, ctx, upgrade, cleanup.StateSucceeded, 30*time.Second)
	checkSucceeded(t, ctx, upgrade, 7)

	// No Job twice: the Jobs now are the Jobs before the kill, and no other
	// Job of the upgrade was ever created.
	after := removalJobs(t, ctx, upgrade)
	for _, n := range nodeNames {
		if after[n] == nil || after[n].UID != before[n].UID {
			t.Errorf("Job on node %s changed across the restart: before %s, after %v", n, before[n].UID, after[n])
		}
	}
	jobs.check(t)
	var wantJobs []string
	for _, j := range before {
		wantJobs = append(wantJobs, j.Name)
	}
	sort.Strings(wantJobs)
	gotJobs := jobs.names()
	sort.Strings(gotJobs)
	if !slices.Equal(gotJobs, wantJobs) {
		t.Errorf("Jobs ever created = %v, want exactly %v (one per node, once)", gotJobs, wantJobs)
	}
	// The plan once: same ConfigMap (UID), created once, not fetched again.
	planAfter := checkOnePlan(t, ctx, upgrade, plans)
	if planAfter.UID != planBefore.UID {
		t.Errorf("plan ConfigMap UID %s after the restart, %s before: it was written again", planAfter.UID, planBefore.UID)
	}
	if planAfter.Data[cleanup.PlanKey] != planBefore.Data[cleanup.PlanKey] {
		t.Error("the plan's images changed across the restart")
	}
	reqs := r.Requests()
	if len(reqs) != 2 {
		t.Errorf("requests in total = %d, want 2 (the second controller must not fetch again): %+v", len(reqs), reqs)
	}
	for i, q := range reqs {
		if q.At.Before(readyAt) {
			t.Errorf("request %d (%s) came before the pod was Ready", i+1, q.Path)
		}
	}
	if log := second.log(); strings.Contains(log, "Removal Job created") || strings.Contains(log, "Plan written") {
		t.Errorf("the second controller created a Job or wrote a plan; its log:\n%s", log)
	}
}
