package cleanup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

const (
	testNS      = "harvester-system"
	testUpgrade = "hvst-upgrade-abc12"
	testUID     = "11111111-2222-3333-4444-555555555555"
	testRepoIP  = "10.52.0.17"
)

var testKey = cache.ObjectName{Namespace: testNS, Name: testUpgrade}

// Lists served by the fake repo: previous minus current is the harvester and
// longhorn-manager images; harvester-upgrade is retained; shared stays.
var (
	testPrevious = []string{
		"rancher/harvester:v1.4.2",
		"docker.io/rancher/harvester-upgrade:v1.4.2",
		"docker.io/longhornio/longhorn-manager:v1.7.2",
		"rancher/shared:v1",
	}
	testCurrent = []string{
		"docker.io/rancher/harvester:v1.5.0",
		"docker.io/rancher/harvester-upgrade:v1.5.0",
		"docker.io/longhornio/longhorn-manager:v1.8.1",
		"docker.io/rancher/shared:v1",
	}
	testPlan = "docker.io/longhornio/longhorn-manager:v1.7.2\ndocker.io/rancher/harvester:v1.4.2\n"
)

// fetchCall is one FetchList call the controller made.
type fetchCall struct {
	target  Target
	version string
	// repoReady is what the gate said about the repo when the call was made.
	repoReady bool
}

// fakeFetcher serves testPrevious and testCurrent unless respond says otherwise.
type fakeFetcher struct {
	mu      sync.Mutex
	calls   []fetchCall
	gate    func() bool
	respond func(n int, version string) error
	// ctxAware, when set, runs first with the call's context.
	ctxAware func(ctx context.Context)
}

func (f *fakeFetcher) FetchList(ctx context.Context, t Target, version string) ([]reference.Named, error) {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, fetchCall{target: t, version: version, repoReady: f.gate()})
	respond, ctxAware := f.respond, f.ctxAware
	f.mu.Unlock()
	if ctxAware != nil {
		ctxAware(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if respond != nil {
		if err := respond(n, version); err != nil {
			return nil, err
		}
	}
	lines := testCurrent
	if version != CurrentVersion {
		lines = testPrevious
	}
	return imagelist.Parse(strings.NewReader(strings.Join(lines, "\n")), version)
}

func (f *fakeFetcher) recorded() []fetchCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fetchCall(nil), f.calls...)
}

// fixture runs the controller's informers over fake clientsets. Tests drive
// the worker themselves (next), so every step is deterministic; only the
// informers' event delivery is asynchronous, and the helpers wait for it.
type fixture struct {
	t        *testing.T
	ctx      context.Context
	kube     *kubefake.Clientset
	dyn      *dynamicfake.FakeDynamicClient
	recorder *record.FakeRecorder
	clock    *clocktesting.FakeClock
	fetcher  *fakeFetcher
	c        *Controller
	slices   cache.SharedIndexInformer
	upgrades cache.SharedIndexInformer
	jobs     cache.SharedIndexInformer
	nodes    cache.SharedIndexInformer
}

type fixtureOption func(*Config)

// withKubeReactor and withDynamicReactor install a reactor before the
// informers start: the fakes' reaction chains are not safe to change while
// an informer lists through them.
func withKubeReactor(verb, resource string, fn clienttesting.ReactionFunc) fixtureOption {
	return func(c *Config) { c.KubeClient.(*kubefake.Clientset).PrependReactor(verb, resource, fn) }
}

func withDynamicReactor(verb, resource string, fn clienttesting.ReactionFunc) fixtureOption {
	return func(c *Config) { c.DynamicClient.(*dynamicfake.FakeDynamicClient).PrependReactor(verb, resource, fn) }
}

func newFixture(t *testing.T, upgrade *unstructured.Unstructured, kubeObjs []runtime.Object, opts ...fixtureOption) *fixture {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	var dynObjs []runtime.Object
	if upgrade != nil {
		dynObjs = append(dynObjs, upgrade)
	}
	f := &fixture{
		t:        t,
		ctx:      ctx,
		kube:     kubefake.NewClientset(kubeObjs...),
		dyn:      dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{informers.UpgradeGVR: "UpgradeList"}, dynObjs...),
		recorder: record.NewFakeRecorder(100),
		clock:    clocktesting.NewFakeClock(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)),
		fetcher:  &fakeFetcher{},
	}
	opt := DefaultOptions()
	f.slices = informers.NewEndpointSliceInformer(f.kube, opt.Namespace, opt.Selector, 0)
	f.upgrades = informers.NewUpgradeInformer(f.dyn, opt.Namespace, 0)
	f.jobs = informers.NewJobInformer(f.kube, opt.Namespace, RemovalSelector(), 0)
	f.nodes = informers.NewNodeInformer(f.kube, DefaultRemovalOptions().NodeSelector, 0)
	cfg := Config{
		KubeClient: f.kube, DynamicClient: f.dyn,
		EndpointSlices: f.slices, Upgrades: f.upgrades,
		Recorder: f.recorder, Clock: f.clock, Fetcher: f.fetcher,
		Jobs: f.jobs, Nodes: f.nodes,
		Options: opt,
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f.c = c
	f.fetcher.gate = func() bool {
		r, _, _ := c.gate.Readiness(testKey)
		return r.Ready()
	}
	t.Cleanup(c.queue.ShutDown)
	for _, inf := range []cache.SharedIndexInformer{f.slices, f.upgrades, f.jobs, f.nodes} {
		go inf.Run(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		t.Fatal("caches did not sync")
	}
	return f
}

// testUpgradeObject is an Upgrade as Harvester writes it.
func testUpgradeObject(completed bool, annotations map[string]string) *unstructured.Unstructured {
	status := "False"
	if completed {
		status = "True"
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "harvesterhci.io/v1beta1",
		"kind":       "Upgrade",
		"metadata": map[string]any{
			"name": testUpgrade, "namespace": testNS, "uid": testUID,
			"labels": map[string]any{LatestUpgradeLabel: "true"},
		},
		"spec": map[string]any{"version": "v1.5.0"},
		"status": map[string]any{
			"previousVersion": "v1.4.2",
			"conditions":      []any{map[string]any{"type": "Completed", "status": status}},
		},
	}}
	if annotations != nil {
		u.SetAnnotations(annotations)
	}
	return u
}

// testSlice is the repo Service's slice as the EndpointSlice controller writes it.
func testSlice(ready bool) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: "upgrade-repo-" + testUpgrade + "-abcde", Namespace: testNS,
			Labels: map[string]string{
				discoveryv1.LabelServiceName:    "upgrade-repo-" + testUpgrade,
				informers.UpgradeLabel:          testUpgrade,
				informers.UpgradeComponentLabel: "repo",
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{testRepoIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
		}},
		Ports: []discoveryv1.EndpointPort{{Port: ptr.To[int32](8080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

// waitFor polls cond, which reads caches that the informers fill in the
// background; it is a bound on a condition, not a sleep.
func (f *fixture) waitFor(what string, cond func() bool) {
	f.t.Helper()
	err := wait.PollUntilContextTimeout(f.ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		f.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// setRepoReady writes the slice's readiness and waits until the gate sees it.
func (f *fixture) setRepoReady(ready bool) {
	f.t.Helper()
	s := testSlice(ready)
	if _, err := f.kube.DiscoveryV1().EndpointSlices(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		f.t.Fatalf("update slice: %v", err)
	}
	f.waitRepoReady(ready)
}

// restartRepo takes the repo's endpoint through not Ready to Ready and
// waits until the gate has counted the new Ready phase: the cache shows
// Ready before the gate's handler has run, and a re-arm needs the count.
func (f *fixture) restartRepo() {
	f.t.Helper()
	_, before, _ := f.c.gate.Readiness(testKey)
	f.setRepoReady(false)
	f.setRepoReady(true)
	f.waitFor("the gate to count a new Ready phase", func() bool {
		_, epoch, _ := f.c.gate.Readiness(testKey)
		return epoch > before
	})
}

func (f *fixture) waitRepoReady(ready bool) {
	f.t.Helper()
	f.waitFor(fmt.Sprintf("gate to see ready=%v", ready), func() bool {
		r, _, _ := f.c.gate.Readiness(testKey)
		return r.Ready() == ready
	})
}

// settle waits until the Upgrade cache holds what the API holds, so the next
// sync decides on current state.
func (f *fixture) settle() {
	f.t.Helper()
	f.waitFor("Upgrade cache to catch up", func() bool {
		api, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Get(f.ctx, testUpgrade, metav1.GetOptions{})
		cached, exists, _ := f.upgrades.GetIndexer().GetByKey(testKey.String())
		if apierrors.IsNotFound(err) {
			return !exists
		}
		return exists && equality.Semantic.DeepEqual(api.Object, cached.(*unstructured.Unstructured).Object)
	})
}

// next settles, then runs the worker once on the next item, stepping the
// fake clock while only delayed (rate-limited) items are left.
func (f *fixture) next() {
	f.t.Helper()
	f.settle()
	f.waitFor("an item in the queue", func() bool {
		if f.c.queue.Len() > 0 {
			return true
		}
		f.clock.Step(100 * time.Millisecond)
		return false
	})
	f.c.processNextItem(f.ctx)
}

// syncNow settles and runs one sync of the test upgrade outside the queue.
func (f *fixture) syncNow() error {
	f.t.Helper()
	f.settle()
	return f.c.sync(f.ctx, testKey, 0)
}

func (f *fixture) annotations() map[string]string {
	f.t.Helper()
	u, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Get(f.ctx, testUpgrade, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get upgrade: %v", err)
	}
	return u.GetAnnotations()
}

func (f *fixture) state() State { return State(f.annotations()[StateAnnotation]) }

// patches returns the state annotation of every patch made to the Upgrade.
func (f *fixture) patches() []State {
	var out []State
	for _, a := range f.dyn.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			var body struct {
				Metadata struct {
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(p.GetPatch(), &body); err != nil {
				f.t.Fatalf("patch body %s: %v", p.GetPatch(), err)
			}
			out = append(out, State(body.Metadata.Annotations[StateAnnotation]))
		}
	}
	return out
}

func (f *fixture) planConfigMap() (*corev1.ConfigMap, bool) {
	cm, err := f.kube.CoreV1().ConfigMaps(testNS).Get(f.ctx, PlanConfigMapName(testUpgrade), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		f.t.Fatalf("get plan: %v", err)
	}
	return cm, true
}

// events drains the fake recorder.
func (f *fixture) events() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func (f *fixture) wantNoFetch() {
	f.t.Helper()
	if calls := f.fetcher.recorded(); len(calls) > 0 {
		f.t.Fatalf("repo was asked %d times, want none: %+v", len(calls), calls)
	}
}

func TestSyncDoesNothing(t *testing.T) {
	tests := []struct {
		name    string
		upgrade *unstructured.Unstructured
	}{
		{name: "upgrade missing"},
		{name: "upgrade not completed", upgrade: testUpgradeObject(false, nil)},
		{name: "not the latest upgrade", upgrade: func() *unstructured.Unstructured {
			u := testUpgradeObject(true, nil)
			u.SetLabels(map[string]string{LatestUpgradeLabel: "false"})
			return u
		}()},
		// Harvester acts only on the Upgrade labelled latest.
		{name: "not labelled latest", upgrade: func() *unstructured.Unstructured {
			u := testUpgradeObject(true, nil)
			u.SetLabels(nil)
			return u
		}()},
		{name: "our state is Succeeded", upgrade: testUpgradeObject(true, map[string]string{StateAnnotation: string(StateSucceeded)})},
		{name: "Harvester's cleanup completed", upgrade: testUpgradeObject(true, map[string]string{HarvesterDoneAnnotation: "true"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The repo is Ready: only the Upgrade keeps the controller from acting.
			f := newFixture(t, tt.upgrade, []runtime.Object{testSlice(true)})
			f.waitRepoReady(true)
			if err := f.c.sync(f.ctx, testKey, 0); err != nil {
				t.Fatalf("sync: %v", err)
			}
			f.wantNoFetch()
			if p := f.patches(); len(p) > 0 {
				t.Errorf("patched the Upgrade: %v", p)
			}
			if _, ok := f.planConfigMap(); ok {
				t.Error("a plan ConfigMap was written")
			}
		})
	}
}

func TestMalformedUpgradeIsSkipped(t *testing.T) {
	u := testUpgradeObject(true, nil)
	u.Object["status"].(map[string]any)["conditions"] = "Completed"
	f := newFixture(t, u, []runtime.Object{testSlice(true)})
	f.waitRepoReady(true)
	if err := f.syncNow(); err != nil {
		t.Fatalf("sync returned %v; a malformed object is skipped, not retried", err)
	}
	f.wantNoFetch()
	if p := f.patches(); len(p) > 0 {
		t.Errorf("patched a malformed Upgrade: %v", p)
	}
}

func TestWaitsForRepoWithoutRequests(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(false)})
	f.waitRepoReady(false)
	if err := f.syncNow(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if got := f.state(); got != StateWaitingForRepo {
		t.Fatalf("state = %q, want %q", got, StateWaitingForRepo)
	}
	// Harvester keeps writing the Upgrade; each write is an event and a sync.
	for i := range 5 {
		u, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Get(f.ctx, testUpgrade, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		u.SetLabels(map[string]string{LatestUpgradeLabel: "true", "touched": fmt.Sprint(i)})
		if _, err := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS).Update(f.ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := f.syncNow(); err != nil {
			t.Fatalf("sync: %v", err)
		}
	}
	f.wantNoFetch()
	if got := f.patches(); len(got) != 1 || got[0] != StateWaitingForRepo {
		t.Errorf("patches = %v, want one WaitingForRepo", got)
	}
	if n := f.c.queue.NumRequeues(testKey); n != 0 {
		t.Errorf("key was requeued %d times; waiting must not spend retries", n)
	}
	ev := f.events()
	if len(ev) != 1 || !strings.Contains(ev[0], "ImageCleanupWaitingForRepo") {
		t.Errorf("events = %v, want one ImageCleanupWaitingForRepo", ev)
	}
}

func TestReadyRepoIsFetchedAndPlanned(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, map[string]string{"keep": "me"}), []runtime.Object{testSlice(false)})
	f.waitRepoReady(false)
	f.next()
	f.setRepoReady(true)
	f.next()

	calls := f.fetcher.recorded()
	if len(calls) != 2 || calls[0].version != "v1.4.2" || calls[1].version != CurrentVersion {
		t.Fatalf("fetches = %+v, want v1.4.2 then current", calls)
	}
	for _, c := range calls {
		if !c.repoReady {
			t.Errorf("fetched %s while the repo was not Ready", c.version)
		}
		want := Target{BaseURL: "http://" + testRepoIP + ":8080", Host: "upgrade-repo-" + testUpgrade + "." + testNS}
		if c.target != want {
			t.Errorf("target = %+v, want %+v (the endpoint's own address, no DNS)", c.target, want)
		}
	}
	cm, ok := f.planConfigMap()
	if !ok {
		t.Fatal("no plan ConfigMap")
	}
	if got := cm.Data[PlanKey]; got != testPlan {
		t.Errorf("plan =\n%s\nwant\n%s", got, testPlan)
	}
	if len(cm.OwnerReferences) != 1 || cm.OwnerReferences[0].UID != testUID || cm.OwnerReferences[0].Kind != "Upgrade" {
		t.Errorf("owner references = %+v, want the Upgrade", cm.OwnerReferences)
	}
	a := f.annotations()
	if State(a[StateAnnotation]) != StatePlanned || !strings.Contains(a[MessageAnnotation], "2 images of v1.4.2") {
		t.Errorf("annotations = %v, want Planned with 2 images", a)
	}
	if a["keep"] != "me" {
		t.Errorf("an unrelated annotation was lost: %v", a)
	}
	if got := f.patches(); len(got) != 2 || got[0] != StateWaitingForRepo || got[1] != StatePlanned {
		t.Errorf("patches = %v, want WaitingForRepo then Planned", got)
	}
	// A resync or restart of a Planned upgrade asks nothing of the repo.
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fetcher.recorded()); n != 2 {
		t.Errorf("fetches after Planned = %d, want still 2", n)
	}
}

func TestServiceAddressMode(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)}, func(c *Config) {
		c.Options.RepoAddress = RepoAddressService
	})
	f.waitRepoReady(true)
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	calls := f.fetcher.recorded()
	want := Target{BaseURL: "http://upgrade-repo-" + testUpgrade + "." + testNS}
	if len(calls) == 0 || calls[0].target != want {
		t.Fatalf("fetches = %+v, want target %+v", calls, want)
	}
}

func TestErrorsWhileReadyAreRetriedThenFailed(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	f.fetcher.respond = func(int, string) error {
		return &StatusError{URL: "http://repo/x", StatusCode: 500, Status: "500 Internal Server Error"}
	}
	f.waitRepoReady(true)
	maxRetries := f.c.opts.MaxRetries
	for f.state() != StateFailed {
		if n := len(f.fetcher.recorded()); n > maxRetries+1 {
			t.Fatalf("%d fetches and still not Failed", n)
		}
		f.next()
	}
	if n := len(f.fetcher.recorded()); n != maxRetries+1 {
		t.Errorf("fetches = %d, want %d (one attempt plus %d retries)", n, maxRetries+1, maxRetries)
	}
	msg := f.annotations()[MessageAnnotation]
	if !strings.Contains(msg, "500 Internal Server Error") || !strings.Contains(msg, fmt.Sprintf("%d times", maxRetries+1)) {
		t.Errorf("message %q does not say why and how often", msg)
	}
	if _, ok := f.planConfigMap(); ok {
		t.Error("a plan was written after a failure")
	}
	var warned bool
	for _, e := range f.events() {
		warned = warned || strings.HasPrefix(e, "Warning ImageCleanupFailed")
	}
	if !warned {
		t.Error("no Warning event for Failed")
	}
	if n := f.c.queue.NumRequeues(testKey); n != 0 {
		t.Errorf("NumRequeues = %d after giving up, want 0 (forgotten)", n)
	}

	// Still Ready, still failing: further events do not fetch again.
	before := len(f.fetcher.recorded())
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	if n := len(f.fetcher.recorded()); n != before {
		t.Errorf("a Failed upgrade fetched again in the same Ready phase")
	}

	// The repo restarts: not Ready re-arms (recorded), Ready fetches again.
	f.fetcher.respond = nil
	f.setRepoReady(false)
	f.next()
	if got := f.state(); got != StateWaitingForRepo {
		t.Fatalf("state after the repo went away = %q, want WaitingForRepo (re-armed)", got)
	}
	if !strings.Contains(f.annotations()[MessageAnnotation], "re-armed") {
		t.Errorf("message %q does not say the failure was re-armed", f.annotations()[MessageAnnotation])
	}
	f.setRepoReady(true)
	f.next()
	if got := f.state(); got != StatePlanned {
		t.Fatalf("state after the repo came back = %q, want Planned", got)
	}
}

func TestFailedRearmsOnFastRestartFoldedByTheQueue(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	f.waitRepoReady(true)
	f.fetcher.respond = func(int, string) error { return errors.New("connection reset by peer") }
	for f.state() != StateFailed {
		f.next()
	}
	failedFetches := len(f.fetcher.recorded())
	// Not Ready and Ready again before any worker looked: the queue folds
	// both events into one item, which only sees Ready.
	f.fetcher.respond = nil
	f.restartRepo()
	f.next()
	if got := f.state(); got != StatePlanned {
		t.Fatalf("state = %q, want Planned: a new Ready phase re-arms a failure", got)
	}
	if n := len(f.fetcher.recorded()) - failedFetches; n != 2 {
		t.Errorf("fetches after re-arm = %d, want 2", n)
	}
}

func TestFlappingRepoMakesNoBlindRetries(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	f.waitRepoReady(true)
	// The repo dies in the middle of the first fetch.
	f.fetcher.respond = func(n int, _ string) error {
		if n == 0 {
			f.setRepoReady(false)
			return errors.New("dial tcp 10.52.0.17:8080: connect: connection refused")
		}
		return nil
	}
	f.next()
	if got := f.state(); got != StateWaitingForRepo {
		t.Fatalf("state = %q, want WaitingForRepo", got)
	}
	if n := f.c.queue.NumRequeues(testKey); n != 0 {
		t.Errorf("NumRequeues = %d: a failure after the repo went away must not spend a retry", n)
	}
	if !strings.Contains(f.annotations()[MessageAnnotation], "connection refused") {
		t.Errorf("message %q does not carry the failure", f.annotations()[MessageAnnotation])
	}
	// Nothing is retried while the repo is down, however long.
	f.settle()
	f.clock.Step(time.Hour)
	for f.c.queue.Len() > 0 {
		f.c.processNextItem(f.ctx)
	}
	if n := len(f.fetcher.recorded()); n != 1 {
		t.Fatalf("fetches while down = %d, want the 1 that failed", n)
	}
	f.setRepoReady(true)
	f.next()
	if got := f.state(); got != StatePlanned {
		t.Fatalf("state = %q, want Planned", got)
	}
	calls := f.fetcher.recorded()
	if len(calls) != 3 {
		t.Errorf("fetches = %d, want 3 (1 failed, then previous and current)", len(calls))
	}
	for i, c := range calls {
		if !c.repoReady {
			t.Errorf("fetch %d was made while the repo was not Ready", i)
		}
	}
	if got := f.patches(); len(got) != 2 || got[1] != StatePlanned {
		t.Errorf("patches = %v, want WaitingForRepo then one Planned", got)
	}
}

func TestRepoRestartDuringFetchRetriesAtOnce(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	f.waitRepoReady(true)
	f.fetcher.respond = func(n int, _ string) error {
		if n == 0 {
			f.restartRepo()
			return errors.New("connection reset by peer")
		}
		return nil
	}
	f.next()
	if n := f.c.queue.NumRequeues(testKey); n != 0 {
		t.Errorf("NumRequeues = %d: a failure across a repo restart is not the repo's fault", n)
	}
	f.next() // no clock step needed: the key was re-added at once
	if got := f.state(); got != StatePlanned {
		t.Fatalf("state = %q, want Planned", got)
	}
}

func TestInvalidPreviousVersionFailsWithoutRequest(t *testing.T) {
	for _, v := range []string{"", "../../etc", "v1.4.2/x", "v1 .4"} {
		t.Run(v, func(t *testing.T) {
			u := testUpgradeObject(true, nil)
			u.Object["status"].(map[string]any)["previousVersion"] = v
			f := newFixture(t, u, []runtime.Object{testSlice(true)})
			f.waitRepoReady(true)
			if err := f.syncNow(); err != nil {
				t.Fatal(err)
			}
			f.wantNoFetch()
			a := f.annotations()
			if State(a[StateAnnotation]) != StateFailed || !strings.Contains(a[MessageAnnotation], "status.previousVersion") {
				t.Errorf("annotations = %v, want Failed naming status.previousVersion", a)
			}
		})
	}
}

func TestWrittenPlanIsNotFetchedAgain(t *testing.T) {
	// A restart between writing the ConfigMap and recording Planned.
	u := testUpgradeObject(true, map[string]string{StateAnnotation: string(StateWaitingForRepo)})
	upg, _ := UpgradeFromUnstructured(u)
	p := ComputePlan(mustParse(t, testPrevious), mustParse(t, testCurrent), DefaultOptions().Policy)
	cm, err := planConfigMap(upg, p)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, u, []runtime.Object{testSlice(true), cm})
	f.waitRepoReady(true)
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	f.wantNoFetch()
	if got := f.state(); got != StatePlanned {
		t.Errorf("state = %q, want Planned", got)
	}
}

func TestForeignConfigMapIsNotOverwritten(t *testing.T) {
	foreign := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: PlanConfigMapName(testUpgrade), Namespace: testNS},
		Data:       map[string]string{"mine": "yes"},
	}
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true), foreign})
	f.waitRepoReady(true)
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	f.wantNoFetch()
	cm, _ := f.planConfigMap()
	if cm.Data["mine"] != "yes" || len(cm.Data) != 1 {
		t.Errorf("foreign ConfigMap was changed: %v", cm.Data)
	}
	a := f.annotations()
	if State(a[StateAnnotation]) != StateFailed || !strings.Contains(a[MessageAnnotation], "not owned") {
		t.Errorf("annotations = %v, want Failed saying the ConfigMap is not owned", a)
	}
}

func TestStaleCacheConflictChangesNothing(t *testing.T) {
	u := testUpgradeObject(true, nil)
	u.SetResourceVersion("41")
	f := newFixture(t, u, []runtime.Object{testSlice(false)})
	f.dyn.PrependReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
		body := string(a.(clienttesting.PatchAction).GetPatch())
		if !strings.Contains(body, `"resourceVersion":"41"`) {
			t.Errorf("patch %s does not carry the resourceVersion it was decided on", body)
		}
		return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "harvesterhci.io", Resource: "upgrades"}, testUpgrade, errors.New("modified"))
	})
	f.waitRepoReady(false)
	f.settle()
	f.c.queue.Add(testKey)
	f.c.processNextItem(f.ctx)
	if ev := f.events(); len(ev) != 0 {
		t.Errorf("events %v emitted for a state that was not recorded", ev)
	}
	if n := f.c.queue.NumRequeues(testKey); n != 0 {
		t.Errorf("NumRequeues = %d: a stale cache is not a failure", n)
	}
	// The key comes back by itself once the cache can have caught up.
	f.waitFor("the key to come back", func() bool {
		if f.c.queue.Len() > 0 {
			return true
		}
		f.clock.Step(100 * time.Millisecond)
		return false
	})
}

// A conflict on the write that records Failed must not hand the upgrade a
// fresh retry budget: one more attempt, then Failed.
func TestConflictOnFailedKeepsTheRetryBudget(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	f.fetcher.respond = func(int, string) error { return errors.New("connection reset by peer") }
	conflicted := false
	f.dyn.PrependReactor("patch", "upgrades", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if !conflicted && strings.Contains(string(a.(clienttesting.PatchAction).GetPatch()), string(StateFailed)) {
			conflicted = true
			return true, nil, apierrors.NewConflict(schema.GroupResource{Group: "harvesterhci.io", Resource: "upgrades"}, testUpgrade, errors.New("modified"))
		}
		return false, nil, nil
	})
	f.waitRepoReady(true)
	maxRetries := f.c.opts.MaxRetries
	for f.state() != StateFailed {
		if n := len(f.fetcher.recorded()); n > maxRetries+2 {
			t.Fatalf("%d fetches: the conflict reset the retry budget", n)
		}
		f.next()
	}
	if !conflicted {
		t.Fatal("the Failed write never conflicted")
	}
	if n := len(f.fetcher.recorded()); n != maxRetries+2 {
		t.Errorf("fetches = %d, want %d (the budget plus one attempt after the conflict)", n, maxRetries+2)
	}
}

type recordingExecutor struct {
	mu    sync.Mutex
	plans []PlanRef
	out   Outcome
}

func (e *recordingExecutor) Execute(_ context.Context, _ Upgrade, p PlanRef) (Outcome, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.plans = append(e.plans, p)
	return e.out, nil
}

// plannedUpgrade is the test Upgrade in state Planned with its plan written,
// as the controller leaves them: the plan's digest on both.
func plannedUpgrade(t *testing.T, annotations map[string]string) (*unstructured.Unstructured, *corev1.ConfigMap) {
	t.Helper()
	u := testUpgradeObject(true, nil)
	upg, err := UpgradeFromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := planConfigMap(upg, ComputePlan(mustParse(t, testPrevious), mustParse(t, testCurrent), DefaultOptions().Policy))
	if err != nil {
		t.Fatal(err)
	}
	cm.UID = "plan-uid"
	a := map[string]string{StateAnnotation: string(StatePlanned), PlanDigestAnnotation: cm.Annotations[PlanDigestAnnotation]}
	maps.Copy(a, annotations)
	u.SetAnnotations(a)
	return u, cm
}

func TestPlannedUpgradeGoesToTheExecutor(t *testing.T) {
	exec := &recordingExecutor{out: Outcome{State: StateRemoving, Message: "3 Jobs running"}}
	u, cm := plannedUpgrade(t, nil)
	f := newFixture(t, u, []runtime.Object{testSlice(true), cm},
		func(c *Config) { c.Executor = exec })
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	f.wantNoFetch()
	want := PlanRef{Namespace: testNS, ConfigMap: PlanConfigMapName(testUpgrade), UID: "plan-uid", Digest: imagelist.Digest([]byte(testPlan))}
	if len(exec.plans) != 1 || exec.plans[0] != want {
		t.Errorf("executor got %+v, want %+v", exec.plans, want)
	}
	if a := f.annotations(); State(a[StateAnnotation]) != StateRemoving || a[MessageAnnotation] != "3 Jobs running" {
		t.Errorf("annotations = %v, want the executor's outcome", a)
	}
}

func TestDryRunStopsAtPlanned(t *testing.T) {
	u, cm := plannedUpgrade(t, map[string]string{MessageAnnotation: "m"})
	f := newFixture(t, u, []runtime.Object{testSlice(true), cm})
	if err := f.syncNow(); err != nil {
		t.Fatal(err)
	}
	if p := f.patches(); len(p) != 0 {
		t.Errorf("dry run patched %v", p)
	}
}

func TestRestartWithDoneAnnotationMakesNoRequest(t *testing.T) {
	for _, a := range []map[string]string{
		{StateAnnotation: string(StateSucceeded)},
		{HarvesterDoneAnnotation: "true"},
	} {
		f := newFixture(t, testUpgradeObject(true, a), []runtime.Object{testSlice(true)})
		ctx, cancel := context.WithCancel(f.ctx)
		done := make(chan error)
		go func() { done <- f.c.Run(ctx, 2) }()
		// Run processes the Add events of the initial list; flip the repo
		// so the gate enqueues again, and wait until the queue is empty.
		f.restartRepo()
		f.waitFor("queue to drain", func() bool { return f.c.queue.Len() == 0 })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		f.wantNoFetch()
		if p := f.patches(); len(p) != 0 {
			t.Errorf("%v: patched %v", a, p)
		}
	}
}

func TestThousandSliceUpdatesMakeOneFetch(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	f.waitRepoReady(true)
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error)
	go func() { done <- f.c.Run(ctx, 2) }()
	s := testSlice(true)
	for i := 1; i <= 1000; i++ {
		// Alternate a second Ready endpoint so every update changes what the
		// gate reports and enqueues the upgrade.
		s.Endpoints = s.Endpoints[:1]
		if i%2 == 1 {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.52.0.18"}})
		}
		s.Labels["generation"] = fmt.Sprint(i)
		if _, err := f.kube.DiscoveryV1().EndpointSlices(testNS).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 { // the fake watch buffers 100 events; let the informer keep up
			want := fmt.Sprint(i)
			f.waitFor("slice cache", func() bool {
				obj, ok, _ := f.slices.GetIndexer().GetByKey(testNS + "/" + s.Name)
				return ok && obj.(*discoveryv1.EndpointSlice).Labels["generation"] == want
			})
		}
	}
	f.waitFor("Planned", func() bool { return f.state() == StatePlanned })
	f.waitFor("queue to drain", func() bool { return f.c.queue.Len() == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := len(f.fetcher.recorded()); n != 2 {
		t.Errorf("fetches = %d, want 2 (previous and current, once)", n)
	}
	creates := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "create" && a.GetResource().Resource == "configmaps" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("plan ConfigMap created %d times, want 1", creates)
	}
}

func mustParse(t *testing.T, lines []string) []reference.Named {
	t.Helper()
	l, err := imagelist.Parse(strings.NewReader(strings.Join(lines, "\n")), "test")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runInBackground runs the controller's workers until the returned stop is
// called; stop returns Run's result.
func (f *fixture) runInBackground() (stop func() error) {
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- f.c.Run(ctx, 1) }()
	return func() error { cancel(); return <-done }
}

func TestStopLetsItemsInFlightFinish(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	inFetch, release := make(chan struct{}), make(chan struct{})
	f.fetcher.respond = func(n int, _ string) error {
		if n == 0 {
			close(inFetch)
			<-release // a slow repo; ignores the context on purpose
		}
		return nil
	}
	stop := f.runInBackground()
	<-inFetch
	stopped := make(chan error)
	go func() { stopped <- stop() }()
	// Once Run has stopped intake it must still wait for the item in
	// flight; it returns once the item finished, with the plan written.
	f.waitFor("Run to stop intake", f.c.queue.ShuttingDown)
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with an item in flight", err)
	default:
	}
	close(release)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if f.state() != StatePlanned {
		t.Errorf("state = %s: the item in flight did not finish", f.state())
	}
}

// The shutdown timeout runs on the injected clock: the test steps it past
// the timeout once Run waits for the item in flight.
func TestStopCancelsItemsPastTheShutdownTimeout(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(true)})
	inFetch := make(chan struct{})
	var fetchCtxErr error
	f.fetcher.ctxAware = func(ctx context.Context) {
		close(inFetch)
		<-ctx.Done() // a repo that never answers
		fetchCtxErr = ctx.Err()
	}
	stop := f.runInBackground()
	<-inFetch
	idle := f.clock.Waiters()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	f.waitFor("Run to wait for the shutdown timeout", func() bool { return f.clock.Waiters() > idle })
	select {
	case err := <-stopped:
		t.Fatalf("Run returned before the shutdown timeout, with the fetch still in flight: %v", err)
	default:
	}
	f.clock.Step(f.c.opts.ShutdownTimeout)
	if err := <-stopped; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !errors.Is(fetchCtxErr, context.Canceled) {
		t.Errorf("the stuck fetch's context: %v, want cancelled after the shutdown timeout", fetchCtxErr)
	}
	if f.state() == StateFailed {
		t.Error("a fetch cut by shutdown was recorded as the repo's failure")
	}
}

// Found on a real cluster: an upgrade already WaitingForRepo whose repo
// dies during the fetch must say so, not keep the generic message.
func TestFlapWhileWaitingSaysWhy(t *testing.T) {
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(false)})
	f.waitRepoReady(false)
	f.next()
	if f.state() != StateWaitingForRepo {
		t.Fatalf("state = %s", f.state())
	}
	f.setRepoReady(true)
	f.fetcher.respond = func(n int, _ string) error {
		if n == 0 {
			f.setRepoReady(false)
			return errors.New("EOF")
		}
		return nil
	}
	f.next()
	a := f.annotations()
	if State(a[StateAnnotation]) != StateWaitingForRepo || !strings.HasPrefix(a[MessageAnnotation], "repo went not ready during the fetch") {
		t.Errorf("annotations = %v, want WaitingForRepo saying the repo went away during the fetch", a)
	}
	// Later events while still down keep that message.
	f.next()
	if got := f.annotations()[MessageAnnotation]; !strings.HasPrefix(got, "repo went not ready during the fetch") {
		t.Errorf("message = %q: a later event overwrote it", got)
	}
}

// The repo's slices may be seen before its Upgrade: what the gate saw then
// is kept, and dropped only when the Upgrade is deleted.
func TestGateMemoryLastsUntilTheUpgradeIsDeleted(t *testing.T) {
	f := newFixture(t, nil, []runtime.Object{testSlice(false)})
	f.waitRepoReady(false)
	f.setRepoReady(true)
	if err := f.c.sync(f.ctx, testKey, 0); err != nil {
		t.Fatal(err)
	}
	if _, epoch, _ := f.c.gate.Readiness(testKey); epoch != 1 {
		t.Fatalf("epoch = %d after a sync of a not-yet-existing Upgrade, want the 1 transition seen", epoch)
	}
	res := f.dyn.Resource(informers.UpgradeGVR).Namespace(testNS)
	if _, err := res.Create(f.ctx, testUpgradeObject(false, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.settle()
	if err := res.Delete(f.ctx, testUpgrade, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitFor("the gate to forget the deleted Upgrade", func() bool {
		_, epoch, _ := f.c.gate.Readiness(testKey)
		return epoch == 0
	})
}
