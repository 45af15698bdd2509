package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// flags are the command line, checked: every field is usable as it is.
type flags struct {
	kubeconfig  string
	namespace   string
	selector    labels.Selector
	workers     int
	repoAddress string
	exclude     []string
	dryRun      bool
	removal     cleanup.RemovalOptions
	resync      time.Duration
	logFormat   string
	verbosity   int
	demo        bool
	metricsAddr string
	healthAddr  string
	leaderElect bool
	// leaderElectNamespace holds the Lease.
	leaderElectNamespace string
	shutdownTimeout      time.Duration
	demoOutage           time.Duration
}

// listFlag collects a repeatable flag; each use may also hold a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	f := flags{removal: cleanup.DefaultRemovalOptions()}
	var selector, nodeSelector string
	var exclude listFlag
	fs := flag.NewFlagSet("upgrade-image-cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default $KUBECONFIG, else the in-cluster config")
	fs.StringVar(&f.namespace, "namespace", cleanup.DefaultNamespace, "namespace of the Upgrades and their repo Services")
	fs.StringVar(&selector, "selector", cleanup.DefaultSelector, "label selector of the repo's EndpointSlices")
	fs.IntVar(&f.workers, "workers", 2, "upgrades processed in parallel")
	fs.StringVar(&f.repoAddress, "repo-address", string(cleanup.RepoAddressEndpoint), "how to dial the repo: endpoint (the Ready endpoint's own address, no DNS) or service (http://upgrade-repo-<upgrade>.<namespace>)")
	fs.Var(&exclude, "exclude", "glob of images never to remove, such as 'docker.io/rancher/mirrored-*'; repeatable or comma-separated")
	fs.BoolVar(&f.dryRun, "dry-run", false, "stop at Planned: write the plan ConfigMap, remove nothing")
	fs.StringVar(&nodeSelector, "node-selector", cleanup.DefaultNodeSelector, "label selector of the nodes to remove images on")
	fs.StringVar(&f.removal.RemoverImage, "remover-image", "", "image of cmd/image-remover, run by one Job per node (required unless --dry-run)")
	fs.StringVar(&f.removal.SocketPath, "runtime-socket", cleanup.DefaultSocketPath, "the container runtime's CRI socket on the nodes")
	fs.Float64Var(&f.removal.SuccessRatio, "success-ratio", 1.0, "share of nodes whose Job must succeed for the cleanup to succeed, in (0, 1]")
	fs.BoolVar(&f.removal.MatchOtherRegistries, "match-other-registries", true, "also remove a planned image found under another registry host (air-gapped registries rewrite the host)")
	fs.BoolVar(&f.removal.PruneDangling, "prune-dangling", false, "also remove untagged images that no container uses, as Harvester does")
	fs.DurationVar(&f.resync, "resync", 10*time.Minute, "period at which every Upgrade is reconciled again even without events")
	fs.StringVar(&f.logFormat, "log-format", "", "log format: json or console; default json, console with --demo")
	fs.IntVar(&f.verbosity, "v", 0, "log verbosity; 2 shows every decision's detail")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "address to serve Prometheus metrics on (/metrics), such as :8080; empty: off")
	fs.StringVar(&f.healthAddr, "health-addr", "", "address to serve /healthz and /readyz on, such as :8081; empty: off")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "run workers only while holding the Lease "+leaseName+", so several replicas can run")
	fs.StringVar(&f.leaderElectNamespace, "leader-elect-namespace", "", "namespace of the Lease; default $POD_NAMESPACE, else --namespace")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 20*time.Second, "on SIGTERM, how long items in flight may take before they are cancelled")
	fs.BoolVar(&f.demo, "demo", false, "play a single-node upgrade against an in-memory cluster and a local repo, then exit")
	fs.DurationVar(&f.demoOutage, "demo-outage", 3*time.Second, "with --demo, how long the repo stays not Ready after the upgrade completes")
	if err := fs.Parse(args); err != nil {
		return flags{}, err
	}
	if fs.NArg() > 0 {
		return flags{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if f.selector, err = labels.Parse(selector); err != nil {
		return flags{}, fmt.Errorf("--selector %q: %w", selector, err)
	}
	f.exclude = exclude
	if f.leaderElectNamespace == "" {
		f.leaderElectNamespace = os.Getenv("POD_NAMESPACE")
	}
	if f.leaderElectNamespace == "" {
		f.leaderElectNamespace = f.namespace
	}
	if f.removal.NodeSelector, err = labels.Parse(nodeSelector); err != nil {
		return flags{}, fmt.Errorf("--node-selector %q: %w", nodeSelector, err)
	}
	if f.logFormat == "" {
		f.logFormat = "json"
		if f.demo {
			f.logFormat = "console" // the demo is read by a person
		}
	}
	switch {
	case f.namespace != "" && len(validation.IsDNS1123Label(f.namespace)) > 0:
		return flags{}, fmt.Errorf("--namespace %q: %s", f.namespace, strings.Join(validation.IsDNS1123Label(f.namespace), "; "))
	case f.workers < 1:
		return flags{}, fmt.Errorf("--workers %d: need at least 1", f.workers)
	case f.repoAddress != string(cleanup.RepoAddressEndpoint) && f.repoAddress != string(cleanup.RepoAddressService):
		return flags{}, fmt.Errorf("--repo-address %q: must be endpoint or service", f.repoAddress)
	case f.resync <= 0:
		return flags{}, fmt.Errorf("--resync %v: must be positive", f.resync)
	case f.logFormat != "json" && f.logFormat != "console":
		return flags{}, fmt.Errorf("--log-format %q: must be json or console", f.logFormat)
	case f.shutdownTimeout <= 0:
		return flags{}, fmt.Errorf("--shutdown-timeout %v: must be positive", f.shutdownTimeout)
	case f.leaderElect && len(validation.IsDNS1123Label(f.leaderElectNamespace)) > 0:
		return flags{}, fmt.Errorf("--leader-elect-namespace %q: not a namespace (set it, or --namespace)", f.leaderElectNamespace)
	case f.demoOutage < 0:
		return flags{}, fmt.Errorf("--demo-outage %v: must not be negative", f.demoOutage)
	}
	if _, err := f.options(); err != nil {
		return flags{}, err
	}
	// The demo runs removal on simulated nodes and needs no image.
	if !f.dryRun && !f.demo {
		if err := f.removal.Validate(); err != nil {
			return flags{}, err
		}
	}
	return f, nil
}
