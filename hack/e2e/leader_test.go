//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestLeaderElectionHandsOver runs two replicas with --leader-elect: exactly
// one works; when it is killed mid-removal, the other takes the Lease over
// and finishes the cleanup without creating a Job twice.
func TestLeaderElectionHandsOver(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	upgrade := uniqueName("hvst-upgrade")
	h := newTestHost(t, 2)
	serveRepo(t, h.listen(t, 8080))
	createRepo(t, ctx, upgrade, h, 8080)
	args := []string{"--remover-image", removerImage, "--leader-elect"}
	replicas := []*controllerProc{startController(t, "a", args...), startController(t, "b", args...)}

	var leader, standby *controllerProc
	waitFor(t, ctx, "one replica elected", 60*time.Second, func(context.Context) (bool, error) {
		for i, p := range replicas {
			if strings.Contains(p.log(), "Elected leader") {
				leader, standby = p, replicas[1-i]
				return true, nil
			}
		}
		return false, nil
	})
	createCompletedUpgrade(t, ctx, upgrade, "v1.4.2")
	setPodReady(t, ctx, cleanuptest.RepoPodName(upgrade), h, true)
	waitFor(t, ctx, "state Removing", 30*time.Second, func(ctx context.Context) (bool, error) {
		return upgradeAnnotations(t, ctx, upgrade)[cleanup.StateAnnotation] == string(cleanup.StateRemoving), nil
	})
	if strings.Contains(standby.log(), "Starting workers") {
		t.Fatal("the standby started workers while the leader was alive")
	}

	leader.kill()
	jobs := removalJobs(t, ctx, upgrade)
	if len(jobs) != len(nodeNames) {
		t.Fatalf("%d Jobs before the handover, want %d", len(jobs), len(nodeNames))
	}
	for _, n := range nodeNames {
		finishJob(t, ctx, jobs[n], report.Result{Removed: 3})
	}
	// The killed leader did not release the Lease: the standby waits for it
	// to expire (15 s), then finishes.
	waitFor(t, ctx, "the standby to finish the cleanup", 90*time.Second, func(ctx context.Context) (bool, error) {
		return upgradeAnnotations(t, ctx, upgrade)[cleanup.StateAnnotation] == string(cleanup.StateSucceeded), nil
	})
	if !strings.Contains(standby.log(), "Elected leader") {
		t.Error("the standby finished without being elected")
	}
	if again := removalJobs(t, ctx, upgrade); len(again) != len(nodeNames) {
		t.Errorf("%d Jobs after the handover, want still %d", len(again), len(nodeNames))
	}
	lease, err := env.kube.CoordinationV1().Leases(ns).Get(ctx, "upgrade-image-cleanup", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Lease held by %s", *lease.Spec.HolderIdentity)
}
