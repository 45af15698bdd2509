package cleanup_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

func TestMalformedUpgradeIsSkipped(t *testing.T) {
	u := upgrade().Obj()
	u.Object["status"].(map[string]any)["conditions"] = "Completed"
	f := newFixture(t, []runtime.Object{u, repoSlice(true).Obj()})
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatalf("sync returned %v; a malformed object is skipped, not retried", err)
	}
	f.WantNoFetch()
	if p := f.Patches(); len(p) > 0 {
		t.Errorf("patched a malformed Upgrade: %v", p)
	}
}

func TestWaitsForRepoWithoutRequests(t *testing.T) {
	f := newFixture(t, objects(upgrade(), false))
	f.WaitRepoReady(false)
	if err := f.SyncNow(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if got := f.State(); got != cleanup.StateWaitingForRepo {
		t.Fatalf("state = %q, want %q", got, cleanup.StateWaitingForRepo)
	}
	// Harvester keeps writing the Upgrade; each write is an event and a sync.
	for i := range 5 {
		f.UpdateUpgrade(func(u *unstructured.Unstructured) {
			u.SetLabels(map[string]string{cleanup.LatestUpgradeLabel: "true", "touched": fmt.Sprint(i)})
		})
		if err := f.SyncNow(); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	f.WantNoFetch()
	if got := f.Patches(); len(got) != 1 || got[0] != cleanup.StateWaitingForRepo {
		t.Errorf("patches = %v, want one WaitingForRepo", got)
	}
	if n := f.requeues(); n != 0 {
		t.Errorf("key was requeued %d times; waiting must not spend retries", n)
	}
	ev := f.Events()
	if len(ev) != 1 || !strings.Contains(ev[0], "ImageCleanupWaitingForRepo") {
		t.Errorf("events = %v, want one ImageCleanupWaitingForRepo", ev)
	}
}

func TestReadyRepoIsFetchedAndPlanned(t *testing.T) {
	u := upgrade().Annotate("keep", "me")
	f := newFixture(t, objects(u, false))
	f.WaitRepoReady(false)
	f.next()
	f.SetRepoReady(true)
	f.next()

	calls := f.Repo.Calls()
	if len(calls) != 2 || calls[0].Version != "v1.4.2" || calls[1].Version != cleanup.CurrentVersion {
		t.Fatalf("fetches = %+v, want v1.4.2 then current", calls)
	}
	for _, c := range calls {
		if !c.RepoReady {
			t.Errorf("fetched %s while the repo was not Ready", c.Version)
		}
		want := cleanup.Target{BaseURL: "http://" + cleanuptest.RepoIP + ":80", Host: "upgrade-repo-" + testUpgrade + "." + testNS}
		if c.Target != want {
			t.Errorf("target = %+v, want %+v (the endpoint's own address, no DNS)", c.Target, want)
		}
	}
	cm, ok := f.PlanConfigMap()
	if !ok {
		t.Fatal("no plan ConfigMap")
	}
	if got := cm.Data[cleanup.PlanKey]; got != cleanuptest.PlannedImages {
		t.Errorf("plan =\n%s\nwant\n%s", got, cleanuptest.PlannedImages)
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != u.Obj().GetUID() || cm.OwnerReferences[0].Kind != "Upgrade" {
		t.Errorf("owner references = %+v, want the Upgrade", cm.OwnerReferences)
	}
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StatePlanned || !strings.Contains(a[cleanup.MessageAnnotation], "2 images of v1.4.2") {
		t.Errorf("annotations = %v, want Planned with 2 images", a)
	}
	if a["keep"] != "me" {
		t.Errorf("an unrelated annotation was lost: %v", a)
	}
	if got := f.Patches(); len(got) != 2 || got[0] != cleanup.StateWaitingForRepo || got[1] != cleanup.StatePlanned {
		t.Errorf("patches = %v, want WaitingForRepo then Planned", got)
	}
	// A resync or restart of a Planned upgrade asks nothing of the repo.
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Repo.Calls()); n != 2 {
		t.Errorf("fetches after Planned = %d, want still 2", n)
	}
}

func TestServiceAddressMode(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true), func(c *cleanup.Config) {
		c.Options.RepoAddress = cleanup.RepoAddressService
	})
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	calls := f.Repo.Calls()
	want := cleanup.Target{BaseURL: "http://upgrade-repo-" + testUpgrade + "." + testNS}
	if len(calls) == 0 || calls[0].Target != want {
		t.Fatalf("fetches = %+v, want target %+v", calls, want)
	}
}

// failEveryFetch makes every fetch fail with err.
func failEveryFetch(err error) cleanuptest.FetchHook {
	return func(context.Context, int, string) error { return err }
}

func TestErrorsWhileReadyAreRetriedThenFailed(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	f.Repo.OnFetch(failEveryFetch(&cleanup.StatusError{URL: "http://repo/x", StatusCode: 500, Status: "500 Internal Server Error"}))
	f.WaitRepoReady(true)
	maxRetries := f.Options.MaxRetries
	for f.State() != cleanup.StateFailed {
		if n := len(f.Repo.Calls()); n > maxRetries+1 {
			t.Fatalf("%d fetches and still not Failed", n)
		}
		f.next()
	}
	if n := len(f.Repo.Calls()); n != maxRetries+1 {
		t.Errorf("fetches = %d, want %d (one attempt plus %d retries)", n, maxRetries+1, maxRetries)
	}
	msg := f.Annotations()[cleanup.MessageAnnotation]
	if !strings.Contains(msg, "500 Internal Server Error") || !strings.Contains(msg, fmt.Sprintf("%d times", maxRetries+1)) {
		t.Errorf("message %q does not say why and how often", msg)
	}
	if _, ok := f.PlanConfigMap(); ok {
		t.Error("a plan was written after a failure")
	}
	var warned bool
	for _, e := range f.Events() {
		warned = warned || strings.HasPrefix(e, "Warning ImageCleanupFailed")
	}
	if !warned {
		t.Error("no Warning event for Failed")
	}
	if n := f.requeues(); n != 0 {
		t.Errorf("NumRequeues = %d after giving up, want 0 (forgotten)", n)
	}

	// Still Ready, still failing: further events do not fetch again.
	before := len(f.Repo.Calls())
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.Repo.Calls()); n != before {
		t.Errorf("a Failed upgrade fetched again in the same Ready phase")
	}

	// The repo restarts: not Ready re-arms (recorded), Ready fetches again.
	f.Repo.OnFetch(nil)
	f.SetRepoReady(false)
	f.next()
	if got := f.State(); got != cleanup.StateWaitingForRepo {
		t.Fatalf("state after the repo went away = %q, want WaitingForRepo (re-armed)", got)
	}
	if !strings.Contains(f.Annotations()[cleanup.MessageAnnotation], "re-armed") {
		t.Errorf("message %q does not say the failure was re-armed", f.Annotations()[cleanup.MessageAnnotation])
	}
	f.SetRepoReady(true)
	f.next()
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state after the repo came back = %q, want Planned", got)
	}
}

func TestFailedRearmsOnFastRestartFoldedByTheQueue(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	f.WaitRepoReady(true)
	f.Repo.OnFetch(failEveryFetch(errors.New("connection reset by peer")))
	for f.State() != cleanup.StateFailed {
		f.next()
	}
	failedFetches := len(f.Repo.Calls())
	// Not Ready and Ready again before any worker looked: the queue folds
	// both events into one item, which only sees Ready.
	f.Repo.OnFetch(nil)
	f.RestartRepo()
	f.next()
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %q, want Planned: a new Ready phase re-arms a failure", got)
	}
	if n := len(f.Repo.Calls()) - failedFetches; n != 2 {
		t.Errorf("fetches after re-arm = %d, want 2", n)
	}
}

func TestFlappingRepoMakesNoBlindRetries(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	f.WaitRepoReady(true)
	// The repo dies in the middle of the first fetch.
	f.Repo.OnFetch(func(_ context.Context, n int, _ string) error {
		if n == 0 {
			f.SetRepoReady(false)
			return errors.New("dial tcp 10.52.0.17:8080: connect: connection refused")
		}
		return nil
	})
	f.next()
	if got := f.State(); got != cleanup.StateWaitingForRepo {
		t.Fatalf("state = %q, want WaitingForRepo", got)
	}
	if n := f.requeues(); n != 0 {
		t.Errorf("NumRequeues = %d: a failure after the repo went away must not spend a retry", n)
	}
	if !strings.Contains(f.Annotations()[cleanup.MessageAnnotation], "connection refused") {
		t.Errorf("message %q does not carry the failure", f.Annotations()[cleanup.MessageAnnotation])
	}
	// Nothing is retried while the repo is down, however long.
	f.Settle()
	f.Clock.Step(time.Hour)
	for f.Controller.QueueLen() > 0 {
		f.Controller.ProcessNextItem(f.Ctx)
	}
	if n := len(f.Repo.Calls()); n != 1 {
		t.Fatalf("fetches while down = %d, want the 1 that failed", n)
	}
	f.SetRepoReady(true)
	f.next()
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %q, want Planned", got)
	}
	calls := f.Repo.Calls()
	if len(calls) != 3 {
		t.Errorf("fetches = %d, want 3 (1 failed, then previous and current)", len(calls))
	}
	for i, c := range calls {
		if !c.RepoReady {
			t.Errorf("fetch %d was made while the repo was not Ready", i)
		}
	}
	if got := f.Patches(); len(got) != 2 || got[1] != cleanup.StatePlanned {
		t.Errorf("patches = %v, want WaitingForRepo then one Planned", got)
	}
}

func TestRepoRestartDuringFetchRetriesAtOnce(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	f.WaitRepoReady(true)
	f.Repo.OnFetch(func(_ context.Context, n int, _ string) error {
		if n == 0 {
			f.RestartRepo()
			return errors.New("connection reset by peer")
		}
		return nil
	})
	f.next()
	if n := f.requeues(); n != 0 {
		t.Errorf("NumRequeues = %d: a failure across a repo restart is not the repo's fault", n)
	}
	f.next() // no clock step needed: the key was re-added at once
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %q, want Planned", got)
	}
}

func TestInvalidPreviousVersionFailsWithoutRequest(t *testing.T) {
	for _, v := range []string{"", "../../etc", "v1.4.2/x", "v1 .4"} {
		t.Run(v, func(t *testing.T) {
			f := newFixture(t, objects(upgrade().PreviousVersion(v), true))
			f.WaitRepoReady(true)
			if err := f.SyncNow(); err != nil {
				t.Fatal(err)
			}
			f.WantNoFetch()
			a := f.Annotations()
			if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateFailed || !strings.Contains(a[cleanup.MessageAnnotation], "status.previousVersion") {
				t.Errorf("annotations = %v, want Failed naming status.previousVersion", a)
			}
		})
	}
}

func TestWrittenPlanIsNotFetchedAgain(t *testing.T) {
	// A restart between writing the ConfigMap and recording Planned.
	u, cm := plannedUpgrade(t, nil)
	u.SetAnnotations(map[string]string{cleanup.StateAnnotation: string(cleanup.StateWaitingForRepo)})
	f := newFixture(t, []runtime.Object{u, repoSlice(true).Obj(), cm})
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	f.WantNoFetch()
	if got := f.State(); got != cleanup.StatePlanned {
		t.Errorf("state = %q, want Planned", got)
	}
}

func TestForeignConfigMapIsNotOverwritten(t *testing.T) {
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: cleanup.PlanConfigMapName(testUpgrade), Namespace: testNS},
		Data:       map[string]string{"mine": "yes"},
	}
	f := newFixture(t, objects(upgrade(), true, foreign))
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	f.WantNoFetch()
	cm, _ := f.PlanConfigMap()
	if cm.Data["mine"] != "yes" || len(cm.Data) != 1 {
		t.Errorf("foreign ConfigMap was changed: %v", cm.Data)
	}
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateFailed || !strings.Contains(a[cleanup.MessageAnnotation], "not owned") {
		t.Errorf("annotations = %v, want Failed saying the ConfigMap is not owned", a)
	}
}

func TestStaleCacheConflictChangesNothing(t *testing.T) {
	f := newFixture(t, objects(upgrade().ResourceVersion("41"), false),
		cleanuptest.WithDynamicReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
			body := string(a.(clienttesting.PatchAction).GetPatch())
			if !strings.Contains(body, `"resourceVersion":"41"`) {
				t.Errorf("patch %s does not carry the resourceVersion it was decided on", body)
			}
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "harvesterhci.io", Resource: "upgrades"}, testUpgrade, errors.New("modified"))
		}))
	f.WaitRepoReady(false)
	f.Settle()
	f.Controller.Enqueue(testKey)
	f.Controller.ProcessNextItem(f.Ctx)
	if ev := f.Events(); len(ev) != 0 {
		t.Errorf("events %v emitted for a state that was not recorded", ev)
	}
	if n := f.requeues(); n != 0 {
		t.Errorf("NumRequeues = %d: a stale cache is not a failure", n)
	}
	// The key comes back by itself once the cache can have caught up.
	f.waitQueued()
}

// A conflict on the write that records Failed must not hand the upgrade a
// fresh retry budget: one more attempt, then Failed.
func TestConflictOnFailedKeepsTheRetryBudget(t *testing.T) {
	var mu sync.Mutex
	conflicted := false
	f := newFixture(t, objects(upgrade(), true),
		cleanuptest.WithDynamicReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
			mu.Lock()
			defer mu.Unlock()
			if !conflicted && strings.Contains(string(a.(clienttesting.PatchAction).GetPatch()), string(cleanup.StateFailed)) {
				conflicted = true
				return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "harvesterhci.io", Resource: "upgrades"}, testUpgrade, errors.New("modified"))
			}
			return false, nil, nil
		}))
	f.Repo.OnFetch(failEveryFetch(errors.New("connection reset by peer")))
	f.WaitRepoReady(true)
	maxRetries := f.Options.MaxRetries
	for f.State() != cleanup.StateFailed {
		if n := len(f.Repo.Calls()); n > maxRetries+2 {
			t.Fatalf("%d fetches: the conflict reset the retry budget", n)
		}
		f.next()
	}
	mu.Lock()
	defer mu.Unlock()
	if !conflicted {
		t.Fatal("the Failed write never conflicted")
	}
	if n := len(f.Repo.Calls()); n != maxRetries+2 {
		t.Errorf("fetches = %d, want %d (the budget plus one attempt after the conflict)", n, maxRetries+2)
	}
}

type recordingExecutor struct {
	mu    sync.Mutex
	plans []cleanup.PlanRef
	out   cleanup.Outcome
}

func (e *recordingExecutor) Execute(_ context.Context, _ cleanup.Upgrade, p cleanup.PlanRef) (cleanup.Outcome, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.plans = append(e.plans, p)
	return e.out, nil
}

func TestPlannedUpgradeGoesToTheExecutor(t *testing.T) {
	exec := &recordingExecutor{out: cleanup.Outcome{State: cleanup.StateRemoving, Message: "3 Jobs running"}}
	u, cm := plannedUpgrade(t, nil)
	f := newFixture(t, []runtime.Object{u, repoSlice(true).Obj(), cm}, cleanuptest.WithExecutor(exec))
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	f.WantNoFetch()
	want := cleanup.PlanRef{Namespace: testNS, ConfigMap: cleanup.PlanConfigMapName(testUpgrade), UID: "plan-uid", Digest: imagelist.Digest([]byte(cleanuptest.PlannedImages))}
	if len(exec.plans) != 1 || exec.plans[0] != want {
		t.Errorf("executor got %+v, want %+v", exec.plans, want)
	}
	if a := f.Annotations(); cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateRemoving || a[cleanup.MessageAnnotation] != "3 Jobs running" {
		t.Errorf("annotations = %v, want the executor's outcome", a)
	}
}

func TestDryRunStopsAtPlanned(t *testing.T) {
	u, cm := plannedUpgrade(t, map[string]string{cleanup.MessageAnnotation: "m"})
	f := newFixture(t, []runtime.Object{u, repoSlice(true).Obj(), cm})
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if p := f.Patches(); len(p) != 0 {
		t.Errorf("dry run patched %v", p)
	}
}

func TestRestartWithDoneAnnotationMakesNoRequest(t *testing.T) {
	for _, a := range []map[string]string{
		{cleanup.StateAnnotation: string(cleanup.StateSucceeded)},
		{cleanup.HarvesterDoneAnnotation: "true"},
	} {
		f := newFixture(t, objects(upgrade().Annotations(a), true))
		stop := f.Run(2)
		// Run processes the Add events of the initial list; flip the repo
		// so the gate enqueues again, and wait until the queue is empty.
		f.RestartRepo()
		f.WaitFor("queue to drain", func() bool { return f.Controller.QueueLen() == 0 })
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		f.WantNoFetch()
		if p := f.Patches(); len(p) != 0 {
			t.Errorf("%v: patched %v", a, p)
		}
	}
}

func TestThousandSliceUpdatesMakeOneFetch(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	f.WaitRepoReady(true)
	stop := f.Run(2)
	s := repoSlice(true).Obj()
	for i := 1; i <= 1000; i++ {
		// Alternate a second Ready endpoint so every update changes what the
		// gate reports and enqueues the upgrade.
		s.Endpoints = s.Endpoints[:1]
		if i%2 == 1 {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.52.0.18"}})
		}
		s.Labels["generation"] = fmt.Sprint(i)
		if _, err := f.Kube.DiscoveryV1().EndpointSlices(testNS).Update(f.Ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 { // the fake watch buffers 100 events; let the informer keep up
			want := fmt.Sprint(i)
			f.WaitFor("slice cache", func() bool {
				obj, ok, _ := f.EndpointSlices.GetIndexer().GetByKey(testNS + "/" + s.Name)
				return ok && obj.(*discoveryv1.EndpointSlice).Labels["generation"] == want
			})
		}
	}
	f.WaitFor("Planned", func() bool { return f.State() == cleanup.StatePlanned })
	f.WaitFor("queue to drain", func() bool { return f.Controller.QueueLen() == 0 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(f.Repo.Calls()); n != 2 {
		t.Errorf("fetches = %d, want 2 (previous and current, once)", n)
	}
	if n := f.Creates("configmaps"); n != 1 {
		t.Errorf("plan ConfigMap created %d times, want 1", n)
	}
}

func TestStopLetsItemsInFlightFinish(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	inFetch, release := make(chan struct{}), make(chan struct{})
	f.Repo.OnFetch(func(_ context.Context, n int, _ string) error {
		if n == 0 {
			close(inFetch)
			<-release // a slow repo; ignores the context on purpose
		}
		return nil
	})
	stop := f.Run(1)
	<-inFetch
	stopped := make(chan error)
	go func() { stopped <- stop() }()
	// Once Run has stopped intake it must still wait for the item in
	// flight; it returns once the item finished, with the plan written.
	f.WaitFor("Run to stop intake", f.Controller.QueueShuttingDown)
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with an item in flight", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.State() != cleanup.StatePlanned {
		t.Errorf("state = %s: the item in flight did not finish", f.State())
	}
}

// The shutdown timeout runs on the injected clock: the test steps it past
// the timeout once Run waits for the item in flight.
func TestStopCancelsItemsPastTheShutdownTimeout(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true))
	inFetch := make(chan struct{})
	var fetchCtxErr error
	f.Repo.OnFetch(func(ctx context.Context, _ int, _ string) error {
		close(inFetch)
		<-ctx.Done() // a repo that never answers
		fetchCtxErr = ctx.Err()
		return fetchCtxErr
	})
	stop := f.Run(1)
	<-inFetch
	idle := f.Clock.Waiters()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	f.WaitFor("Run to wait for the shutdown timeout", func() bool { return f.Clock.Waiters() > idle })
	select {
	case err := <-stopped:
		t.Fatalf("Run returned before the shutdown timeout, with the fetch still in flight: %v", err)
	default:
	}
	f.Clock.Step(f.Options.ShutdownTimeout)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !errors.Is(fetchCtxErr, context.Canceled) {
		t.Errorf("the stuck fetch's context: %v, want cancelled after the shutdown timeout", fetchCtxErr)
	}
	if f.State() == cleanup.StateFailed {
		t.Error("a fetch cut by shutdown was recorded as the repo's failure")
	}
}

// Found on a real cluster: an upgrade already WaitingForRepo whose repo
// dies during the fetch must say so, not keep the generic message.
func TestFlapWhileWaitingSaysWhy(t *testing.T) {
	f := newFixture(t, objects(upgrade(), false))
	f.WaitRepoReady(false)
	f.next()
	if f.State() != cleanup.StateWaitingForRepo {
		t.Fatalf("state = %s", f.State())
	}
	f.SetRepoReady(true)
	f.Repo.OnFetch(func(_ context.Context, n int, _ string) error {
		if n == 0 {
			f.SetRepoReady(false)
			return errors.New("EOF")
		}
		return nil
	})
	f.next()
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateWaitingForRepo || !strings.HasPrefix(a[cleanup.MessageAnnotation], "repo went not ready during the fetch") {
		t.Errorf("annotations = %v, want WaitingForRepo saying the repo went away during the fetch", a)
	}
	// Later events while still down keep that message.
	f.next()
	if got := f.Annotations()[cleanup.MessageAnnotation]; !strings.HasPrefix(got, "repo went not ready during the fetch") {
		t.Errorf("message = %q: a later event overwrote it", got)
	}
}

// The repo's slices may be seen before its Upgrade: what the gate saw then
// is kept, and dropped only when the Upgrade is deleted.
func TestGateMemoryLastsUntilTheUpgradeIsDeleted(t *testing.T) {
	f := newFixture(t, []runtime.Object{repoSlice(false).Obj()})
	f.WaitRepoReady(false)
	f.SetRepoReady(true)
	if err := f.Sync(testKey); err != nil {
		t.Fatal(err)
	}
	if epoch := f.RepoEpoch(); epoch != 1 {
		t.Fatalf("epoch = %d after a sync of a not-yet-existing Upgrade, want the 1 transition seen", epoch)
	}
	res := f.Dynamic.Resource(informers.UpgradeGVR).Namespace(testNS)
	if _, err := res.Create(f.Ctx, upgrade().Completed(false).Obj(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.Settle()
	if err := res.Delete(f.Ctx, testUpgrade, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.WaitFor("the gate to forget the deleted Upgrade", func() bool { return f.RepoEpoch() == 0 })
}
