package cleanup

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

// RepoAddress says how the repo is dialed.
type RepoAddress string

const (
	// RepoAddressEndpoint dials the Ready endpoint's own address and port from
	// the EndpointSlice: no cluster DNS and no kube-proxy, both of which are
	// often still restarting when an upgrade completes.
	RepoAddressEndpoint RepoAddress = "endpoint"
	// RepoAddressService dials http://upgrade-repo-<upgrade>.<namespace>, as
	// Harvester does.
	RepoAddressService RepoAddress = "service"
)

// Options configure the controller. DefaultOptions fills every field.
type Options struct {
	// Namespace holds the Upgrades and their repo Services; "" means all.
	Namespace string
	// Selector picks the repo's EndpointSlices.
	Selector labels.Selector
	// RepoAddress says how the repo is dialed.
	RepoAddress RepoAddress
	// Policy keeps images the plan must not remove. With Config.Removal, New
	// plans under its matching rules (RemovalOptions.MatchOtherRegistries),
	// so that planner and remover agree whatever the Policy was built with.
	Policy Policy
	// Queue sets the workqueue's rate limits and retry cap.
	Queue workqueue.Settings
	// ShutdownTimeout bounds how long Run waits, once stopped, for items in
	// flight before cancelling them.
	ShutdownTimeout time.Duration
	// UpgradeResync is the resync period of the Upgrade informer the
	// controller makes when Config.Upgrades is nil: every Upgrade is synced
	// again at this period, so a key dropped after its retries comes back.
	UpgradeResync time.Duration
}

// logDetail is the verbosity of lines that explain a decision further; the
// decisions themselves log at 0.
const logDetail = 2

// staleRetryDelay leaves the informer time to deliver the newer object that
// made a write conflict; its watch event usually brings the key back sooner.
const staleRetryDelay = time.Second

// DefaultNamespace is where Harvester runs its upgrades and their repos.
const DefaultNamespace = "harvester-system"

// DefaultSelector matches the labels Harvester puts on the repo Service, which
// the EndpointSlice controller copies onto its slices.
const DefaultSelector = informers.UpgradeComponentLabel + "=repo"

// DefaultOptions are the standalone controller's defaults.
func DefaultOptions() Options {
	p, err := NewPolicy(DefaultRetain(), nil)
	if err != nil {
		panic(err) // the defaults are constants; a test covers them
	}
	return Options{
		Namespace:   DefaultNamespace,
		Selector:    labels.SelectorFromSet(labels.Set{informers.UpgradeComponentLabel: "repo"}),
		RepoAddress: RepoAddressEndpoint,
		Policy:      p,
		Queue:       workqueue.DefaultSettings(),
		// Kubernetes waits 30 s (terminationGracePeriodSeconds) before
		// SIGKILL; 20 s leaves room to log and exit.
		ShutdownTimeout: 20 * time.Second,
		UpgradeResync:   10 * time.Minute,
	}
}

// Config is what the controller is built from. The informers belong to the
// caller: the controller registers handlers on them but never starts them.
type Config struct {
	KubeClient    kubernetes.Interface
	DynamicClient dynamic.Interface
	// EndpointSlices is an informer on EndpointSlices; it may be shared and
	// unfiltered, the controller applies Options.Namespace and Selector.
	EndpointSlices cache.SharedIndexInformer
	// Upgrades is an informer made by informers.NewUpgradeInformer. When
	// nil, the controller makes its own from DynamicClient and runs it
	// inside Run (a host like Harvester has no Upgrade informer to share).
	Upgrades cache.SharedIndexInformer
	Recorder record.EventRecorder
	Clock    clock.WithTicker
	// Fetcher defaults to NewHTTPFetcher(DefaultFetcherOptions()).
	Fetcher ListFetcher
	// Removal, when set, removes planned images with one Job per node; it
	// needs Jobs and Nodes. When nil, Executor is used (default DryRun).
	Removal *RemovalOptions
	// Jobs is an informer on Jobs; it may be shared, the controller looks
	// only at its removal Jobs (RemovalSelector).
	Jobs cache.SharedIndexInformer
	// Nodes is an informer on Nodes.
	Nodes cache.SharedIndexInformer
	// Executor replaces the Job executor; tests use it.
	Executor Executor
	// Registerer receives the controller's and the workqueue's Prometheus
	// metrics; nil keeps them unexported.
	Registerer prometheus.Registerer
	Options    Options
}

// Controller plans the removal of an upgrade's old images once its repo is
// Ready. Events only enqueue Upgrade keys; the worker re-reads everything from
// the caches, so any event, resync or restart converges to the same result.
type Controller struct {
	kube     kubernetes.Interface
	dynamic  dynamic.Interface
	upgrades UpgradeLister
	synced   []cache.InformerSynced
	gate     *informers.Gate
	queue    workqueue.Queue
	fetcher  ListFetcher
	executor Executor
	recorder record.EventRecorder
	opts     Options
	clock    clock.WithTicker
	metrics  *metrics

	registrations []registration
	// owned are informers the controller made itself; Run runs them.
	owned []cache.SharedIndexInformer

	mu sync.Mutex
	// failedIn holds, per upgrade in state Failed, the gate's Ready epoch it
	// failed in; a later epoch (the repo went away and came back) re-arms it.
	failedIn map[workqueue.Key]uint64
	// measured holds, per upgrade, the Ready epoch (plus one) whose first
	// request was already timed.
	measured map[workqueue.Key]uint64
	// finalized holds the upgrades whose removal totals were counted.
	finalized map[types.UID]bool
}

// New builds a controller and registers its handlers on the informers.
func New(cfg Config) (*Controller, error) {
	switch {
	case cfg.KubeClient == nil:
		return nil, fmt.Errorf("cleanup: Config.KubeClient is nil")
	case cfg.DynamicClient == nil:
		return nil, fmt.Errorf("cleanup: Config.DynamicClient is nil")
	case cfg.EndpointSlices == nil:
		return nil, fmt.Errorf("cleanup: Config.EndpointSlices is nil")
	case cfg.Recorder == nil:
		return nil, fmt.Errorf("cleanup: Config.Recorder is nil")
	case cfg.Clock == nil:
		return nil, fmt.Errorf("cleanup: Config.Clock is nil")
	case cfg.Options.Selector == nil:
		return nil, fmt.Errorf("cleanup: Options.Selector is nil")
	case !cfg.Options.Policy.set:
		return nil, fmt.Errorf("cleanup: Options.Policy is not set; build it with NewPolicy (DefaultOptions has Harvester's retain list)")
	case cfg.Options.RepoAddress != RepoAddressEndpoint && cfg.Options.RepoAddress != RepoAddressService:
		return nil, fmt.Errorf("cleanup: Options.RepoAddress %q is neither %q nor %q", cfg.Options.RepoAddress, RepoAddressEndpoint, RepoAddressService)
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	provider, err := workqueue.NewPrometheusProvider(reg)
	if err != nil {
		return nil, fmt.Errorf("register workqueue metrics: %w", err)
	}
	var owned []cache.SharedIndexInformer
	if cfg.Upgrades == nil {
		cfg.Upgrades = informers.NewUpgradeInformer(cfg.DynamicClient, cfg.Options.Namespace, cfg.Options.UpgradeResync)
		owned = append(owned, cfg.Upgrades)
	}
	q, err := workqueue.New(cfg.Options.Queue, cfg.Clock, provider)
	if err != nil {
		return nil, err
	}
	c := &Controller{
		kube:      cfg.KubeClient,
		dynamic:   cfg.DynamicClient,
		upgrades:  NewUpgradeLister(cfg.Upgrades),
		queue:     q,
		fetcher:   cfg.Fetcher,
		executor:  cfg.Executor,
		recorder:  cfg.Recorder,
		opts:      cfg.Options,
		clock:     cfg.Clock,
		failedIn:  map[workqueue.Key]uint64{},
		measured:  map[workqueue.Key]uint64{},
		finalized: map[types.UID]bool{},
		owned:     owned,
	}
	if c.fetcher == nil {
		c.fetcher = NewHTTPFetcher(DefaultFetcherOptions())
	}
	if cfg.Executor == nil && cfg.Removal != nil {
		// Plan under the rules the remover will match by: one definition of
		// the same image on both sides.
		c.opts.Policy = c.opts.Policy.WithRules(imagematch.Rules{OtherRegistries: cfg.Removal.MatchOtherRegistries})
	}
	err = c.register(cfg)
	if err == nil {
		c.metrics, err = newMetrics(reg, func() []Upgrade { return c.upgrades.List(c.opts.Namespace) })
	}
	if err != nil {
		// Leave no queue goroutine and no handler on the caller's (possibly
		// shared) informers behind.
		q.ShutDown()
		c.unregister()
		return nil, err
	}
	if c.executor == nil {
		c.executor = DryRun{}
	}
	return c, nil
}

// registration is a handler the controller added to a caller's informer.
type registration struct {
	informer cache.SharedIndexInformer
	handle   cache.ResourceEventHandlerRegistration
}

// handle registers h on inf and makes Run wait until h has seen inf's
// initial list.
func (c *Controller) handle(inf cache.SharedIndexInformer, what string, h cache.ResourceEventHandler) error {
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return fmt.Errorf("register %s handler: %w", what, err)
	}
	c.registrations = append(c.registrations, registration{inf, reg})
	c.synced = append(c.synced, reg.HasSynced)
	return nil
}

func (c *Controller) unregister() {
	for _, r := range c.registrations {
		_ = r.informer.RemoveEventHandler(r.handle)
	}
	c.registrations = nil
}

func (c *Controller) register(cfg Config) error {
	gate, err := informers.NewGate(cfg.Options.Namespace, cfg.Options.Selector, c.queue.Add, cfg.EndpointSlices, c.clock)
	if err != nil {
		return err
	}
	c.gate = gate
	if err := c.handle(cfg.EndpointSlices, "EndpointSlice", gate.Handler()); err != nil {
		return err
	}
	err = c.handle(cfg.Upgrades, "Upgrade", cache.ResourceEventHandlerFuncs{
		AddFunc: c.enqueueUpgrade,
		// Resyncs of unchanged Upgrades are kept on purpose: they bring back
		// keys dropped after their retries, so nothing is lost for good.
		UpdateFunc: func(_, cur any) { c.enqueueUpgrade(cur) },
		DeleteFunc: c.upgradeDeleted,
	})
	if err != nil {
		return err
	}
	if c.executor == nil && cfg.Removal != nil {
		return c.registerRemoval(cfg)
	}
	return nil
}

// registerRemoval builds the Job executor and watches Jobs and Nodes: a Job
// that changes brings its upgrade back, and so does a node that joins or
// leaves while a removal is under way.
func (c *Controller) registerRemoval(cfg Config) error {
	if cfg.Jobs == nil || cfg.Nodes == nil {
		return fmt.Errorf("cleanup: Config.Removal needs Config.Jobs and Config.Nodes")
	}
	if err := cfg.Removal.Validate(); err != nil {
		return err
	}
	c.executor = &jobExecutor{
		kube:  c.kube,
		nodes: corelisters.NewNodeLister(cfg.Nodes.GetIndexer()),
		jobs:  batchlisters.NewJobLister(cfg.Jobs.GetIndexer()),
		opts:  *cfg.Removal,
	}
	err := c.handle(cfg.Jobs, "Job", cache.ResourceEventHandlerFuncs{
		AddFunc:    c.enqueueJobUpgrade,
		UpdateFunc: func(_, cur any) { c.enqueueJobUpgrade(cur) },
		DeleteFunc: c.enqueueJobUpgrade,
	})
	if err != nil {
		return err
	}
	return c.handle(cfg.Nodes, "Node", cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { c.enqueueRemovals() },
		UpdateFunc: func(old, cur any) { c.nodeChanged(old, cur, cfg.Removal.NodeSelector) },
		DeleteFunc: func(any) { c.enqueueRemovals() },
	})
}

func (c *Controller) enqueueJobUpgrade(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	j, ok := obj.(*batchv1.Job)
	if !ok || !RemovalSelector().Matches(labels.Set(j.Labels)) || j.Labels[informers.UpgradeLabel] == "" {
		return
	}
	c.queue.Add(cache.ObjectName{Namespace: j.Namespace, Name: j.Labels[informers.UpgradeLabel]})
}

// nodeChanged reacts only to what changes the target set: the node's labels
// (selector) and its deletion. Status heartbeats, every few seconds per node,
// are dropped here.
func (c *Controller) nodeChanged(old, cur any, sel labels.Selector) {
	o, ok1 := old.(*corev1.Node)
	n, ok2 := cur.(*corev1.Node)
	if ok1 && ok2 && sel.Matches(labels.Set(o.Labels)) == sel.Matches(labels.Set(n.Labels)) &&
		(o.DeletionTimestamp == nil) == (n.DeletionTimestamp == nil) {
		return
	}
	c.enqueueRemovals()
}

// enqueueRemovals enqueues every upgrade whose removal is planned or running.
func (c *Controller) enqueueRemovals() {
	for _, u := range c.upgrades.List(c.opts.Namespace) {
		if s := State(u.Annotations[StateAnnotation]); s == StatePlanned || s == StateRemoving {
			c.queue.Add(u.Key())
		}
	}
}

func (c *Controller) enqueueUpgrade(obj any) {
	key, err := cache.DeletionHandlingObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("upgrade event: %w", err))
		return
	}
	c.queue.Add(key)
}

// HasSynced reports whether every informer the controller uses has been
// listed and its handlers have seen the initial list.
func (c *Controller) HasSynced() bool {
	for _, s := range c.synced {
		if !s() {
			return false
		}
	}
	return true
}

// upgradeDeleted drops what the controller and its gate remember of an
// Upgrade, so memory follows the Upgrades that exist.
func (c *Controller) upgradeDeleted(obj any) {
	key, err := cache.DeletionHandlingObjectToName(obj)
	if err != nil {
		utilruntime.HandleError(fmt.Errorf("upgrade delete event: %w", err))
		return
	}
	c.gate.Forget(key)
	c.forgetFailure(key)
}

// Run waits for the informers' caches, runs workers until ctx ends, then
// stops taking items, lets the items in flight finish and returns.
func (c *Controller) Run(ctx context.Context, workers int) error {
	if workers < 1 {
		return fmt.Errorf("cleanup: workers is %d, need at least 1", workers)
	}
	logger := klog.FromContext(ctx)
	defer c.queue.ShutDown()
	// Informers the controller owns run for as long as Run does, and are
	// waited for before it returns.
	var ownedDone sync.WaitGroup
	ownedCtx, stopOwned := context.WithCancel(ctx)
	defer func() { stopOwned(); ownedDone.Wait() }()
	for _, inf := range c.owned {
		ownedDone.Go(func() { inf.Run(ownedCtx.Done()) })
	}
	logger.Info("Waiting for informer caches")
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		// Only a stop ends the wait: a clean shutdown, if an early one.
		logger.Info("Stopped before the informer caches synced")
		return nil
	}
	logger.Info("Starting workers", "workers", workers)
	// Items in flight run on a context of their own, cut only
	// ShutdownTimeout after ctx ends: a stop lets a fetch, a plan write or a
	// state patch finish instead of leaving it half done.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			// Checking ctx before each item stops intake at once.
			for ctx.Err() == nil && c.processNextItem(workCtx) {
			}
		})
	}
	<-ctx.Done()
	logger.Info("Stopping: no new items; letting items in flight finish", "timeout", c.opts.ShutdownTimeout)
	c.queue.ShutDown()
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(c.opts.ShutdownTimeout):
		logger.Info("Shutdown timeout reached; cancelling items in flight")
		cancelWork()
		<-finished
	}
	logger.Info("Workers stopped")
	return nil
}

func (c *Controller) processNextItem(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	logger := klog.FromContext(ctx).WithValues("upgrade", key.String())
	ctx = klog.NewContext(ctx, logger)
	attempt := c.queue.NumRequeues(key)
	err := c.sync(ctx, key, attempt)
	switch {
	case err == nil:
		c.queue.Forget(key)
	case ctx.Err() != nil:
		// Shutting down: the queue takes no more items; a restart re-reads all.
	case errors.Is(err, errStale):
		// Not a failure: decide again once the cache has the newer object,
		// keeping the retry count a fetch failure may have used.
		logger.V(logDetail).Info("Upgrade changed since it was read; syncing again")
		c.queue.AddAfter(key, staleRetryDelay)
	case attempt < c.opts.Queue.MaxRetries:
		logger.Info("Sync failed; retrying with backoff", "attempt", attempt+1, "err", err)
		c.queue.AddRateLimited(key)
	default:
		// Dropped, not lost: the next event or resync brings the key back.
		logger.Error(err, "Sync failed; dropping until the next event", "attempts", attempt+1)
		c.queue.Forget(key)
	}
	return true
}
