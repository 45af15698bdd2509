package cleanup

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/workqueue"
)

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
	// inside Run. A host may pass its own informer of typed objects
	// (Harvester's wrangler Upgrade informer) with ConvertUpgrade, so the
	// controller opens no second Upgrade watch.
	Upgrades cache.SharedIndexInformer
	// ConvertUpgrade reads an Upgrade from an object of Upgrades' cache; nil
	// means ConvertUnstructuredUpgrade. It needs Upgrades: the informer the
	// controller makes itself holds unstructured objects.
	ConvertUpgrade UpgradeConverter
	Recorder       record.EventRecorder
	Clock          clock.WithTicker
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
	// Executor removes planned images the host's own way, instead of
	// Removal's Jobs (see Executor); when both are nil, DryRun.
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
	// resyncUpgrades is true when the Upgrade informer is the host's: Run
	// then enqueues every Upgrade each Options.UpgradeResync itself.
	resyncUpgrades bool

	// memory is what the controller remembers of each upgrade beyond its
	// annotations and the gate.
	memory *memory
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
	case cfg.ConvertUpgrade != nil && cfg.Upgrades == nil:
		return nil, fmt.Errorf("cleanup: Config.ConvertUpgrade is set without Config.Upgrades, the informer whose objects it converts")
	case cfg.Options.Selector == nil:
		return nil, fmt.Errorf("cleanup: Options.Selector is nil")
	case !cfg.Options.Policy.set:
		return nil, fmt.Errorf("cleanup: Options.Policy is not set; build it with NewPolicy (DefaultOptions has Harvester's retain list)")
	case cfg.Options.MaxRetries < 0:
		return nil, fmt.Errorf("cleanup: Options.MaxRetries %d is negative", cfg.Options.MaxRetries)
	case cfg.Options.RepoAddress != RepoAddressEndpoint && cfg.Options.RepoAddress != RepoAddressService:
		return nil, fmt.Errorf("cleanup: Options.RepoAddress %q is neither %q nor %q", cfg.Options.RepoAddress, RepoAddressEndpoint, RepoAddressService)
	}
	if _, err := CatchUpVersions(Upgrade{}, cfg.Options.CatchUp); err != nil {
		return nil, fmt.Errorf("cleanup: Options.CatchUp: %w", err)
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
		kube:     cfg.KubeClient,
		dynamic:  cfg.DynamicClient,
		upgrades: NewUpgradeLister(cfg.Upgrades, cfg.ConvertUpgrade),
		queue:    q,
		fetcher:  cfg.Fetcher,
		executor: cfg.Executor,
		recorder: cfg.Recorder,
		opts:     cfg.Options,
		clock:    cfg.Clock,
		memory:   newMemory(),
		owned:    owned,
		// The informer the controller makes resyncs at UpgradeResync.
		resyncUpgrades: len(owned) == 0 && cfg.Options.UpgradeResync > 0,
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

// decideOptions are the options Decide reads.
func (c *Controller) decideOptions() DecideOptions {
	return DecideOptions{MaxRetries: c.opts.MaxRetries, RepoAddress: c.opts.RepoAddress, Skip: c.opts.Skip, CatchUp: c.opts.CatchUp}
}
