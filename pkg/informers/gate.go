package informers

import (
	"fmt"
	"sync"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
)

// Gate answers "can the repo of this upgrade take requests, and where" from an
// EndpointSlice informer's cache, and calls back with the Upgrade's key when
// that answer changes. It counts not-ready → ready transitions per upgrade, so
// a consumer can tell a fresh Ready phase from the one it already failed in,
// even when the queue folds the not-ready event into the ready one.
type Gate struct {
	lister    discoverylisters.EndpointSliceLister
	clock     clock.PassiveClock
	namespace string
	selector  labels.Selector
	onChange  func(cache.ObjectName)

	mu       sync.Mutex
	observed map[cache.ObjectName]observation
}

type observation struct {
	readiness Readiness
	// epoch counts the not-ready → ready transitions seen for one upgrade.
	epoch uint64
	// readySince is when the gate saw the last not-ready → ready
	// transition; zero when it has seen none (the repo was Ready at start).
	readySince time.Time
}

// NewGate reads the EndpointSlices in the cache of slices, an informer the
// caller starts and stops (it may be shared and need not be filtered: the gate
// applies namespace and selector itself). namespace "" means all namespaces.
// onChange receives the key (namespace/name) of the Upgrade whose repo
// readiness changed; it must not block, so hand it a queue's Add. The gate
// sees changes once Handler is registered on slices.
func NewGate(namespace string, selector labels.Selector, onChange func(cache.ObjectName), slices cache.SharedIndexInformer, clk clock.PassiveClock) (*Gate, error) {
	if selector == nil {
		return nil, fmt.Errorf("gate: selector is nil")
	}
	return &Gate{
		clock:     clk,
		lister:    discoverylisters.NewEndpointSliceLister(slices.GetIndexer()),
		namespace: namespace,
		selector:  selector,
		onChange:  onChange,
		observed:  map[cache.ObjectName]observation{},
	}, nil
}

// Handler is the gate's EndpointSlice event handler.
func (g *Gate) Handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { g.sliceChanged(nil, obj, false) },
		UpdateFunc: func(old, cur any) { g.sliceChanged(old, cur, false) },
		DeleteFunc: func(obj any) { g.sliceChanged(nil, obj, true) },
	}
}

// Readiness returns the current readiness of the repo of upgrade key, read
// from the informer's cache, and the number of not-ready → ready transitions
// the gate has seen for it.
func (g *Gate) Readiness(key cache.ObjectName) (Readiness, uint64, error) {
	if g.namespace != "" && key.Namespace != g.namespace {
		return Readiness{}, 0, nil // not a namespace the gate serves: never ready
	}
	r, err := g.readiness(key, nil, false)
	if err != nil {
		return Readiness{}, 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return r, g.observed[key].epoch, nil
}

// ReadySince returns when the gate saw the repo of key become Ready in epoch,
// or false if it did not see that transition (it was Ready when the gate
// started, or a later epoch began).
func (g *Gate) ReadySince(key cache.ObjectName, epoch uint64) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	o := g.observed[key]
	return o.readySince, o.epoch == epoch && !o.readySince.IsZero()
}

// Forget drops what the gate remembers of an upgrade that no longer exists.
func (g *Gate) Forget(key cache.ObjectName) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.observed, key)
}

// readiness merges the upgrade's slices from the cache. When seen is set, it
// stands in for the cached slice of the same name (or, when gone is set,
// removes it): the cache may already hold a later version, and reading the
// event's own object is what lets the gate see a not-ready state that lasted
// only one event.
func (g *Gate) readiness(key cache.ObjectName, seen *discoveryv1.EndpointSlice, gone bool) (Readiness, error) {
	all, err := g.lister.EndpointSlices(key.Namespace).List(g.selector)
	if err != nil {
		return Readiness{}, fmt.Errorf("list EndpointSlices in %s: %w", key.Namespace, err)
	}
	candidates := make([]*discoveryv1.EndpointSlice, 0, len(all)+1)
	for _, s := range all {
		if seen == nil || s.Name != seen.Name {
			candidates = append(candidates, s)
		}
	}
	if seen != nil && !gone {
		if k, ok := g.upgradeKey(seen); ok && k == key {
			candidates = append(candidates, seen)
		}
	}
	return ReadinessOf(RepoSlices(candidates, key.Name)), nil
}

func (g *Gate) sliceChanged(old, cur any, deleted bool) {
	curSlice := sliceFrom(cur)
	if curSlice == nil {
		return
	}
	// No ResourceVersion check for resyncs: observe enqueues only when the
	// readiness it computes changed, which also drops a resync.
	curKey, curOK := g.upgradeKey(curSlice)
	if oldSlice := sliceFrom(old); oldSlice != nil {
		// A slice relabelled away from an upgrade changes that upgrade too.
		if k, ok := g.upgradeKey(oldSlice); ok && (!curOK || k != curKey) {
			g.observe(k, curSlice, deleted)
		}
	}
	if curOK {
		g.observe(curKey, curSlice, deleted)
	}
}

func (g *Gate) upgradeKey(s *discoveryv1.EndpointSlice) (cache.ObjectName, bool) {
	if g.namespace != "" && s.Namespace != g.namespace {
		return cache.ObjectName{}, false
	}
	if !g.selector.Matches(labels.Set(s.Labels)) {
		return cache.ObjectName{}, false
	}
	n, ok := UpgradeOf(s)
	return cache.ObjectName{Namespace: s.Namespace, Name: n}, ok
}

// observe works out the readiness of one upgrade's repo as of this event
// (the event's slice, merged with the Service's other slices from the cache)
// and reports a change.
func (g *Gate) observe(key cache.ObjectName, ev *discoveryv1.EndpointSlice, gone bool) {
	r, err := g.readiness(key, ev, gone)
	if err != nil {
		// The cache lister does not fail; should it, the consumer's resync still converges.
		return
	}
	g.mu.Lock()
	prev, seen := g.observed[key]
	changed := !seen || !prev.readiness.Equal(r)
	next := observation{readiness: r, epoch: prev.epoch, readySince: prev.readySince}
	if seen && !prev.readiness.Ready() && r.Ready() {
		next.epoch++
		next.readySince = g.clock.Now()
	}
	g.observed[key] = next
	g.mu.Unlock()
	if changed {
		g.onChange(key)
	}
}

// sliceFrom unwraps the tombstone a delete event may carry.
func sliceFrom(obj any) *discoveryv1.EndpointSlice {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, _ := obj.(*discoveryv1.EndpointSlice)
	return s
}
