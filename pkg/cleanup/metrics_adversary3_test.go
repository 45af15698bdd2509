package cleanup_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Third adversarial round over the metrics.
//
// README, "Metrics": upgrade_image_cleanup_images_removed_total counts
// "images removed, one per node and image", and "Removal totals are counted
// once, when the final state is written"; "Troubleshooting": "To re-arm,
// remove the state annotation ... Finished Jobs count as they are: to run
// the removal on a node again, delete that node's Job first".
//
// Minimal input: one node; its Job fails (Failed, phase removal, nothing
// removed). The person follows the README: deletes the node's Job (and so
// its pod) and removes the state annotation. The new Job removes 5 images;
// the cleanup Succeeds.
//
// Expected: images_removed_total 5.
// Actual: 0: the removal that did remove images is never counted.
// Cause: memory.firstFinal keys the counted run by UID + RunIDAnnotation;
// a re-armed run keeps the run ID of the run before it ("" for the first),
// so its final state is taken for the earlier run's, already counted.
func TestAdversary3ReArmedRemovalIsNeverCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newRemovalFixture(t, 1, []string{"node-a"}, cleanuptest.WithRegistry(reg))
	f.SyncRemoval()
	f.FinishJob("node-a", false, report.Result{Failed: 1, FailedImages: []string{"docker.io/rancher/harvester:v1.4.2: locked"}})
	f.SyncRemoval()
	f.WantFailed(cleanup.PhaseRemoval)

	// What the README says to do to run the removal on the node again.
	ctx := t.Context()
	ns := f.Upgrade().GetNamespace()
	for _, j := range f.RemovalJobs() {
		if err := f.Kube.BatchV1().Jobs(ns).Delete(ctx, j.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		// Its pods go with it (kubectl's background propagation).
		pods, err := f.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: batchv1.JobNameLabel + "=" + j.Name})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pods.Items {
			if err := f.Kube.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.UpdateUpgrade(func(u *unstructured.Unstructured) {
		a := u.GetAnnotations()
		delete(a, cleanup.StateAnnotation)
		u.SetAnnotations(a)
	})
	f.SyncRemoval() // Planned
	f.SyncRemoval() // Removing: a new Job
	if len(f.RemovalJobs()) != 1 {
		t.Fatalf("setup: want a new Job on node-a; state %s", f.State())
	}
	f.FinishJob("node-a", true, report.Result{Removed: 5})
	f.SyncRemoval()
	if f.State() != cleanup.StateSucceeded {
		t.Fatalf("setup: state = %s (%s), want Succeeded", f.State(), f.Annotations()[cleanup.MessageAnnotation])
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_images_removed_total"); got != 5 {
		t.Errorf("images removed = %v after the re-armed removal removed 5, want 5", got)
	}
}
