package cleanup_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Tests for behaviours a mutation review found unguarded: each fails when
// the line it names is broken.

// A node being deleted gets no Job and is not waited for.
func TestNodeBeingDeletedGetsNoJob(t *testing.T) {
	leaving := cleanuptest.Node("node-b")
	leaving.DeletionTimestamp = &metav1.Time{Time: cleanuptest.ClockStart}
	// The finalizer keeps the object, with its deletionTimestamp, in the API.
	leaving.Finalizers = []string{"wrangler.cattle.io/node"}
	f := newRemovalFixture(t, 1, []string{"node-a"}, leaving)
	f.SyncRemoval()
	if jobs := f.RemovalJobs(); len(jobs) != 1 || jobs["node-a"] == nil {
		t.Fatalf("jobs by node = %v, want one on node-a only", slices.Collect(maps.Keys(jobs)))
	}
	f.FinishJob("node-a", true, nodeResult)
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StateSucceeded {
		t.Fatalf("state = %s (%s), want Succeeded: the node being deleted is not waited for", got, f.Annotations()[cleanup.MessageAnnotation])
	}
	if s := f.Summary(); len(s.Nodes) != 1 || s.Nodes[0].Node != "node-a" {
		t.Errorf("summary nodes = %+v, want node-a alone", s.Nodes)
	}
}

// A node whose labels change to match the node selector while a removal
// runs brings the upgrade back, and its next sync gives the node a Job. The
// Node informer is a host's shared one over every node: the relabelled node
// is then an update of a cached node (an informer filtered by the selector
// would see it added).
func TestNodeRelabelledIntoSelectorMidRun(t *testing.T) {
	sel := cleanup.DefaultRemovalOptions().NodeSelector
	u, cm := plannedUpgrade(t, map[string]string{cleanup.StateAnnotation: string(cleanup.StateRemoving)})
	other := cleanuptest.Node("node-b")
	other.Labels = map[string]string{"harvesterhci.io/managed": "false"}
	if sel.Matches(labels.Set(other.Labels)) {
		t.Fatalf("node-b's labels %v already match %s", other.Labels, sel)
	}
	// Removal in progress: node-a's Job runs.
	f := newFixture(t, []runtime.Object{u, repoSlice(true).Obj(), cm,
		cleanuptest.Node("node-a"), other, cleanuptest.RemovalJob(testUpgrade, "node-a")},
		cleanuptest.WithRemoval(1), cleanuptest.WithSharedInformers())
	// Start returned once every handler had seen the initial lists: what
	// they queued is all there is.
	for f.Controller.QueueLen() > 0 {
		f.Controller.TakeNextKey()
	}

	n, err := f.Kube.CoreV1().Nodes().Get(f.Ctx, "node-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Labels = cleanuptest.Node("node-b").Labels
	if !sel.Matches(labels.Set(n.Labels)) {
		t.Fatalf("node-b's new labels %v do not match %s", n.Labels, sel)
	}
	if _, err := f.Kube.CoreV1().Nodes().Update(f.Ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.WaitFor("the node's update to enqueue the upgrade", func() bool { return f.Controller.QueueLen() > 0 })
	if key, _ := f.Controller.TakeNextKey(); key != testKey {
		t.Fatalf("queued %v, want %v", key, testKey)
	}
	f.SyncRemoval()
	if f.RemovalJobs()["node-b"] == nil || f.State() != cleanup.StateRemoving {
		t.Fatalf("state %s, jobs %v: the relabelled node must get a Job", f.State(), slices.Collect(maps.Keys(f.RemovalJobs())))
	}
}

// A cache that still shows Removing makes the final write twice (a fake
// accepts both; here the API keeps showing Removing, so every sync makes
// it): the removal totals count once.
func TestRemovalTotalsCountOnceWhenTheFinalWriteRepeats(t *testing.T) {
	reg := prometheus.NewRegistry()
	var finalWrites atomic.Int32
	succeeded := `"` + cleanup.StateAnnotation + `":"` + string(cleanup.StateSucceeded) + `"`
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"}, cleanuptest.WithRegistry(reg),
		cleanuptest.WithDynamicReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if strings.Contains(string(a.(clienttesting.PatchAction).GetPatch()), succeeded) {
				finalWrites.Add(1)
				return true, nil, nil // accepted, and the stored Upgrade left as it was
			}
			return false, nil, nil
		}))
	f.SyncRemoval()
	f.FinishJob("node-a", true, nodeResult)
	f.FinishJob("node-b", true, report.Result{Removed: 1, BytesReclaimed: 1e8, Skipped: map[report.Reason]int{report.ReasonPinned: 1}})
	f.SyncRemoval()
	f.SyncRemoval()
	if n := finalWrites.Load(); n != 2 {
		t.Fatalf("final writes = %d, want 2: the second sync must see Removing again", n)
	}
	wantTwoNodeTotals(t, reg)
}

// A plan that another writer stored first (create answered AlreadyExists)
// stands, and is not counted as planned by this controller: it did not
// write it.
func TestPlanAlreadyWrittenIsNotCountedAgain(t *testing.T) {
	reg := prometheus.NewRegistry()
	var raced atomic.Bool
	writtenFirst := cleanuptest.ConfigOption(func(c *cleanup.Config) {
		kube := c.KubeClient.(*kubefake.Clientset)
		kube.PrependReactor("create", "configmaps", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if raced.Swap(true) {
				return false, nil, nil
			}
			obj := a.(clienttesting.CreateAction).GetObject()
			if err := kube.Tracker().Create(a.GetResource(), obj, a.GetNamespace()); err != nil {
				return true, nil, err
			}
			name := obj.(*corev1.ConfigMap).Name
			return true, nil, apierrors.NewAlreadyExists(a.GetResource().GroupResource(), name)
		})
	})
	f := newFixture(t, objects(upgrade(), true), cleanuptest.WithRegistry(reg), writtenFirst)
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if !raced.Load() || f.Creates("configmaps") != 1 {
		t.Fatalf("raced %v, creates %d: want the one create answered AlreadyExists", raced.Load(), f.Creates("configmaps"))
	}
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %s (%s), want Planned from the plan already written", got, f.Annotations()[cleanup.MessageAnnotation])
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_list_fetches_total", "result", cleanup.FetchSuccess); got != 2 {
		t.Errorf("successful fetches = %v, want 2", got)
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_images_planned_total"); got != 0 {
		t.Errorf("images planned = %v, want 0: the plan's writer counted it, not this controller", got)
	}
}

// A state that does not change is not written again: syncs of a removal
// whose Jobs still run patch nothing and emit no Event after the first.
// (Under the DryRun executor a Planned upgrade never reaches the write: the
// executor reports no state.)
func TestUnchangedStateIsNotRewritten(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.SyncRemoval()
	if got := f.Patches(); !slices.Equal(got, []cleanup.State{cleanup.StateRemoving}) {
		t.Fatalf("patches = %v, want one to Removing", got)
	}
	if evs := f.Events(); len(evs) != 1 || !strings.Contains(evs[0], "ImageCleanupRemoving") {
		t.Fatalf("events = %q, want one ImageCleanupRemoving", evs)
	}
	for range 3 {
		f.SyncRemoval()
	}
	if got := f.Patches(); len(got) != 1 {
		t.Errorf("patches = %v after 3 more syncs with the Jobs running, want the first only", got)
	}
	if evs := f.Events(); len(evs) != 0 {
		t.Errorf("events = %q after 3 more syncs, want none", evs)
	}
}

// A re-created Upgrade of the same name, restored already Failed in phase
// fetch, does not inherit the pin of the deleted one's fetch failure: it is
// pinned to the Ready phase it is first seen in, and the next one re-arms
// it. (The gate forgets the deleted Upgrade too, so its Ready phases count
// from 0 again: a pin left from phase 1 would hold through the next one.)
func TestRecreatedUpgradeDoesNotInheritTheFailurePin(t *testing.T) {
	f := newFixture(t, objects(upgrade(), false))
	f.WaitRepoReady(false)
	f.SetRepoReady(true)
	if e := f.RepoEpoch(); e != 1 {
		t.Fatalf("epoch = %d, want 1", e)
	}
	f.Repo.OnFetch(failEveryFetch(errors.New("connection reset by peer")))
	for f.State() != cleanup.StateFailed {
		if n := len(f.Repo.Calls()); n > f.Options.MaxRetries+1 {
			t.Fatalf("%d fetches and still not Failed", n)
		}
		f.next()
	}
	f.WantFailed(cleanup.PhaseFetch, "connection reset by peer")
	f.Repo.OnFetch(nil)

	res := f.Dynamic.Resource(informers.UpgradeGVR).Namespace(testNS)
	if err := res.Delete(f.Ctx, testUpgrade, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.WaitFor("the controller to forget the deleted Upgrade", func() bool { return f.RepoEpoch() == 0 })
	for f.Controller.QueueLen() > 0 {
		f.Controller.TakeNextKey()
	}
	restored := upgrade().UID("restored-uid").State(cleanup.StateFailed).
		Annotate(cleanup.FailedPhaseAnnotation, string(cleanup.PhaseFetch)).
		Annotate(cleanup.MessageAnnotation, "fetching the image lists failed 5 times while the repo was Ready").Obj()
	if _, err := res.Create(f.Ctx, restored, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Its add event comes after the delete's, from the same handler: once
	// it is queued, the delete has been handled in full.
	f.WaitFor("the restored Upgrade's add event", func() bool { return f.Controller.QueueLen() > 0 })
	fetches := len(f.Repo.Calls())
	f.next()
	f.WantFailed(cleanup.PhaseFetch)
	if n := len(f.Repo.Calls()); n != fetches {
		t.Fatalf("%d fetches in the Ready phase the restored Upgrade was first seen in, want none", n-fetches)
	}

	f.RestartRepo()
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %s (%s), want Planned: the next Ready phase re-arms the restored Upgrade", got, f.Annotations()[cleanup.MessageAnnotation])
	}
}
