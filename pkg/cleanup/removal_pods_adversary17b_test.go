package cleanup_test

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestANodeReadsOnlyItsOwnJobsPods holds the README's "**The result names
// its plan.**": "a pod that is not our remover, or a remover given another
// plan, cannot pass its counts off as this plan's", and the Permissions
// table's "read each finished Job's result from its pod's termination
// message" (runPods: "nodeSummary picks each Job's own among them").
//
// podResult takes the Job's pods to be those its spec.selector matches,
// and never asks whether the Job controls them (their controller owner
// reference). The removal Job policy leaves spec.selector and
// manualSelector free, so the controller's token can create a Job for
// node-a whose selector is just the run's labels: every pod of the run
// then "belongs" to it, and the newest one with a message speaks for it.
//
// Minimal input: node-a's Job with selector {upgrade, upgradeComponent}
// (as a manualSelector Job has it); its own pod (older) says the remover
// acted on another plan; node-b's genuine pod (newer) reports this plan.
//
// Now: node-a counts as succeeded with node-b's result, so the cleanup is
// Succeeded and node-b's figures are counted twice; node-a's own result,
// about another plan, is never read.
func TestANodeReadsOnlyItsOwnJobsPods(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.SyncRemoval()
	ctx, kube, ns := f.Ctx, f.Kube, cleanuptest.Namespace
	jobs := f.RemovalJobs()
	ja, jb := jobs["node-a"].DeepCopy(), jobs["node-b"].DeepCopy()
	ja.UID, jb.UID = "uid-job-a", "uid-job-b"
	ja.Spec.ManualSelector = ptr.To(true)
	ja.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{
		informers.UpgradeLabel: testUpgrade, informers.UpgradeComponentLabel: cleanup.RemovalComponent,
	}}
	var err error
	if ja, err = kube.BatchV1().Jobs(ns).Update(ctx, ja, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if jb, err = kube.BatchV1().Jobs(ns).Update(ctx, jb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	other := report.Result{Removed: 40, BytesReclaimed: 1 << 30, PlanDigest: "sha256:" + strings.Repeat("ab", 32)}
	otherMsg, err := other.TerminationMessage()
	if err != nil {
		t.Fatal(err)
	}
	genuineMsg, err := cleanuptest.RemoverMessage(jb, nodeResult)
	if err != nil {
		t.Fatal(err)
	}
	t0 := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	for _, p := range []struct {
		j   *batchv1.Job
		msg string
		at  metav1.Time
	}{
		{ja, string(otherMsg), t0},
		{jb, genuineMsg, metav1.NewTime(t0.Add(time.Minute))},
	} {
		pod := cleanuptest.JobPod(p.j, true, p.msg, p.at)
		pod.CreationTimestamp = p.at
		pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: p.j.Name, UID: p.j.UID, Controller: ptr.To(true)}}
		status := pod.Status
		created, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		created.Status = status
		if _, err := kube.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		j := p.j.DeepCopy()
		j.Status = cleanuptest.FinishedJobStatus(true, p.at)
		if _, err := kube.BatchV1().Jobs(ns).UpdateStatus(ctx, j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	f.SyncRemoval()

	if s := f.State(); s != cleanup.StateFailed {
		t.Errorf("state = %s, want Failed: node-a's own pod reports another plan (%s)", s, f.Annotations()[cleanup.MessageAnnotation])
	}
	for _, n := range f.Summary().Nodes {
		if n.Node == "node-a" && (n.Outcome != cleanup.NodeFailed || n.Result != nil && n.Result.Removed == nodeResult.Removed) {
			t.Errorf("node-a = {outcome %s, message %q, result %+v}: it was given node-b's pod's result, want its own Job's (another plan: failed)", n.Outcome, n.Message, n.Result)
		}
	}
}
