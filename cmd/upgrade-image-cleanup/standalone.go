package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// standalone is what the binary brings that a host would bring instead: its
// own clients, informers and event sink.
type standalone struct {
	kube    kubernetes.Interface
	dynamic dynamic.Interface
	flags   flags
	clock   clock.WithTicker
	fetcher cleanup.ListFetcher
}

// runStandalone builds the informers, starts them, serves metrics and
// health, and runs the controller until ctx ends: at once, or once elected
// with --leader-elect. It is the thin layer over cleanup.New that a host
// replaces with its own informers and election.
func runStandalone(ctx context.Context, s standalone) error {
	logger := klog.FromContext(ctx)
	opts, err := s.flags.options()
	if err != nil {
		return err
	}
	slices := informers.NewEndpointSliceInformer(s.kube, opts.Namespace, opts.Selector, 0)
	upgrades := informers.NewUpgradeInformer(s.dynamic, opts.Namespace, s.flags.resync)

	broadcaster := record.NewBroadcaster()
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.kube.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "upgrade-image-cleanup"})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := cleanup.Config{
		KubeClient:     s.kube,
		DynamicClient:  s.dynamic,
		EndpointSlices: slices,
		Upgrades:       upgrades,
		Recorder:       recorder,
		Clock:          s.clock,
		Fetcher:        s.fetcher,
		Registerer:     reg,
		Options:        opts,
	}
	run := []cache.SharedIndexInformer{slices, upgrades}
	if !s.flags.dryRun {
		removal := s.flags.removal
		cfg.Removal = &removal
		cfg.Jobs = informers.NewJobInformer(s.kube, opts.Namespace, cleanup.RemovalSelector(), 0)
		cfg.Nodes = informers.NewNodeInformer(s.kube, removal.NodeSelector, 0)
		run = append(run, cfg.Jobs, cfg.Nodes)
	}
	c, err := cleanup.New(cfg)
	if err != nil {
		return fmt.Errorf("build controller: %w", err)
	}
	// Informers run on every replica, elected or not, so a standby's caches
	// are warm when it takes over. They are stopped and waited for before
	// returning, so nothing of this run outlives it.
	var informersDone sync.WaitGroup
	defer informersDone.Wait()
	ctx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	for _, inf := range run {
		informersDone.Go(func() { inf.Run(ctx.Done()) })
	}

	var elect *election
	leader := func() string { return "self" } // without election this replica works at once
	if s.flags.leaderElect {
		if elect, err = newElection(ctx, s.kube, s.flags); err != nil {
			return err
		}
		leader = elect.leader
	}
	stopServing, err := serve(ctx, s.flags, reg, readiness(c, leader))
	if err != nil {
		return err
	}
	defer stopServing()

	logger.Info("Controller starting", "namespace", opts.Namespace, "selector", opts.Selector.String(),
		"repoAddress", opts.RepoAddress, "dryRun", s.flags.dryRun, "leaderElect", s.flags.leaderElect)
	work := func(ctx context.Context) error { return c.Run(ctx, s.flags.workers) }
	if elect == nil {
		return work(ctx)
	}
	return elect.run(ctx, work)
}
