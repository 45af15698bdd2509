package cleanup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clienttesting "k8s.io/client-go/testing"

	"github.com/distribution/reference"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// wantFailed checks state Failed, the phase recorded with it and that the
// message names what went wrong.
func (f *fixture) wantFailed(phase Phase, msgHas ...string) {
	f.t.Helper()
	a := f.annotations()
	if State(a[StateAnnotation]) != StateFailed || Phase(a[FailedPhaseAnnotation]) != phase {
		f.t.Fatalf("state %q phase %q (message %q), want Failed in phase %s", a[StateAnnotation], a[FailedPhaseAnnotation], a[MessageAnnotation], phase)
	}
	for _, s := range msgHas {
		if !strings.Contains(a[MessageAnnotation], s) {
			f.t.Errorf("message %q does not say %q", a[MessageAnnotation], s)
		}
	}
}

// A fetch fails its retries; the repo restarts; the re-armed sync writes the
// plan but the Planned patch does not land. The next sync must converge to
// Planned from the written plan, not read "Failed + plan" as a removal
// failure waiting for a person forever.
func TestWrittenPlanAfterFetchFailureConvergesToPlanned(t *testing.T) {
	var armed, refused atomic.Bool
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)},
		withDynamicReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
			if armed.Load() && !refused.Load() && strings.Contains(string(a.(clienttesting.PatchAction).GetPatch()), string(StatePlanned)) {
				refused.Store(true)
				return true, nil, apierrors.NewServiceUnavailable("etcd leader changed")
			}
			return false, nil, nil
		}))
	f.waitRepoReady(true)
	f.fetcher.respond = func(int, string) error { return errors.New("connection reset by peer") }
	for f.state() != StateFailed {
		f.next()
	}
	f.wantFailed(PhaseFetch, "connection reset by peer")
	f.fetcher.respond = nil

	armed.Store(true)
	f.restartRepo()
	f.settle()
	if err := f.c.sync(f.ctx, testKey, 0); err == nil || !refused.Load() {
		t.Fatalf("sync = %v, refused = %v: want the Planned write refused", err, refused.Load())
	}
	if _, ok := f.planConfigMap(); !ok {
		t.Fatal("the plan was not written")
	}
	f.wantFailed(PhaseFetch)
	fetches := len(f.fetcher.recorded())

	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	if got := f.state(); got != StatePlanned {
		t.Fatalf("state = %q (message %q), want Planned from the written plan", got, f.annotations()[MessageAnnotation])
	}
	if n := len(f.fetcher.recorded()); n != fetches {
		t.Errorf("%d more fetches; the written plan stands", n-fetches)
	}
	a := f.annotations()
	if _, ok := a[FailedPhaseAnnotation]; ok {
		t.Errorf("failed phase %q left beside Planned", a[FailedPhaseAnnotation])
	}
	cm, _ := f.planConfigMap()
	if a[PlanDigestAnnotation] == "" || a[PlanDigestAnnotation] != cm.Annotations[PlanDigestAnnotation] {
		t.Errorf("upgrade digest %q, plan digest %q: Planned must record the plan's digest", a[PlanDigestAnnotation], cm.Annotations[PlanDigestAnnotation])
	}
}

// Deleting the plan ConfigMap mid-removal (the documented way to stop) is
// Failed, and stays Failed through the repo's restarts until a person
// re-arms it: no new plan, no new Job.
func TestDeletedPlanStaysFailedThroughRepoRestarts(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.syncRemoval()
	if f.state() != StateRemoving {
		t.Fatalf("state = %s, want Removing", f.state())
	}
	if err := f.kube.CoreV1().ConfigMaps(testNS).Delete(f.ctx, PlanConfigMapName(testUpgrade), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.syncRemoval()
	f.wantFailed(PhaseRemoval, "is gone")

	f.setRepoReady(false)
	f.syncRemoval()
	f.restartRepo()
	f.syncRemoval()
	f.wantFailed(PhaseRemoval)
	f.wantNoFetch()
	if _, ok := f.planConfigMap(); ok {
		t.Error("a new plan was written")
	}
	if n := f.jobCreates(); n != 1 {
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
				cm.Data[PlanKey] += "docker.io/rancher/harvester:v1.5.0\n"
			},
			wantMsg: []string{"changed after it was planned"},
		},
		{
			name: "images and the ConfigMap's digest changed together",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				cm.Data[PlanKey] = "docker.io/rancher/harvester:v1.5.0\n"
				cm.Annotations[PlanDigestAnnotation] = "sha256:" + strings.Repeat("0", 64)
			},
			wantMsg: []string{"changed after it was planned"},
		},
		{
			name: "consistent ConfigMap, but not the plan the upgrade recorded",
			change: func(u map[string]string, _ *corev1.ConfigMap) {
				u[PlanDigestAnnotation] = "sha256:" + strings.Repeat("1", 64)
			},
			wantMsg: []string{"the upgrade recorded"},
		},
		{
			name: "no keep list",
			change: func(_ map[string]string, cm *corev1.ConfigMap) {
				delete(cm.Data, KeepKey)
			},
			wantMsg: []string{"has no key keep.txt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := map[string]string{}
			u, cm := plannedUpgrade(t, nil)
			for k, v := range u.GetAnnotations() {
				a[k] = v
			}
			tt.change(a, cm)
			u.SetAnnotations(a)
			f := newRemovalFixture(t, 1, []string{"node-a"})
			// Replace the fixture's own plan and Upgrade with the changed ones.
			if _, err := f.kube.CoreV1().ConfigMaps(testNS).Update(f.ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			cur, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Get(f.ctx, testUpgrade, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cur.SetAnnotations(a)
			if _, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Update(f.ctx, cur, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			f.syncRemoval()
			f.wantFailed(PhasePlan, append([]string{"plan ConfigMap " + testNS + "/" + PlanConfigMapName(testUpgrade)}, tt.wantMsg...)...)
			if n := f.jobCreates(); n != 0 {
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
			refuse:  apierrors.NewInvalid(schema.GroupKind{Kind: "ConfigMap"}, PlanConfigMapName(testUpgrade), field.ErrorList{field.TooLong(field.NewPath("data"), "", 1<<20)}),
			wantMsg: "is invalid",
		},
		{
			name:    "forbidden",
			refuse:  apierrors.NewForbidden(gr, PlanConfigMapName(testUpgrade), errors.New("no RBAC rule")),
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
			f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)},
				withKubeReactor("create", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, tt.refuse
				}))
			f.waitRepoReady(true)
			f.next()
			f.wantFailed(PhasePlan, "create plan ConfigMap", tt.wantMsg)
			if n := f.c.queue.NumRequeues(testKey); n != 0 {
				t.Errorf("NumRequeues = %d: a refusal is not retried", n)
			}
			// A resync does not fetch again: the failure waits for a person.
			fetches := len(f.fetcher.recorded())
			if err := f.syncNow(); err != nil {
				t.Fatal(err)
			}
			if n := len(f.fetcher.recorded()); n != fetches {
				t.Errorf("a resync fetched %d more times", n-fetches)
			}
		})
	}
}

func TestPlanTooLargeForAConfigMapFailsAtOnce(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	var big []string
	for i := range 12000 {
		big = append(big, fmt.Sprintf("registry.example.com/some/long/repository/path/component-%06d:v1.2.3-build20260101", i))
	}
	f.c.fetcher = listFetcherFunc(func(version string) []string {
		if version == CurrentVersion {
			return testCurrent
		}
		return big
	})
	f.waitRepoReady(true)
	f.next()
	f.wantFailed(PhasePlan, "over the ConfigMap limit")
	if _, ok := f.planConfigMap(); ok {
		t.Error("a plan was written")
	}
	if n := f.c.queue.NumRequeues(testKey); n != 0 {
		t.Errorf("NumRequeues = %d: a plan too large is not retried", n)
	}
}

func TestUpgradeNameTooLongForALabelFailsAtOnce(t *testing.T) {
	// 64 characters: a valid object name, not a valid label value.
	u := testUpgradeObject(true, nil)
	upg, err := UpgradeFromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	upg.Name = "hvst-upgrade-" + strings.Repeat("x", 51)
	_, err = planConfigMap(upg, Plan{Remove: []string{"docker.io/rancher/a:1"}, Keep: []string{"docker.io/rancher/b:1"}})
	if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), informers.UpgradeLabel) {
		t.Fatalf("planConfigMap = %v, want a permanent error naming the label %s", err, informers.UpgradeLabel)
	}
}

// A Job the API server refuses (a policy, a quota of the wrong kind, RBAC)
// is Failed at once, naming the Job and the node.
func TestRefusedJobFailsAtOnce(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"},
		withKubeReactor("create", "jobs", func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "batch", Resource: "jobs"}, "x", errors.New("denied by policy"))
		}))
	f.syncRemoval()
	f.wantFailed(PhaseRemoval, "create Job", "node-a", "denied by policy")
	if jobs := f.jobsByNode(); len(jobs) != 0 {
		t.Errorf("jobs = %v", jobs)
	}
}

// listFetcherFunc serves lists by version, for tests that need other lists
// than the fake fetcher's.
type listFetcherFunc func(version string) []string

func (l listFetcherFunc) FetchList(_ context.Context, _ Target, version string) ([]reference.Named, error) {
	return imagelist.Parse(strings.NewReader(strings.Join(l(version), "\n")), version)
}

// An Upgrade Failed by a version that recorded no phase, with its plan
// written, failed after planning: it waits for a person, as it did then.
func TestFailedWithoutPhaseAfterPlanningWaitsForAPerson(t *testing.T) {
	u, cm := plannedUpgrade(t, map[string]string{StateAnnotation: string(StateFailed), MessageAnnotation: "1 of 2 nodes succeeded"})
	f := newFixture(t, u, []runtime.Object{testSlice(true), cm})
	f.waitRepoReady(true)
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	f.wantNoFetch()
	if p := f.patches(); len(p) != 0 {
		t.Errorf("patched the Upgrade: %v", p)
	}
}
