// Command upgrade-image-cleanup plans the removal of the container images a
// Harvester upgrade leaves behind, as soon as the upgrade's repo has a Ready
// endpoint, and runs it on the nodes. Its `plan` subcommand previews a plan,
// its `status` subcommand reads a cleanup from the cluster.
// The demo is a program of its own (cmd/upgrade-image-cleanup-demo), so this
// binary links no fake clientset.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit code: 0 when the controller shuts down on a signal,
// 1 when it fails, 2 for bad flags.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "plan" {
		return runPlan(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "status" {
		return runStatus(args[1:], stdout, stderr)
	}
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "upgrade-image-cleanup: %v\n", err)
		return 2
	}
	logger, flush, err := standalone.NewLogger(f.logFormat, f.verbosity, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "upgrade-image-cleanup: %v\n", err)
		return 2
	}
	defer flush()
	ctx, stop := standalone.OnSignals(klog.NewContext(context.Background(), logger))
	defer stop()

	if err := runController(ctx, f); err != nil {
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
	return standalone.Run(ctx, standalone.Clients{Kube: kube, Dynamic: dyn, Clock: clock.RealClock{}}, f.Settings)
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
