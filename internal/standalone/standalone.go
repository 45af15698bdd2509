// Package standalone runs the cleanup controller as a process of its own:
// the informers, event sink, metrics and health endpoints, leader election,
// logger and signal handling that a host such as Harvester
// (examples/harvester-host) brings instead. The controller binary runs it
// against a cluster, the demo program against an in-memory one; it links no
// fake clientset, so the shipped binary does not either.
package standalone

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Settings are what a standalone run is asked to do: the controller binary
// fills them from its flags, the demo from its few. The command line checks
// them, so its errors can name the flag.
type Settings struct {
	// Namespace of the Upgrades and their repo Services; "" is all.
	Namespace string
	// Selector picks the repo's EndpointSlices.
	Selector    labels.Selector
	Workers     int
	RepoAddress cleanup.RepoAddress
	// Exclude are globs of images never to remove.
	Exclude []string
	// DryRun stops at Planned: no Job, no Job or Node informer.
	DryRun bool
	// Skip switches every cleanup off (cleanup.Options.Skip).
	Skip bool
	// CatchUp are older versions every plan also removes (cleanup.Options.CatchUp).
	CatchUp []string
	Removal cleanup.RemovalOptions
	// Resync is the period at which every Upgrade is reconciled again.
	Resync time.Duration
	// MetricsAddr and HealthAddr are listen addresses; "" is off.
	MetricsAddr string
	HealthAddr  string
	// LeaderElect runs the workers only while holding the Lease LeaseName
	// in LeaderElectNamespace.
	LeaderElect          bool
	LeaderElectNamespace string
	// ShutdownTimeout bounds how long items in flight may take once ctx ends.
	ShutdownTimeout time.Duration
}

// DefaultKubeAPIQPS and DefaultKubeAPIBurst are the controller binary's API
// budget (--kube-api-qps, --kube-api-burst): requests a second to the API
// server, sustained, and how many may go at once after a quiet spell.
// BENCHMARKS.md ("API budget") has the measurement they come from; the
// benchmark reads them from here.
const (
	DefaultKubeAPIQPS   = 100
	DefaultKubeAPIBurst = 200
)

// DefaultSettings are the controller binary's flag defaults, taken from
// the controller's own defaults so both programs start from the same ones.
func DefaultSettings() Settings {
	o := cleanup.DefaultOptions()
	return Settings{
		Namespace:       o.Namespace,
		Selector:        o.Selector,
		Workers:         2,
		RepoAddress:     o.RepoAddress,
		Removal:         cleanup.DefaultRemovalOptions(),
		Resync:          o.UpgradeResync,
		ShutdownTimeout: o.ShutdownTimeout,
	}
}

// Options turns the settings into controller options.
func (s Settings) Options() (cleanup.Options, error) {
	o := cleanup.DefaultOptions()
	o.Namespace = s.Namespace
	o.Selector = s.Selector
	o.RepoAddress = s.RepoAddress
	p, err := cleanup.NewPolicy(cleanup.DefaultRetain(), s.Exclude)
	if err != nil {
		return cleanup.Options{}, fmt.Errorf("--exclude: %w", err)
	}
	// The remover's rules, with or without a dry run: a plan written in a
	// dry run is the one a later run executes.
	o.Policy = p.WithRules(imagematch.Rules{OtherRegistries: s.Removal.MatchOtherRegistries})
	o.ShutdownTimeout = s.ShutdownTimeout
	o.Skip = s.Skip
	if _, err := cleanup.CatchUpVersions(cleanup.Upgrade{}, s.CatchUp); err != nil {
		return cleanup.Options{}, fmt.Errorf("--catch-up: %w", err)
	}
	o.CatchUp = s.CatchUp
	return o, nil
}

// Clients are what a standalone run talks to: a real cluster's clients in
// the binary, fake ones in the demo and the tests.
type Clients struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Clock   clock.WithTicker
	// Fetcher, when set, replaces the controller's HTTP fetcher (tests).
	Fetcher cleanup.ListFetcher
}

// Run builds the informers, starts them, serves metrics and health, and runs
// the controller until ctx ends: at once, or once elected with LeaderElect.
// It is the thin layer over cleanup.New that a host replaces with its own
// informers and election.
func Run(ctx context.Context, c Clients, s Settings) error {
	logger := klog.FromContext(ctx)
	opts, err := s.Options()
	if err != nil {
		return err
	}
	slices := informers.NewEndpointSliceInformer(c.Kube, opts.Namespace, opts.Selector, 0)
	upgrades := informers.NewUpgradeInformer(c.Dynamic, opts.Namespace, s.Resync)

	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.Kube.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "upgrade-image-cleanup"})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := cleanup.Config{
		KubeClient:     c.Kube,
		DynamicClient:  c.Dynamic,
		EndpointSlices: slices,
		Upgrades:       upgrades,
		Recorder:       recorder,
		Clock:          c.Clock,
		Fetcher:        c.Fetcher,
		Registerer:     reg,
		Options:        opts,
	}
	run := []cache.SharedIndexInformer{slices, upgrades}
	if !s.DryRun {
		removal := s.Removal
		cfg.Removal = &removal
		cfg.Jobs = informers.NewJobInformer(c.Kube, opts.Namespace, cleanup.RemovalSelector(), 0)
		cfg.Nodes = informers.NewNodeInformer(c.Kube, removal.NodeSelector, 0)
		run = append(run, cfg.Jobs, cfg.Nodes)
	}
	ctrl, err := cleanup.New(cfg)
	if err != nil {
		return fmt.Errorf("build controller: %w", err)
	}
	// Informers run on every replica, elected or not, so a standby's caches
	// are warm when it takes over. They are stopped and waited for before
	// returning, so nothing of this run outlives it.
	var informersDone wait.Group
	defer informersDone.Wait()
	ctx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	for _, inf := range run {
		informersDone.Start(func() { inf.Run(ctx.Done()) })
	}

	var elect *election
	leader := func() string { return "self" } // without election this replica works at once
	if s.LeaderElect {
		if elect, err = newElection(ctx, c.Kube, s.LeaderElectNamespace); err != nil {
			return err
		}
		leader = elect.leader
	}
	stopServing, err := serve(ctx, s.MetricsAddr, s.HealthAddr, reg, readiness(ctrl, leader))
	if err != nil {
		return err
	}
	defer stopServing()

	logger.Info("Controller starting", "namespace", opts.Namespace, "selector", opts.Selector.String(),
		"repoAddress", opts.RepoAddress, "dryRun", s.DryRun, "leaderElect", s.LeaderElect)
	work := func(ctx context.Context) error { return ctrl.Run(ctx, s.Workers) }
	if elect == nil {
		return work(ctx)
	}
	return elect.run(ctx, work)
}
