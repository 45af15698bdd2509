//go:build bench

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	randv2 "math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Harvester v1.5.0's retry around both list fetches
// (pkg/controller/master/upgrade/upgrade_repo.go, getImagesDiffList):
// retry.OnError(wait.Backoff{Steps: 30, Duration: 10s, Factor: 1.0,
// Jitter: 0.1}, util.IsRetriableNetworkError, fetch both lists).
func harvesterBackoff() wait.Backoff {
	return wait.Backoff{Steps: 30, Duration: 10 * time.Second, Factor: 1.0, Jitter: 0.1}
}

// SimScenario is one distribution of outages and what both sides did.
type SimScenario struct {
	Name         string  `json:"name"`
	Distribution string  `json:"distribution"`
	Outages      int     `json:"outages"`
	MinOutageS   float64 `json:"minOutageS"`
	MaxOutageS   float64 `json:"maxOutageS"`

	// Ours: Ready → first request of the real controller.
	Ours Stats `json:"ours"`
	// OursWatch is the watch delay part of Ours (sampled), OursPipeline
	// the in-process wall time from the slice update to the fetch.
	OursWatch    Stats `json:"oursWatch"`
	OursPipeline Stats `json:"oursPipeline"`
	// OursFakeClockExtra is the fake-clock time the pipeline added beyond
	// the watch delay: 0 unless it waited on a timer.
	OursFakeClockExtraMaxMs float64 `json:"oursFakeClockExtraMaxMs"`
	OursWasted              int     `json:"oursWasted"`
	OursCompleted           int     `json:"oursCompleted"`

	// Retry: Ready → first successful attempt, over the outages it did not
	// abandon.
	Retry          Stats   `json:"retry"`
	RetryWasted    int     `json:"retryWasted"`
	RetryWastedAvg float64 `json:"retryWastedPerOutage"`
	RetryAbandoned int     `json:"retryAbandoned"`
	// RetryBudgetS is the time from the first to the 30th attempt, over the
	// abandoned outages (the jittered "5 minutes").
	RetryBudget Stats `json:"retryBudget"`

	RatioP50 float64 `json:"ratioP50"`
	RatioP99 float64 `json:"ratioP99"`
}

// SimResult is what bench sim writes.
type SimResult struct {
	Seed uint64 `json:"seed"`
	// WatchDelay says where the watch delay of our side came from.
	WatchDelay      string        `json:"watchDelay"`
	WatchDelayStats Stats         `json:"watchDelayStats"`
	JitterSeeded    bool          `json:"jitterSeeded"`
	Scenarios       []SimScenario `json:"scenarios"`
	Elapsed         string        `json:"elapsed"`
}

func runSim(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ExitOnError)
	out := fs.String("out", "sim.json", "result file")
	n := fs.Int("outages", 1000, "outages per scenario")
	seed := fs.Uint64("seed", 1, "seed of the outage lengths, watch delays and jitter")
	flipsFile := fs.String("watch-delays", "", "flips.json of bench flips: sample our side's watch delay from its bare-informer measurements")
	fixed := fs.Duration("watch-delay", 20*time.Millisecond, "fixed watch delay of our side when -watch-delays is not given")
	_ = fs.Parse(args)

	began := time.Now()
	res := SimResult{Seed: *seed}
	// Seed the global source that wait.Jitter draws from; check it took.
	rand.Seed(int64(*seed)) //nolint:staticcheck // deliberate: reproducible jitter
	a := rand.Float64()
	rand.Seed(int64(*seed)) //nolint:staticcheck
	res.JitterSeeded = a == rand.Float64()
	rand.Seed(int64(*seed)) //nolint:staticcheck

	rng := randv2.New(randv2.NewPCG(*seed, 0x5eed))
	var delays []time.Duration
	if *flipsFile != "" {
		var fr FlipsResult
		if err := readJSON(*flipsFile, &fr); err != nil {
			return err
		}
		for _, f := range fr.Flips {
			delays = append(delays, time.Duration(f.WatchMs*float64(time.Millisecond)))
		}
		if len(delays) == 0 {
			return fmt.Errorf("%s holds no flips", *flipsFile)
		}
		res.WatchDelay = fmt.Sprintf("sampled with replacement from the %d bare-informer watch latencies of bench flips (real API server, same machine)", len(delays))
	} else {
		delays = []time.Duration{*fixed}
		res.WatchDelay = fmt.Sprintf("fixed at %v (no bench flips measurement given)", *fixed)
	}
	res.WatchDelayStats = stats(delays)
	sampleDelay := func() time.Duration { return delays[rng.IntN(len(delays))] }

	scenarios := []struct {
		name, dist string
		lo, hi     time.Duration
	}{
		{"outages 0–120 s", "uniform on [0 s, 120 s)", 0, 120 * time.Second},
		{"tail 120–600 s", "uniform on [120 s, 600 s): past the retry's ~5-minute budget", 120 * time.Second, 600 * time.Second},
	}
	for _, sc := range scenarios {
		outages := make([]time.Duration, *n)
		for i := range outages {
			outages[i] = sc.lo + time.Duration(rng.Int64N(int64(sc.hi-sc.lo)))
		}
		r := SimScenario{Name: sc.name, Distribution: sc.dist, Outages: *n}
		r.MinOutageS, r.MaxOutageS = stats(outages).Min/1000, stats(outages).Max/1000

		// The retry approach.
		var lat, budgets []time.Duration
		for _, L := range outages {
			m := simulateRetry(L)
			r.RetryWasted += m.wasted
			if m.abandoned {
				r.RetryAbandoned++
				budgets = append(budgets, m.lastAttempt)
				continue
			}
			lat = append(lat, m.latency)
		}
		r.Retry = stats(lat)
		r.RetryBudget = stats(budgets)
		r.RetryWastedAvg = float64(r.RetryWasted) / float64(*n)

		// Our pipeline: the real controller.
		logf("sim %s: %d outages through the controller", sc.name, *n)
		ours, err := simulateOurs(outages, sampleDelay)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.name, err)
		}
		r.Ours, r.OursWatch, r.OursPipeline = stats(ours.latency), stats(ours.watch), stats(ours.pipeline)
		r.OursFakeClockExtraMaxMs = float64(ours.fakeExtraMax) / float64(time.Millisecond)
		r.OursWasted, r.OursCompleted = ours.wasted, len(ours.latency)
		if r.Ours.P50 > 0 {
			r.RatioP50 = r.Retry.P50 / r.Ours.P50
			r.RatioP99 = r.Retry.P99 / r.Ours.P99
		}
		res.Scenarios = append(res.Scenarios, r)
	}
	res.Elapsed = time.Since(began).Round(time.Millisecond).String()
	return writeJSON(*out, res)
}

type retryOutcome struct {
	latency     time.Duration // Ready → the first attempt that succeeds
	wasted      int           // attempts before Ready (each a failed DNS lookup)
	abandoned   bool          // all attempts failed: the cleanup is skipped for good
	lastAttempt time.Duration // abandoned: when the last attempt ran, from the first
}

// simulateRetry plays Harvester's retry for a repo that becomes Ready L
// after the upgrade is seen Completed. The first attempt runs at once
// (Completed seen, the reconcile fetches); a DNS lookup of the repo's
// Service fails until the repo is Ready (retriable:
// IsRetriableNetworkError) and takes no time; from Ready on, an attempt
// succeeds. This is generous to the retry: in a cluster the Service's DNS
// name also needs CoreDNS, and its traffic kube-proxy, to have caught up.
//
// The loop is wait.ExponentialBackoff's, which retry.OnError calls, with its
// time.Sleep(backoff.Step()) replaced by stepping a fake clock by the same
// backoff.Step(): the jitter is the library's own.
func simulateRetry(L time.Duration) retryOutcome {
	clk := clocktesting.NewFakeClock(time.Time{})
	start := clk.Now()
	readyAt := start.Add(L)
	attempts := 0
	fetch := func() error { // one attempt: both lists, the previous first
		attempts++
		if clk.Now().Before(readyAt) {
			return &netDNSError{}
		}
		return nil
	}
	backoff := harvesterBackoff()
	var err error
	for backoff.Steps > 0 { // wait.ExponentialBackoff
		if err = fetch(); err == nil {
			return retryOutcome{latency: clk.Since(readyAt), wasted: attempts - 1}
		}
		if backoff.Steps == 1 {
			break
		}
		clk.Step(backoff.Step())
	}
	return retryOutcome{wasted: attempts, abandoned: true, lastAttempt: clk.Since(start)}
}

// netDNSError stands for "lookup upgrade-repo-….harvester-system: no such
// host", which Harvester's IsRetriableNetworkError retries.
type netDNSError struct{}

func (*netDNSError) Error() string { return "lookup upgrade-repo: no such host" }

type oursOutcome struct {
	latency, watch, pipeline []time.Duration
	fakeExtraMax             time.Duration
	wasted                   int
}

// simFetcher is the repo as the controller sees it: it refuses (as a
// stopped VM does) until the repo of that upgrade is Ready on the fake
// clock, and records the fake and the wall time of each request.
type simFetcher struct {
	clk      *clocktesting.FakeClock
	previous []reference.Named
	current  []reference.Named

	mu      sync.Mutex
	readyAt map[string]time.Time
	calls   map[string][]simCall
	first   map[string]chan simCall
}

type simCall struct {
	fake, wall time.Time
	ok         bool
}

var errRefused = errors.New("connect: connection refused")

func (f *simFetcher) expect(upgrade string, readyAt time.Time) chan simCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan simCall, 1)
	f.readyAt[upgrade], f.first[upgrade] = readyAt, ch
	return ch
}

func (f *simFetcher) FetchList(_ context.Context, t cleanup.Target, version string) ([]reference.Named, error) {
	wall, fake := time.Now(), f.clk.Now()
	upgrade := strings.TrimPrefix(strings.SplitN(t.Host, ".", 2)[0], informers.RepoServicePrefix)
	f.mu.Lock()
	ok := !fake.Before(f.readyAt[upgrade])
	c := simCall{fake: fake, wall: wall, ok: ok}
	f.calls[upgrade] = append(f.calls[upgrade], c)
	if ch := f.first[upgrade]; ch != nil && ok {
		ch <- c
		f.first[upgrade] = nil
	}
	f.mu.Unlock()
	if !ok {
		return nil, errRefused
	}
	if version == cleanup.CurrentVersion {
		return f.current, nil
	}
	return f.previous, nil
}

const simNS = cleanup.DefaultNamespace

// simSlice is upgrade's repo slice, its endpoint Ready or not.
func simSlice(upgrade string, ready bool) *discoveryv1.EndpointSlice {
	return cleanuptest.RepoSlice(upgrade).Namespace(simNS).Ready(ready).Obj()
}

func simLists() (previous, current []reference.Named, err error) {
	var p, c []string
	for i := range 300 {
		p = append(p, fmt.Sprintf("docker.io/rancher/component-%d:v1.4.%d", i, i%7))
		if i%3 == 0 {
			c = append(c, fmt.Sprintf("docker.io/rancher/component-%d:v1.4.%d", i, i%7))
		} else {
			c = append(c, fmt.Sprintf("docker.io/rancher/component-%d:v1.5.%d", i, i%7))
		}
	}
	if previous, err = imagelist.Parse(strings.NewReader(strings.Join(p, "\n")), "previous"); err != nil {
		return nil, nil, err
	}
	current, err = imagelist.Parse(strings.NewReader(strings.Join(c, "\n")), "current")
	return previous, current, err
}

// simulateOurs runs the real controller (cleanup.New, its gate, workqueue
// and workers, with Harvester's defaults) over fake clientsets on a fake
// clock. Per outage: a fresh Upgrade is Completed while its repo slice is
// not Ready; once it reads WaitingForRepo the fake clock steps by the outage
// (the repo becomes Ready at T), then by the watch delay (the update reaches
// the informer at T+d), the slice is updated to Ready, and the fetcher
// records the first request. Latency = (fake time of the first request − T)
// + the wall time the in-process pipeline took from the update to the fetch.
func simulateOurs(outages []time.Duration, watchDelay func() time.Duration) (oursOutcome, error) {
	var out oursOutcome
	ctx, cancel := context.WithCancel(klog.NewContext(signalled, logr.Discard()))
	defer cancel()
	env := cleanuptest.NewEnv(ctx)
	// Events are dropped: a thousand outages would fill any buffer.
	env.Recorder = &record.FakeRecorder{}
	prev, cur, err := simLists()
	if err != nil {
		return out, err
	}
	clk := env.Clock
	fetcher := &simFetcher{clk: clk, previous: prev, current: cur,
		readyAt: map[string]time.Time{}, calls: map[string][]simCall{}, first: map[string]chan simCall{}}
	if _, err := env.NewController(cleanuptest.WithFetcher(fetcher), cleanuptest.WithRegistry(prometheus.NewRegistry())); err != nil {
		return out, err
	}
	if err := env.Start(); err != nil {
		return out, err
	}
	stop := env.Run(2)
	kube, dyn, upgradeInf := env.Kube, env.Dynamic, env.Upgrades
	state := func(name string) string {
		obj, ok, _ := upgradeInf.GetIndexer().GetByKey(simNS + "/" + name)
		if !ok {
			return ""
		}
		return obj.(*unstructured.Unstructured).GetAnnotations()[cleanup.StateAnnotation]
	}
	waitState := func(name string, want cleanup.State) error {
		return wait.PollUntilContextTimeout(ctx, 200*time.Microsecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return state(name) == string(want), nil
		})
	}
	for i, L := range outages {
		name := fmt.Sprintf("sim-%05d", i)
		start := clk.Now()
		readyAt := start.Add(L)
		first := fetcher.expect(name, readyAt)
		if _, err := kube.DiscoveryV1().EndpointSlices(simNS).Create(ctx, simSlice(name, false), metav1.CreateOptions{}); err != nil {
			return out, err
		}
		if _, err := dyn.Resource(informers.UpgradeGVR).Namespace(simNS).Create(ctx, cleanuptest.Upgrade(name).Namespace(simNS).Obj(), metav1.CreateOptions{}); err != nil {
			return out, err
		}
		if err := waitState(name, cleanup.StateWaitingForRepo); err != nil {
			return out, fmt.Errorf("outage %d: WaitingForRepo: %w", i, err)
		}
		clk.Step(L) // the outage: nothing on our side wakes up
		d := watchDelay()
		clk.Step(d) // the Ready update travels to the informer
		updatedAt := time.Now()
		if _, err := kube.DiscoveryV1().EndpointSlices(simNS).Update(ctx, simSlice(name, true), metav1.UpdateOptions{}); err != nil {
			return out, err
		}
		var call simCall
		select {
		case call = <-first:
		case <-time.After(10 * time.Second):
			return out, fmt.Errorf("outage %d: no request 10 s after Ready", i)
		}
		fakePart := call.fake.Sub(readyAt)
		pipeline := call.wall.Sub(updatedAt)
		out.latency = append(out.latency, fakePart+pipeline)
		out.watch = append(out.watch, d)
		out.pipeline = append(out.pipeline, pipeline)
		out.fakeExtraMax = max(out.fakeExtraMax, fakePart-d)
		if err := waitState(name, cleanup.StatePlanned); err != nil {
			return out, fmt.Errorf("outage %d: Planned: %w", i, err)
		}
	}
	fetcher.mu.Lock()
	for name, calls := range fetcher.calls {
		for _, c := range calls {
			if c.fake.Before(fetcher.readyAt[name]) {
				out.wasted++
			}
		}
	}
	fetcher.mu.Unlock()
	return out, stop()
}
