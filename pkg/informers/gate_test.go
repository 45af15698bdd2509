package informers_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

const repoNamespace = "harvester-system"

var repoSelector = labels.SelectorFromSet(labels.Set{informers.UpgradeComponentLabel: "repo"})

// filteredInformer is the informer a standalone binary uses.
func filteredInformer(c kubernetes.Interface) cache.SharedIndexInformer {
	return informers.NewEndpointSliceInformer(c, repoNamespace, repoSelector, 0)
}

// sharedInformer is an unfiltered informer on every namespace, as a shared
// factory would hand out: the gate must apply namespace and selector itself.
func sharedInformer(c kubernetes.Interface) cache.SharedIndexInformer {
	return discoveryinformers.NewEndpointSliceInformer(c, "", 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// keyRecorder is the gate's onChange: it records every key it is given.
type keyRecorder struct {
	mu   sync.Mutex
	keys []cache.ObjectName
}

func (r *keyRecorder) add(k cache.ObjectName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, k)
}

func (r *keyRecorder) snapshot() []cache.ObjectName {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys)
}

type gateFixture struct {
	t      *testing.T
	ctx    context.Context
	client *fake.Clientset
	gate   *informers.Gate
	rec    *keyRecorder
	// rv is the last resource version written. The fake tracker does not set
	// resource versions; every write sets one, as the API server would, so a
	// test can tell which version the cache holds.
	rv int
}

// newGateFixture starts the informer made by newInformer over a fake
// clientset holding initial, registers a gate on it and waits until the gate
// has seen the initial list.
func newGateFixture(t *testing.T, newInformer func(kubernetes.Interface) cache.SharedIndexInformer, initial ...*discoveryv1.EndpointSlice) *gateFixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	f := &gateFixture{t: t, ctx: ctx, rec: &keyRecorder{}}
	f.client = fake.NewClientset()
	for _, s := range initial {
		f.create(s)
	}
	inf := newInformer(f.client)
	gate, err := informers.NewGate(repoNamespace, repoSelector, f.rec.add, inf, clock.RealClock{})
	if err != nil {
		t.Fatalf("NewGate: %v", err)
	}
	reg, err := inf.AddEventHandler(gate.Handler())
	if err != nil {
		t.Fatal(err)
	}
	f.gate = gate
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced, reg.HasSynced) {
		t.Fatal("informer did not sync")
	}
	return f
}

func (f *gateFixture) nextRV() string {
	f.rv++
	return strconv.Itoa(f.rv)
}

func (f *gateFixture) create(s *discoveryv1.EndpointSlice) {
	f.t.Helper()
	s = s.DeepCopy()
	s.ResourceVersion = f.nextRV()
	if _, err := f.client.DiscoveryV1().EndpointSlices(s.Namespace).Create(f.ctx, s, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("create EndpointSlice %s/%s: %v", s.Namespace, s.Name, err)
	}
}

func (f *gateFixture) update(s *discoveryv1.EndpointSlice) {
	f.t.Helper()
	s = s.DeepCopy()
	s.ResourceVersion = f.nextRV()
	if _, err := f.client.DiscoveryV1().EndpointSlices(s.Namespace).Update(f.ctx, s, metav1.UpdateOptions{}); err != nil {
		f.t.Fatalf("update EndpointSlice %s/%s: %v", s.Namespace, s.Name, err)
	}
}

func (f *gateFixture) delete(s *discoveryv1.EndpointSlice) {
	f.t.Helper()
	if err := f.client.DiscoveryV1().EndpointSlices(s.Namespace).Delete(f.ctx, s.Name, metav1.DeleteOptions{}); err != nil {
		f.t.Fatalf("delete EndpointSlice %s/%s: %v", s.Namespace, s.Name, err)
	}
}

// waitForKeys waits until onChange has been called with exactly want, in order.
func (f *gateFixture) waitForKeys(want ...cache.ObjectName) {
	f.t.Helper()
	err := wait.PollUntilContextTimeout(f.ctx, 2*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(f.rec.snapshot()) >= len(want), nil
	})
	if got := f.rec.snapshot(); err != nil || !slices.Equal(got, want) {
		f.t.Fatalf("onChange keys = %v, want %v (wait: %v)", got, want, err)
	}
}

// expectReadiness checks what the gate says about key now.
func (f *gateFixture) expectReadiness(key cache.ObjectName, wantEndpoints []informers.Endpoint, wantEpoch uint64) {
	f.t.Helper()
	r, epoch, err := f.gate.Readiness(key)
	if err != nil {
		f.t.Fatalf("Readiness(%v): %v", key, err)
	}
	if !slices.Equal(r.Endpoints, wantEndpoints) || epoch != wantEpoch {
		f.t.Fatalf("Readiness(%v) = %v, epoch %d; want %v, epoch %d", key, r.Endpoints, epoch, wantEndpoints, wantEpoch)
	}
}

// repoSlice is a slice of the repo Service of upgrade, as the EndpointSlice
// controller writes it: the Service's labels plus the service-name label,
// the upgrade named by the Service's name only.
func repoSlice(name, upgrade string, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return cleanuptest.RepoSlice(upgrade).Name(name).ByServiceName().Endpoints(eps...).Obj()
}

func upgradeKey(name string) cache.ObjectName {
	return cache.ObjectName{Namespace: repoNamespace, Name: name}
}

func TestGateReportsReadyRepo(t *testing.T) {
	f := newGateFixture(t, filteredInformer)
	key := upgradeKey("hvst-upgrade-abc")

	f.create(repoSlice("upgrade-repo-hvst-upgrade-abc-x1", "hvst-upgrade-abc", readyEndpoint("10.52.0.17")))

	f.waitForKeys(key)
	// The first observation is not a transition: the epoch stays 0.
	f.expectReadiness(key, []informers.Endpoint{{Address: "10.52.0.17", Port: 80}}, 0)
}

func TestGateEpochCountsNotReadyToReadyTransitions(t *testing.T) {
	f := newGateFixture(t, filteredInformer)
	const upgrade = "hvst-upgrade-abc"
	key := upgradeKey(upgrade)
	one := []informers.Endpoint{{Address: "10.52.0.17", Port: 80}}
	two := []informers.Endpoint{{Address: "10.52.0.17", Port: 80}, {Address: "10.52.0.18", Port: 80}}
	notReady := endpoint(ptr.To(false), nil, "10.52.0.17")

	// Each step changes the readiness once, so each is one onChange call.
	steps := []struct {
		name          string
		do            func()
		wantEndpoints []informers.Endpoint
		wantEpoch     uint64
	}{
		{
			name:          "first observation, already ready",
			do:            func() { f.create(repoSlice("s1", upgrade, readyEndpoint("10.52.0.17"))) },
			wantEndpoints: one,
			wantEpoch:     0,
		},
		{
			name:          "ready to ready with one more endpoint",
			do:            func() { f.update(repoSlice("s1", upgrade, readyEndpoint("10.52.0.17"), readyEndpoint("10.52.0.18"))) },
			wantEndpoints: two,
			wantEpoch:     0,
		},
		{
			name:      "ready to not ready",
			do:        func() { f.update(repoSlice("s1", upgrade, notReady)) },
			wantEpoch: 0,
		},
		{
			name:          "not ready to ready",
			do:            func() { f.update(repoSlice("s1", upgrade, readyEndpoint("10.52.0.17"))) },
			wantEndpoints: one,
			wantEpoch:     1,
		},
		{
			name:      "slice deleted",
			do:        func() { f.delete(repoSlice("s1", upgrade)) },
			wantEpoch: 1,
		},
		{
			name:          "slice recreated ready",
			do:            func() { f.create(repoSlice("s1", upgrade, readyEndpoint("10.52.0.17"))) },
			wantEndpoints: one,
			wantEpoch:     2,
		},
	}
	var wantKeys []cache.ObjectName
	for _, step := range steps {
		step.do()
		wantKeys = append(wantKeys, key)
		f.waitForKeys(wantKeys...)
		f.expectReadiness(key, step.wantEndpoints, step.wantEpoch)
		if t.Failed() {
			t.Fatalf("after step %q", step.name)
		}
	}
}

func TestGateForgetClearsEpoch(t *testing.T) {
	const upgrade = "hvst-upgrade-abc"
	key := upgradeKey(upgrade)
	one := []informers.Endpoint{{Address: "10.52.0.17", Port: 80}}
	ready := repoSlice("s1", upgrade, readyEndpoint("10.52.0.17"))
	notReady := repoSlice("s1", upgrade, endpoint(ptr.To(false), nil, "10.52.0.17"))

	f := newGateFixture(t, filteredInformer, ready)
	f.waitForKeys(key)
	f.update(notReady)
	f.waitForKeys(key, key)
	f.update(ready)
	f.waitForKeys(key, key, key)
	f.expectReadiness(key, one, 1)

	f.gate.Forget(key)
	// Readiness still comes from the cache; only the count is gone.
	f.expectReadiness(key, one, 0)

	// Counting starts afresh: after Forget the next not-ready → ready is the
	// first transition again, not the second.
	f.update(notReady)
	f.waitForKeys(key, key, key, key)
	f.update(ready)
	f.waitForKeys(key, key, key, key, key)
	f.expectReadiness(key, one, 1)
}

func TestGateReadinessMergesSlicesFromCache(t *testing.T) {
	const upgrade = "hvst-upgrade-abc"
	key := upgradeKey(upgrade)
	a := repoSlice("s-a", upgrade, readyEndpoint("10.52.0.18"), readyEndpoint("10.52.0.17"))
	b := repoSlice("s-b", upgrade, readyEndpoint("10.52.0.16"), readyEndpoint("10.52.0.17"))
	// A slice of the same Service labelled by the upgrade label only.
	c := endpointSlice("s-c", discoveryv1.AddressTypeIPv4, http80(), readyEndpoint("10.52.0.19"))
	c.Labels = map[string]string{informers.UpgradeComponentLabel: "repo", informers.UpgradeLabel: upgrade}

	// The gate reads the cache, which may hold all three slices by the time
	// the first event is handled: how many onChange calls the initial list
	// makes is not fixed, only the final answer is. The fixture waited for
	// the handler's HasSynced, so every call for the initial list has been made.
	f := newGateFixture(t, filteredInformer, a, b, c)
	f.expectReadiness(key, []informers.Endpoint{
		{Address: "10.52.0.16", Port: 80},
		{Address: "10.52.0.17", Port: 80},
		{Address: "10.52.0.18", Port: 80},
		{Address: "10.52.0.19", Port: 80},
	}, 0)
	calls := f.rec.snapshot()
	if len(calls) == 0 || slices.ContainsFunc(calls, func(k cache.ObjectName) bool { return k != key }) {
		t.Fatalf("onChange keys = %v, want only %v, at least once", calls, key)
	}

	f.delete(a)
	f.waitForKeys(append(calls, key)...)
	f.expectReadiness(key, []informers.Endpoint{
		{Address: "10.52.0.16", Port: 80},
		{Address: "10.52.0.17", Port: 80},
		{Address: "10.52.0.19", Port: 80},
	}, 0)
}

func TestGateRelabelledSliceChangesBothUpgrades(t *testing.T) {
	s := repoSlice("s1", "hvst-upgrade-a", readyEndpoint("10.52.0.17"))
	f := newGateFixture(t, filteredInformer, s)
	a, b := upgradeKey("hvst-upgrade-a"), upgradeKey("hvst-upgrade-b")
	f.waitForKeys(a)

	moved := s.DeepCopy()
	moved.Labels[discoveryv1.LabelServiceName] = informers.RepoServicePrefix + "hvst-upgrade-b"
	f.update(moved)

	f.waitForKeys(a, a, b)
	f.expectReadiness(a, nil, 0)
	f.expectReadiness(b, []informers.Endpoint{{Address: "10.52.0.17", Port: 80}}, 0)
}

// TestGateFiltersNamespaceAndSelector runs the gate over an unfiltered
// informer: slices of other namespaces, or without the repo component label,
// must neither call onChange nor count toward Readiness.
func TestGateFiltersNamespaceAndSelector(t *testing.T) {
	const upgrade = "hvst-upgrade-abc"
	// ignored returns slices that carry everything needed to name upgrade
	// except the right namespace or component label.
	ignored := func(suffix string) []*discoveryv1.EndpointSlice {
		otherNS := repoSlice("other-ns"+suffix, upgrade, readyEndpoint("10.0.0.1"))
		otherNS.Namespace = "default"
		noComponent := repoSlice("no-component"+suffix, upgrade, readyEndpoint("10.0.0.2"))
		delete(noComponent.Labels, informers.UpgradeComponentLabel)
		otherComponent := repoSlice("other-component"+suffix, upgrade, readyEndpoint("10.0.0.3"))
		otherComponent.Labels[informers.UpgradeComponentLabel] = "web"
		return []*discoveryv1.EndpointSlice{otherNS, noComponent, otherComponent}
	}
	key := upgradeKey(upgrade)

	// In the initial list: HasSynced covers the handler's delivery of these.
	f := newGateFixture(t, sharedInformer, ignored("-listed")...)
	if got := f.rec.snapshot(); len(got) != 0 {
		t.Fatalf("after sync, onChange keys = %v, want none", got)
	}

	// Through the watch: events arrive in order, so once the matching slice
	// created last is reported, the ignored ones have been handled.
	for _, s := range ignored("-watched") {
		f.create(s)
	}
	f.create(repoSlice("match", upgrade, readyEndpoint("10.52.0.17")))
	f.waitForKeys(key)
	f.expectReadiness(key, []informers.Endpoint{{Address: "10.52.0.17", Port: 80}}, 0)
}

// The gate serves one namespace: an upgrade elsewhere is never ready, even
// when a shared informer holds a Ready slice for it.
func TestGateReadinessIgnoresOtherNamespaces(t *testing.T) {
	f := newGateFixture(t, sharedInformer)
	other := repoSlice("upgrade-repo-hvst-upgrade-abc-x1", "hvst-upgrade-abc", readyEndpoint("10.0.0.1"))
	other.Namespace = "default"
	f.create(other)
	// A matching slice created after it: once it is reported, the other was handled.
	f.create(repoSlice("upgrade-repo-hvst-upgrade-xyz-x1", "hvst-upgrade-xyz", readyEndpoint("10.52.0.17")))
	f.waitForKeys(upgradeKey("hvst-upgrade-xyz"))
	r, _, err := f.gate.Readiness(cache.ObjectName{Namespace: "default", Name: "hvst-upgrade-abc"})
	if err != nil || r.Ready() {
		t.Errorf("Readiness in namespace default = %+v, %v; want not ready", r, err)
	}
}

// A repo that goes not ready and back while the gate's handler lags behind
// the cache is still one not-ready → ready transition: the handler reads each
// event's own slice, not the cache, which already holds the Ready version.
func TestGateSeesAFlapTheCacheAlreadyPassed(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	inf := filteredInformer(client)
	release := make(chan struct{})
	var once sync.Once
	rec := &keyRecorder{}
	gate, err := informers.NewGate(repoNamespace, repoSelector, func(k cache.ObjectName) {
		once.Do(func() { <-release }) // the handler lags on its first event
		rec.add(k)
	}, inf, clock.RealClock{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := inf.AddEventHandler(gate.Handler())
	if err != nil {
		t.Fatal(err)
	}
	go inf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced, reg.HasSynced) {
		t.Fatal("informer did not sync")
	}
	key := upgradeKey("hvst-upgrade-abc")
	s := repoSlice("upgrade-repo-hvst-upgrade-abc-x1", "hvst-upgrade-abc", readyEndpoint("10.52.0.17"))
	write := func(ready bool, rv string, create bool) {
		t.Helper()
		s = s.DeepCopy()
		s.ResourceVersion = rv
		s.Endpoints[0].Conditions.Ready = ptr.To(ready)
		var err error
		if create {
			_, err = client.DiscoveryV1().EndpointSlices(repoNamespace).Create(ctx, s, metav1.CreateOptions{})
		} else {
			_, err = client.DiscoveryV1().EndpointSlices(repoNamespace).Update(ctx, s, metav1.UpdateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write(true, "1", true)
	write(false, "2", false)
	write(true, "3", false)
	err = wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		obj, ok, _ := inf.GetIndexer().GetByKey(repoNamespace + "/" + s.Name)
		return ok && obj.(*discoveryv1.EndpointSlice).ResourceVersion == "3", nil
	})
	if err != nil {
		t.Fatalf("cache never held version 3: %v", err)
	}
	close(release)
	err = wait.PollUntilContextTimeout(ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(rec.snapshot()) == 3, nil
	})
	if err != nil {
		t.Fatalf("onChange keys = %v, want three (ready, not ready, ready)", rec.snapshot())
	}
	r, epoch, err := gate.Readiness(key)
	if err != nil || !r.Ready() || epoch != 1 {
		t.Errorf("Readiness = %+v, epoch %d, %v; want ready in epoch 1", r, epoch, err)
	}
}
