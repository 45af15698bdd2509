package cleanup_test

import (
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest/fixture"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Found by review: the exported Sync is an entry point like the event
// handlers, and keeps to Options.Namespace even when the host's Upgrade
// informer (and its own queue) carry every namespace.
func TestSyncKeepsToItsNamespace(t *testing.T) {
	const other = "other"
	u := cleanuptest.Upgrade("hvst-upgrade-elsewhere").Namespace(other)
	slice := cleanuptest.RepoSlice("hvst-upgrade-elsewhere").Namespace(other).Ready(true)
	env := cleanuptest.NewEnv(fixture.Context(t), u.Obj(), slice.Obj())
	if _, err := env.NewController(cleanuptest.WithSharedInformers()); err != nil {
		t.Fatal(err)
	}
	if err := env.Start(); err != nil {
		t.Fatal(err)
	}
	if err := env.Controller.Sync(env.Ctx, cache.ObjectName{Namespace: other, Name: "hvst-upgrade-elsewhere"}); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	for _, a := range append(env.Dynamic.Actions(), env.Kube.Actions()...) {
		if v := a.GetVerb(); v != "list" && v != "watch" {
			t.Errorf("acted on a key outside namespace %s: %s %s in %s", env.Options.Namespace, v, a.GetResource().Resource, a.GetNamespace())
		}
	}
	if calls := env.Repo.Calls(); len(calls) > 0 {
		t.Errorf("fetched for a key outside its namespace: %+v", calls)
	}
}

// Harvester keeps every past Upgrade, and each is synced on every resync.
// One the cleanup will not act on, with its repo Ready, is left alone: no
// fetch, no patch, no plan, and (found by review) no request at all, so no
// error and no retry when the API server is away.
func TestSettledUpgradeCostsNoRequest(t *testing.T) {
	tests := []struct {
		name    string
		upgrade *cleanuptest.UpgradeWrapper
	}{
		{"upgrade missing", nil},
		{"not Completed, planned early", upgrade().Completed(false).State(cleanup.StatePlanned)},
		{"Skipped", upgrade().State(cleanup.StateSkipped)},
		{"labelled latest=false", upgrade().Latest(false)},
		{"not labelled latest", upgrade().Labels(nil)},
		{"Succeeded", upgrade().State(cleanup.StateSucceeded)},
		{"Harvester's cleanup ran", upgrade().Annotate(cleanup.HarvesterDoneAnnotation, "true")},
		{"Failed in phase plan", upgrade().State(cleanup.StateFailed).Annotate(cleanup.FailedPhaseAnnotation, string(cleanup.PhasePlan))},
		{"Failed in phase removal", upgrade().State(cleanup.StateFailed).Annotate(cleanup.FailedPhaseAnnotation, string(cleanup.PhaseRemoval))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gets atomic.Int32
			objs := []runtime.Object{repoSlice(true).Obj()}
			if tt.upgrade != nil {
				objs = append(objs, tt.upgrade.Obj())
			}
			f := newFixture(t, objs, cleanuptest.WithKubeReactor("get", "configmaps",
				func(clienttesting.Action) (bool, runtime.Object, error) {
					gets.Add(1)
					return true, nil, apierrors.NewServiceUnavailable("etcd is down")
				}))
			f.WaitRepoReady(true)
			if err := f.Sync(testKey); err != nil {
				t.Errorf("sync: %v, want nothing to do", err)
			}
			if n := gets.Load(); n != 0 {
				t.Errorf("%d plan GETs, want none", n)
			}
			f.WantNoFetch()
			if p := f.Patches(); len(p) > 0 {
				t.Errorf("patched the Upgrade: %v", p)
			}
			if creates := f.Creates("configmaps"); creates > 0 {
				t.Errorf("%d ConfigMaps created, want no plan", creates)
			}
		})
	}
}

// Found by review: a Failed written by a version without phases is re-armed
// by a new Ready phase like a fetch failure; the plan its fetch then writes
// is recorded as Planned, not taken for a plan that failed.
func TestLegacyFailedRearmedByTheRepoIsPlanned(t *testing.T) {
	f := newFixture(t, objects(upgrade().State(cleanup.StateFailed).Annotate(cleanup.MessageAnnotation, "fetching failed 5 times"), true))
	f.WaitRepoReady(true)
	f.Controller.Enqueue(testKey)
	f.next() // failed in this Ready phase: nothing
	if got := f.State(); got != cleanup.StateFailed {
		t.Fatalf("state = %q before the repo restarted, want Failed", got)
	}
	f.RestartRepo()
	f.next()
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %q after the repo restarted, want Planned", got)
	}
}

// Found by review: the event handlers, the other entry points, keep to
// Options.Namespace too, with the host's informers shared over every
// namespace. Events are delivered in order per informer, so once the key of
// our namespace is queued, the handler has seen the foreign object before it.
func TestHandlersKeepToTheirNamespace(t *testing.T) {
	env := cleanuptest.NewEnv(fixture.Context(t))
	if _, err := env.NewController(cleanuptest.WithRemoval(1), cleanuptest.WithSharedInformers()); err != nil {
		t.Fatal(err)
	}
	if err := env.Start(); err != nil {
		t.Fatal(err)
	}
	const other = "other"
	foreignJob, ownJob := cleanuptest.RemovalJob("hvst-upgrade-elsewhere", "node-0"), cleanuptest.RemovalJob("hvst-upgrade-ours", "node-0")
	foreignJob.Namespace = other
	steps := []struct {
		what   string
		create func() error
		ours   cache.ObjectName
	}{
		{"Upgrade", func() error {
			foreign := cleanuptest.Upgrade("hvst-upgrade-elsewhere").Namespace(other).Obj()
			if _, err := env.Dynamic.Resource(informers.UpgradeGVR).Namespace(other).Create(env.Ctx, foreign, metav1.CreateOptions{}); err != nil {
				return err
			}
			_, err := env.Dynamic.Resource(informers.UpgradeGVR).Namespace(testNS).Create(env.Ctx, upgrade().Obj(), metav1.CreateOptions{})
			return err
		}, testKey},
		{"Job", func() error {
			if _, err := env.Kube.BatchV1().Jobs(other).Create(env.Ctx, foreignJob, metav1.CreateOptions{}); err != nil {
				return err
			}
			_, err := env.Kube.BatchV1().Jobs(testNS).Create(env.Ctx, ownJob, metav1.CreateOptions{})
			return err
		}, cache.ObjectName{Namespace: testNS, Name: "hvst-upgrade-ours"}},
	}
	for _, s := range steps {
		if err := s.create(); err != nil {
			t.Fatalf("create %ss: %v", s.what, err)
		}
		var seen []cache.ObjectName
		if err := env.WaitFor("the key of our namespace", func() bool {
			for env.Controller.QueueLen() > 0 {
				k, _ := env.Controller.TakeNextKey()
				seen = append(seen, k)
			}
			return slices.Contains(seen, s.ours)
		}); err != nil {
			t.Fatalf("%s events: %v (queued %v)", s.what, err, seen)
		}
		for _, k := range seen {
			if k.Namespace != testNS {
				t.Errorf("a %s event queued %s, outside namespace %s", s.what, k, testNS)
			}
		}
	}
}

// Found by review: past the retry cap the worker drops the key (Forget, no
// requeue) until the next event; the table tests DecideRequeue, this the
// worker doing what it says.
func TestWorkerDropsAKeyPastTheRetryCap(t *testing.T) {
	f := newFixture(t, objects(upgrade(), false), cleanuptest.WithDynamicReactor("patch", "upgrades",
		func(clienttesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewServiceUnavailable("etcd is down")
		}))
	f.WaitRepoReady(false)
	f.Controller.Enqueue(testKey)
	for attempt := 0; attempt <= f.Options.MaxRetries; attempt++ {
		f.next() // recording WaitingForRepo fails every time
	}
	if n := f.requeues(); n != 0 {
		t.Errorf("the queue still counts %d retries after the cap; want the key forgotten", n)
	}
	// Step the clock past the longest backoff: nothing comes back.
	f.Clock.Step(f.Options.Queue.MaxDelay * 2)
	f.Settle()
	if n := f.Controller.QueueLen(); n != 0 {
		t.Errorf("%d keys queued after the cap; want the key dropped until the next event", n)
	}
}

// A cleanup under way never sticks: when another controller (Harvester's
// upgrade controller, or the host's own removal) sets
// image-cleanup-plan-completed, the state ends at Succeeded saying so, and
// no further Job starts.
func TestPlanCompletedByAnotherControllerEndsTheCleanup(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.SyncRemoval()
	if f.State() != cleanup.StateRemoving {
		t.Fatalf("state = %s, want Removing while Jobs run", f.State())
	}
	f.UpdateUpgrade(func(u *unstructured.Unstructured) {
		a := u.GetAnnotations()
		a[cleanup.HarvesterDoneAnnotation] = "true"
		u.SetAnnotations(a)
	})
	f.SyncRemoval()
	a := f.Annotations()
	if got := cleanup.State(a[cleanup.StateAnnotation]); got != cleanup.StateSucceeded ||
		!strings.Contains(a[cleanup.MessageAnnotation], "by another controller") {
		t.Fatalf("state %s (%s), want Succeeded saying another controller completed the plan", got, a[cleanup.MessageAnnotation])
	}
	jobs := f.Creates("jobs")
	f.SyncRemoval()
	if n := f.Creates("jobs"); n != jobs {
		t.Errorf("%d Jobs created after the plan was completed elsewhere, want none", n-jobs)
	}
	if p := f.Patches(); len(p) != 2 {
		t.Errorf("patches %v, want Removing then Succeeded only", p)
	}
}
