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
	"k8s.io/client-go/util/flowcontrol"
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
	cfg, err := restConfig(f.kubeconfig, f.kubeAPIQPS, f.kubeAPIBurst)
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

// restConfig loads the config of --kubeconfig, else $KUBECONFIG, else the
// in-cluster one, and gives it the controller's user agent and an API budget
// of qps requests per second, burst at once.
func restConfig(kubeconfig string, qps float64, burst int) (*rest.Config, error) {
	cfg, err := loadConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.UserAgent = "upgrade-image-cleanup"
	setAPIBudget(cfg, qps, burst)
	return cfg, nil
}

func loadConfig(kubeconfig string) (*rest.Config, error) {
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
	return cfg, nil
}

// setAPIBudget gives every client made from cfg one token bucket of qps
// tokens a second, burst deep. One, not one per client: kubernetes.NewForConfig
// and dynamic.NewForConfig would each build a bucket of their own from
// QPS and Burst, doubling the budget the flags state. Leader election and
// the Event sink share it too, with no reason to split it off: tokens go
// in the order they are asked for, and each user sends one request at a
// time (each worker, the Event sink, the elector, an informer relisting),
// so a Lease renewal waits behind a handful of requests (a handful of
// tokens: a fraction of a second at the default budget), never behind a
// worker's whole batch of Jobs; the renew deadline is 10 s.
func setAPIBudget(cfg *rest.Config, qps float64, burst int) {
	cfg.QPS, cfg.Burst = float32(qps), burst
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, burst)
}
