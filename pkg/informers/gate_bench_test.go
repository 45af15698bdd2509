package informers_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// The benchmarks below measure the event path handler → gate → queue with
// the informer's decoding and store left out: the gate's lister reads an
// indexer filled directly (the informer holding it is never run), and each
// update event is a pre-built pair of slices. The workqueue is the real one
// (pkg/workqueue.New with the standalone controller's settings). hack/bench/run
// runs them with -count and summarises them with benchstat into BENCHMARKS.md.

// benchSlices is the number of repo slices the events cycle over: one slice
// for each of that many upgrades.
const benchSlices = 10

// benchSlice is upgrade bench-<i>'s repo slice as the EndpointSlice
// controller writes it; gen changes a label only (an update that does not
// change readiness, like most updates a busy slice sees).
func benchSlice(i int, ready bool, gen int) *discoveryv1.EndpointSlice {
	upgrade := fmt.Sprintf("bench-%d", i)
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: informers.RepoServicePrefix + upgrade + "-x7k2p", Namespace: "harvester-system",
			ResourceVersion: fmt.Sprint(gen),
			Labels: map[string]string{
				discoveryv1.LabelServiceName:             informers.RepoServicePrefix + upgrade,
				informers.UpgradeLabel:                   upgrade,
				informers.UpgradeComponentLabel:          "repo",
				"harvesterhci.io/creator":                "harvester",
				"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
				"bench/generation":                       fmt.Sprint(gen),
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{fmt.Sprintf("10.52.0.%d", 10+i)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
			NodeName:   ptr.To("harvester-node-0"),
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "harvester-system", Name: "virt-launcher-" + upgrade},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To(""), Port: ptr.To[int32](80), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
}

// benchGate is a gate over an indexer holding the slices, feeding a real
// workqueue; enqueued counts the keys the gate handed to the queue.
type benchGate struct {
	handler  cache.ResourceEventHandler
	queue    workqueue.Queue
	indexer  cache.Indexer
	enqueued atomic.Int64
}

func newBenchGate(b *testing.B, initial []*discoveryv1.EndpointSlice) *benchGate {
	b.Helper()
	q, err := workqueue.New(workqueue.DefaultSettings(), clock.RealClock{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(q.ShutDown)
	// Never run: NewGate only takes its indexer, which the benchmark fills.
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, &discoveryv1.EndpointSlice{}, 0,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	bg := &benchGate{queue: q, indexer: inf.GetIndexer()}
	selector := labels.SelectorFromSet(labels.Set{informers.UpgradeComponentLabel: "repo"})
	g, err := informers.NewGate("harvester-system", selector, func(k cache.ObjectName) {
		bg.enqueued.Add(1)
		q.Add(k)
	}, inf, clock.RealClock{})
	if err != nil {
		b.Fatal(err)
	}
	bg.handler = g.Handler()
	for _, s := range initial {
		if err := bg.indexer.Add(s); err != nil {
			b.Fatal(err)
		}
		// The informer's initial list: the gate learns each slice's readiness.
		bg.handler.OnAdd(s, true)
	}
	// Take what the initial list enqueued off the queue, so the counts that
	// follow are the updates' alone.
	for q.Len() > 0 {
		k, _ := q.Get()
		q.Forget(k)
		q.Done(k)
	}
	bg.enqueued.Store(0)
	return bg
}

// drain runs a worker that takes every key off the queue and counts it, as
// the controller's worker would before it syncs. Stop it with stop, which
// returns how many items it processed.
func (bg *benchGate) drain() (stop func() int64) {
	var processed atomic.Int64
	var wg wait.Group
	wg.Start(func() {
		for {
			k, quit := bg.queue.Get()
			if quit {
				return
			}
			processed.Add(1)
			bg.queue.Forget(k)
			bg.queue.Done(k)
		}
	})
	return func() int64 {
		bg.queue.ShutDownWithDrain()
		wg.Wait()
		return processed.Load()
	}
}

// benchFlipEvents returns, per slice, the update events that alternate its
// endpoint between Ready and not Ready: every one of them changes what the
// gate reports.
func benchFlipEvents() [benchSlices][2][2]*discoveryv1.EndpointSlice {
	var ev [benchSlices][2][2]*discoveryv1.EndpointSlice
	for i := range benchSlices {
		ready, notReady := benchSlice(i, true, 2), benchSlice(i, false, 1)
		ev[i][0] = [2]*discoveryv1.EndpointSlice{notReady, ready} // becomes Ready
		ev[i][1] = [2]*discoveryv1.EndpointSlice{ready, notReady} // goes away
	}
	return ev
}

func benchInitialSlices(ready bool) []*discoveryv1.EndpointSlice {
	var out []*discoveryv1.EndpointSlice
	for i := range benchSlices {
		out = append(out, benchSlice(i, ready, 1))
	}
	return out
}

// BenchmarkGateUpdate is the cost of one EndpointSlice update event in the
// gate's handler, up to the queue:
//
//   - unchanged: the update does not change readiness (a label or another
//     field changed, or a resync); the gate merges the Service's slices and
//     drops the event.
//   - flip: every update flips the slice's endpoint between Ready and not
//     Ready, so the gate enqueues the upgrade each time; a worker drains the
//     queue concurrently, so the queue's Add, Get and Done are in the cost.
func BenchmarkGateUpdate(b *testing.B) {
	b.Run("unchanged", func(b *testing.B) {
		bg := newBenchGate(b, benchInitialSlices(true))
		var ev [benchSlices][2]*discoveryv1.EndpointSlice
		for i := range benchSlices {
			ev[i] = [2]*discoveryv1.EndpointSlice{benchSlice(i, true, 1), benchSlice(i, true, 2)}
		}
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; b.Loop(); n++ {
			e := ev[n%benchSlices]
			bg.handler.OnUpdate(e[0], e[1])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		if got := bg.enqueued.Load(); got != 0 {
			b.Fatalf("the gate enqueued %d keys for updates that change no readiness", got)
		}
	})
	b.Run("flip", func(b *testing.B) {
		bg := newBenchGate(b, benchInitialSlices(false))
		ev := benchFlipEvents()
		stop := bg.drain()
		b.ReportAllocs()
		b.ResetTimer()
		for n := 0; b.Loop(); n++ {
			slice := n % benchSlices
			e := ev[slice][(n/benchSlices)%2]
			bg.handler.OnUpdate(e[0], e[1])
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		processed := stop()
		b.ReportMetric(float64(processed)/float64(b.N), "reconciles/update")
	})
}

// BenchmarkGate100kUpdates10Slices sends 100,000 update events over 10 repo
// slices (10 upgrades) through handler → gate → queue while one worker
// drains the queue as fast as it can (the worst case for deduplication: a
// real sync takes milliseconds, so a real worker folds more). It reports, per
// 100,000 updates, the keys the gate enqueued and the reconciles the worker
// ran:
//
//   - unchanged: no update changes readiness: no enqueue, no reconcile.
//   - flip: every update changes readiness: the gate enqueues each one, the
//     queue folds the adds of a key that is already waiting.
func BenchmarkGate100kUpdates10Slices(b *testing.B) {
	const updates = 100_000
	run := func(b *testing.B, initialReady bool, event func(n int) [2]*discoveryv1.EndpointSlice) {
		var enqueued, reconciles int64
		for b.Loop() {
			b.StopTimer()
			bg := newBenchGate(b, benchInitialSlices(initialReady))
			stop := bg.drain()
			b.StartTimer()
			for n := range updates {
				e := event(n)
				bg.handler.OnUpdate(e[0], e[1])
			}
			b.StopTimer()
			reconciles += stop()
			enqueued += bg.enqueued.Load()
			b.StartTimer()
		}
		b.ReportMetric(float64(enqueued)/float64(b.N), "enqueued/100k")
		b.ReportMetric(float64(reconciles)/float64(b.N), "reconciles/100k")
		b.ReportMetric(float64(updates*b.N)/b.Elapsed().Seconds(), "updates/s")
	}
	b.Run("unchanged", func(b *testing.B) {
		var ev [benchSlices][2]*discoveryv1.EndpointSlice
		for i := range benchSlices {
			ev[i] = [2]*discoveryv1.EndpointSlice{benchSlice(i, true, 1), benchSlice(i, true, 2)}
		}
		run(b, true, func(n int) [2]*discoveryv1.EndpointSlice { return ev[n%benchSlices] })
	})
	b.Run("flip", func(b *testing.B) {
		ev := benchFlipEvents()
		run(b, false, func(n int) [2]*discoveryv1.EndpointSlice { return ev[n%benchSlices][(n/benchSlices)%2] })
	})
}
