package cleanup_test

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clienttesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// A fetch fails its retries; the repo restarts; the re-armed sync writes the
// plan but the Planned patch does not land. The next sync must converge to
// Planned from the written plan, not read "Failed + plan" as a removal
// failure waiting for a person forever.
func TestWrittenPlanAfterFetchFailureConvergesToPlanned(t *testing.T) {
	var armed, refused atomic.Bool
	f := newFixture(t, objects(upgrade(), true),
		cleanuptest.WithDynamicReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if armed.Load() && !refused.Load() && strings.Contains(string(a.(clienttesting.PatchAction).GetPatch()), string(cleanup.StatePlanned)) {
				refused.Store(true)
				return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
			}
			return false, nil, nil
		}))
	f.WaitRepoReady(true)
	f.Repo.OnFetch(failEveryFetch(errors.New("connection reset by peer")))
	for f.State() != cleanup.StateFailed {
		f.next()
	}
	f.WantFailed(cleanup.PhaseFetch, "connection reset by peer")
	f.Repo.OnFetch(nil)

	armed.Store(true)
	f.RestartRepo()
	if err := f.SyncNow(); err == nil || !refused.Load() {
		t.Fatalf("sync = %v, refused = %v: want the Planned write refused", err, refused.Load())
	}
	if _, ok := f.PlanConfigMap(); !ok {
		t.Fatal("the plan was not written")
	}
	f.WantFailed(cleanup.PhaseFetch)
	fetches := len(f.Repo.Calls())

	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %q (message %q), want Planned from the written plan", got, f.Annotations()[cleanup.MessageAnnotation])
	}
	if n := len(f.Repo.Calls()); n != fetches {
		t.Errorf("%d more fetches; the written plan stands", n-fetches)
	}
	a := f.Annotations()
	if _, ok := a[cleanup.FailedPhaseAnnotation]; ok {
		t.Errorf("failed phase %q left beside Planned", a[cleanup.FailedPhaseAnnotation])
	}
	cm, _ := f.PlanConfigMap()
	if a[cleanup.PlanDigestAnnotation] == "" || a[cleanup.PlanDigestAnnotation] != cm.Annotations[cleanup.PlanDigestAnnotation] {
		t.Errorf("upgrade digest %q, plan digest %q: Planned must record the plan's digest", a[cleanup.PlanDigestAnnotation], cm.Annotations[cleanup.PlanDigestAnnotation])
	}
}

// Deleting the plan ConfigMap mid-removal (the documented way to stop) is
// Failed, and stays Failed through the repo's restarts until a person
// re-arms it: no new plan, no new Job.
func TestDeletedPlanStaysFailedThroughRepoRestarts(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	if f.State() != cleanup.StateRemoving {
		t.Fatalf("state = %s, want Removing", f.State())
	}
	if err := f.Kube.CoreV1().ConfigMaps(testNS).Delete(f.Ctx, cleanup.PlanConfigMapName(testUpgrade), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.SyncRemoval()
	f.WantFailed(cleanup.PhaseRemoval, "is gone")

	f.SetRepoReady(false)
	f.SyncRemoval()
	f.RestartRepo()
	f.SyncRemoval()
	f.WantFailed(cleanup.PhaseRemoval)
	f.WantNoFetch()
	if _, ok := f.PlanConfigMap(); ok {
		t.Error("a new plan was written")
	}
	if n := f.Creates("jobs"); n != 1 {
		t.Errorf("Job creates = %d, want the first one only", n)
	}
}

// A Planned or Removing upgrade runs only the plan it owns, as planned: a
// ConfigMap of the plan's name owned by someone else, or one whose content
// changed since it was planned, is Failed naming the ConfigMap, and no Job
// starts.
func TestOnlyTheOwnedUnchangedPlanRuns(t *testing.T) {
	tests := []struct {
		name    string
		change  func(u map[string]string, cm *corev1.ConfigMap)
		wantMsg []string
	}{
		{
			name: "not owned by the upgrade",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				cm.OwnerReferences[0].UID = "someone-else"
			},
			wantMsg: []string{"not owned by upgrade"},
		},
		{
			name: "images changed after planning",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				cm.Data[cleanup.PlanKey] += "docker.io/rancher/harvester:v1.5.0\n"
			},
			wantMsg: []string{"changed after it was planned"},
		},
		{
			name: "images and the ConfigMap's digest changed together",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				cm.Data[cleanup.PlanKey] = "docker.io/rancher/harvester:v1.5.0\n"
				cm.Annotations[cleanup.PlanDigestAnnotation] = "sha256:" + strings.Repeat("0", 64)
			},
			wantMsg: []string{"changed after it was planned"},
		},
		{
			name: "consistent ConfigMap, but not the plan the upgrade recorded",
			change: func(u map[string]string, _ *corev1.ConfigMap) {
				u[cleanup.PlanDigestAnnotation] = "sha256:" + strings.Repeat("1", 64)
			},
			wantMsg: []string{"the upgrade recorded"},
		},
		{
			name: "no keep list",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				delete(cm.Data, cleanup.KeepKey)
			},
			wantMsg: []string{"has no key keep.txt"},
		},
		{
			// Written by a version before the remover checked it: its Jobs
			// would all be refused on every node.
			name: "no name key",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				delete(cm.Data, report.PlanNameKey)
			},
			wantMsg: []string{"key configmap-name is \"\"", "not written by this controller version"},
		},
		{
			name: "a name key naming another ConfigMap",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				cm.Data[report.PlanNameKey] = "other-image-cleanup"
			},
			wantMsg: []string{"key configmap-name is \"other-image-cleanup\", want its own name"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRemovalFixture(t, 1, []string{"node-a"})
			// Change the fixture's own plan and Upgrade.
			cm, _ := f.PlanConfigMap()
			a := f.Annotations()
			tt.change(a, cm)
			if _, err := f.Kube.CoreV1().ConfigMaps(testNS).Update(f.Ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.UpdateUpgrade(func(u *unstructured.Unstructured) { u.SetAnnotations(a) })
			f.SyncRemoval()
			f.WantFailed(cleanup.PhasePlan, append([]string{"plan ConfigMap " + testNS + "/" + cleanup.PlanConfigMapName(testUpgrade)}, tt.wantMsg...)...)
			if n := f.Creates("jobs"); n != 0 {
				t.Errorf("%d Jobs created for a plan that must not run", n)
			}
		})
	}
}

// Errors that no retry can mend reach Failed at once, with the cause, instead
// of being retried, dropped, and fetched again at every resync.
func TestRefusedPlanFailsAtOnce(t *testing.T) {
	gr := schema.GroupResource{Resource: "configmaps"}
	tests := []struct {
		name    string
		refuse  error
		wantMsg string
	}{
		{
			name:    "invalid",
			refuse:  apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, cleanup.PlanConfigMapName(testUpgrade), field.ErrorList{field.TooLong(field.NewPath("data"), "", 1<<20)}),
			wantMsg: "is invalid",
		},
		{
			name:    "forbidden",
			refuse:  apierrors.NewForbidden(gr, cleanup.PlanConfigMapName(testUpgrade), errors.New("no RBAC rule")),
			wantMsg: "forbidden",
		},
		{
			name:    "too large",
			refuse:  apierrors.NewRequestEntityTooLargeError("limit is 3145728"),
			wantMsg: "too large",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, objects(upgrade(), true),
				cleanuptest.WithKubeReactor("create", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, tt.refuse
				}))
			f.WaitRepoReady(true)
			f.next()
			f.WantFailed(cleanup.PhasePlan, "create plan ConfigMap", tt.wantMsg)
			if n := f.requeues(); n != 0 {
				t.Errorf("NumRequeues = %d: a refusal is not retried", n)
			}
			// A resync does not fetch again: the failure waits for a person.
			fetches := len(f.Repo.Calls())
			if err := f.SyncNow(); err != nil {
				t.Fatal(err)
			}
			if n := len(f.Repo.Calls()); n != fetches {
				t.Errorf("a resync fetched %d more times", n-fetches)
			}
		})
	}
}

func TestPlanTooLargeForAConfigMapFailsAtOnce(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	var big []string
	for i := range 12000 {
		big = append(big, fmt.Sprintf("registry.example.com/some/long/repository/path/component-%06d:v1.2.3-build20260101", i))
	}
	f.Repo.SetList(cleanuptest.PreviousVersion, big)
	f.WaitRepoReady(true)
	f.next()
	f.WantFailed(cleanup.PhasePlan, "over the ConfigMap limit")
	if _, ok := f.PlanConfigMap(); ok {
		t.Error("a plan was written")
	}
	if n := f.requeues(); n != 0 {
		t.Errorf("NumRequeues = %d: a plan too large is not retried", n)
	}
}

func TestUpgradeNameTooLongForALabelFailsAtOnce(t *testing.T) {
	// 64 characters: a valid object name, not a valid label value.
	name := "hvst-upgrade-" + strings.Repeat("x", 51)
	f := newFixture(t, []runtime.Object{cleanuptest.Upgrade(name).Obj(), cleanuptest.RepoSlice(name).Obj()})
	f.WaitRepoReady(true)
	f.next()
	f.WantFailed(cleanup.PhasePlan, informers.UpgradeLabel)
	if n := f.Controller.NumRequeues(f.Key); n != 0 {
		t.Errorf("NumRequeues = %d: a name that cannot be a label value is not retried", n)
	}
	if _, ok := f.PlanConfigMap(); ok {
		t.Error("a plan was written")
	}
}

// A Job the API server refuses (a policy, a quota of the wrong kind, RBAC)
// is Failed at once, naming the Job and the node.
func TestRefusedJobFailsAtOnce(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"},
		cleanuptest.WithKubeReactor("create", "jobs", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New("denied by policy"))
		}))
	f.SyncRemoval()
	f.WantFailed(cleanup.PhaseRemoval, "create Job", "node-a", "denied by policy")
	if jobs := f.RemovalJobs(); len(jobs) != 0 {
		t.Errorf("jobs = %v", jobs)
	}
}

// An Upgrade Failed by a version that recorded no phase, with its plan
// written, failed after planning: it waits for a person, as it did then.
func TestFailedWithoutPhaseAfterPlanningWaitsForAPerson(t *testing.T) {
	u, cm := plannedUpgrade(t, map[string]string{cleanup.StateAnnotation: string(cleanup.StateFailed), cleanup.MessageAnnotation: "1 of 2 nodes succeeded"})
	f := newFixture(t, []runtime.Object{u, repoSlice(true).Obj(), cm})
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	f.WantNoFetch()
	if p := f.Patches(); len(p) != 0 {
		t.Errorf("patched the Upgrade: %v", p)
	}
}
