// Command upgrade-image-cleanup plans the removal of the container images a
// Harvester upgrade leaves behind, as soon as the upgrade's repo has a Ready
// endpoint. With --demo it plays a single-node upgrade against an in-memory
// cluster and a local repo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit code: 0 when the demo succeeds or the controller shuts
// down on a signal, 1 when the controller or demo fails, 2 for bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "plan" {
		return runPlan(args[1:], stdout, stderr)
	}
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "upgrade-image-cleanup: %v\n", err)
		return 2
	}
	logger, flush, err := newLogger(f.logFormat, f.verbosity, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "upgrade-image-cleanup: %v\n", err)
		return 2
	}
	defer flush()
	ctx, stop := onSignals(klog.NewContext(context.Background(), logger))
	defer stop()

	if f.demo {
		err = runDemo(ctx, f, stdout)
	} else {
		err = runController(ctx, f)
	}
	if err != nil {
		logger.Error(err, "Exiting")
		return 1
	}
	return 0
}

// runController runs against the cluster of --kubeconfig, else $KUBECONFIG,
// else the in-cluster config, until a signal.
func runController(ctx context.Context, f flags) error {
	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client for %s: %w", cfg.Host, err)
	}
	// Fail fast on an unreachable API server instead of waiting for caches forever.
	pingCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := kube.Discovery().RESTClient().Get().AbsPath("/version").Do(pingCtx).Error(); err != nil {
		return fmt.Errorf("API server %s is unreachable: %w", cfg.Host, err)
	}
	if err := checkPermissions(pingCtx, kube, requiredPermissions(f)); err != nil {
		return err
	}
	return runStandalone(ctx, standalone{kube: kube, dynamic: dyn, flags: f, clock: clock.RealClock{}})
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig, no $KUBECONFIG, and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "upgrade-image-cleanup"
	// client-go's default of 5 requests/s (burst 10) would queue the writes
	// of several upgrades becoming Ready together behind each other; the
	// controller's own traffic is a few requests per upgrade.
	cfg.QPS, cfg.Burst = 20, 40
	return cfg, nil
}

// options turns validated flags into controller options.
func (f flags) options() (cleanup.Options, error) {
	o := cleanup.DefaultOptions()
	o.Namespace = f.namespace
	o.Selector = f.selector
	o.RepoAddress = cleanup.RepoAddress(f.repoAddress)
	p, err := cleanup.NewPolicy(cleanup.DefaultRetain(), f.exclude)
	if err != nil {
		return cleanup.Options{}, fmt.Errorf("--exclude: %w", err)
	}
	// The remover's rules, with or without --dry-run: a plan written in a
	// dry run is the one a later run executes.
	o.Policy = p.WithRules(imagematch.Rules{OtherRegistries: f.removal.MatchOtherRegistries})
	o.ShutdownTimeout = f.shutdownTimeout
	return o, nil
}

// onSignals returns a context that the first SIGINT or SIGTERM cancels: the
// controller stops taking work and lets items in flight finish
// (--shutdown-timeout). A second signal exits at once, for a person who does
// not want to wait.
func onSignals(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		klog.FromContext(parent).Info("Signal received; shutting down (a second signal exits at once)")
		cancel()
		<-sigs
		klog.FromContext(parent).Info("Second signal; exiting now")
		klog.Flush()
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}
