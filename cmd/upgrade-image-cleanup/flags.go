package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// flags are the command line, checked: every field is usable as it is.
// Settings are what the controller runs with (internal/standalone); the
// rest is how the process reaches its cluster and logs.
type flags struct {
	kubeconfig string
	// kubeAPIQPS and kubeAPIBurst are the process's API budget: every
	// request to the API server waits for a token of one bucket.
	kubeAPIQPS   float64
	kubeAPIBurst int
	logFormat    string
	verbosity    int
	standalone.Settings
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

// commandFlag sets a command from comma-separated words, all at once: a
// later use replaces an earlier one, as with any flag but a list. Words are
// trimmed; empty ones are kept, not dropped, so that Validate refuses a
// typo instead of starting another command.
type commandFlag struct{ words *[]string }

func (c commandFlag) String() string {
	if c.words == nil {
		return "" // the zero value flag.PrintDefaults makes
	}
	return strings.Join(*c.words, ",")
}

func (c commandFlag) Set(v string) error {
	if v == "" {
		*c.words = nil
		return nil
	}
	words := strings.Split(v, ",")
	for i, w := range words {
		words[i] = strings.TrimSpace(w)
	}
	*c.words = words
	return nil
}

// parseTolerations reads --removal-tolerations: a JSON array of core/v1
// Tolerations, as a Helm chart renders its values with toJson. Strictly: an
// unknown field is refused, since a misspelt "efect" would leave the
// effect empty, which tolerates every effect; so is anything after the
// array. "" is none, and so is null, toJson's rendering of an unset value.
// The tolerations are checked whatever the mode, as the API server would
// check them in a pod: the value is wrong in a dry run too.
func parseTolerations(v string) ([]corev1.Toleration, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	bad := func(why string, err error) error {
		return fmt.Errorf("%s %q: %s: %v", cleanup.TolerationsFlag, imagelist.Truncate(v, 200), why, err)
	}
	dec := json.NewDecoder(strings.NewReader(v))
	dec.DisallowUnknownFields()
	var tols []corev1.Toleration
	if err := dec.Decode(&tols); err != nil {
		return nil, bad("not a JSON array of tolerations", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = fmt.Errorf("found %v", tok)
		}
		return nil, bad("more after the JSON array", err)
	}
	if err := cleanup.ValidateTolerations(tols); err != nil {
		return nil, err
	}
	return tols, nil
}

// The bounds of --kube-api-qps and --kube-api-burst: far above anything an
// API server should take from one controller, and, for the rate, inside
// float32, client-go's type, at both ends: a rate below float32's smallest
// number becomes 0 there, a bucket that never refills, and a controller
// that goes quiet after its first burst. One request every 100 s is
// already no budget a controller can work with.
const (
	minKubeAPIQPS   = 0.01
	maxKubeAPIQPS   = 1e6
	maxKubeAPIBurst = 1_000_000
)

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	f := flags{Settings: standalone.DefaultSettings()}
	var selector, nodeSelector, repoAddress string
	var exclude, catchUp listFlag
	var imageFsThreshold, tolerations string
	fs := flag.NewFlagSet("upgrade-image-cleanup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default $KUBECONFIG, else the in-cluster config")
	fs.Float64Var(&f.kubeAPIQPS, "kube-api-qps", standalone.DefaultKubeAPIQPS, "requests per second to the API server, sustained: one budget for the whole process (informers, writes, Events, leader election)")
	fs.IntVar(&f.kubeAPIBurst, "kube-api-burst", standalone.DefaultKubeAPIBurst, "requests to the API server that may go at once after a quiet spell, before --kube-api-qps paces them; at least --kube-api-qps")
	fs.StringVar(&f.Namespace, "namespace", f.Namespace, "namespace of the Upgrades and their repo Services")
	fs.StringVar(&selector, "selector", cleanup.DefaultSelector, "label selector of the repo's EndpointSlices")
	fs.IntVar(&f.Workers, "workers", f.Workers, "upgrades processed in parallel")
	fs.StringVar(&repoAddress, "repo-address", string(f.RepoAddress), "how to dial the repo: endpoint (the Ready endpoint's own address, no DNS) or service (http://upgrade-repo-<upgrade>.<namespace>)")
	fs.Var(&exclude, "exclude", "glob of images never to remove, such as 'docker.io/rancher/mirrored-*'; repeatable or comma-separated")
	fs.BoolVar(&f.DryRun, "dry-run", false, "stop at Planned: write the plan ConfigMap, remove nothing")
	fs.BoolVar(&f.Skip, "skip", false, "switch every cleanup off: at completion each Upgrade records Skipped and Harvester's own cleanup is switched off too (annotation "+cleanup.SkipAnnotation+"=true does it for one)")
	fs.Var(&catchUp, "catch-up", "older `versions` whose images every plan also removes (leftovers of earlier upgrades), for Upgrades without the annotation "+cleanup.CatchUpAnnotation+"; a version the repo's archive does not serve is skipped; repeatable or comma-separated")
	fs.StringVar(&imageFsThreshold, "image-fs-threshold", "0", "disk-pressure mode: remove only on nodes whose image filesystem holds at least this much (a quantity such as 50Gi, measured by the runtime's CRI ImageFsInfo); 0: remove on every node")
	fs.StringVar(&nodeSelector, "node-selector", cleanup.DefaultNodeSelector, "label selector of the nodes to remove images on")
	fs.StringVar(&tolerations, "removal-tolerations", "", "tolerations the removal Jobs have besides their own (drained, control-plane and etcd nodes), for nodes with taints of their own: a `JSON` array of core/v1 Tolerations, such as '[{\"key\":\"dedicated\",\"operator\":\"Equal\",\"value\":\"storage\",\"effect\":\"NoSchedule\"}]'; empty: none")
	fs.StringVar(&f.Removal.RemoverImage, "remover-image", "", "image the remover runs in, one Job per node: this project's, or a host's own (see --remover-command); required unless --dry-run")
	fs.Var(commandFlag{&f.Removal.RemoverCommand}, "remover-command", "command that starts the remover in --remover-image, as comma-separated `words`: the standalone image's binary by default; for a host's own image its subcommand, such as harvester,image-remover")
	fs.StringVar(&f.Removal.SocketPath, "runtime-socket", f.Removal.SocketPath, "the container runtime's CRI socket on the nodes")
	fs.Float64Var(&f.Removal.SuccessRatio, "success-ratio", f.Removal.SuccessRatio, "share of nodes whose Job must succeed for the cleanup to succeed, in (0, 1]")
	fs.BoolVar(&f.Removal.MatchOtherRegistries, "match-other-registries", f.Removal.MatchOtherRegistries, "also remove a planned image found under another registry host (air-gapped registries rewrite the host)")
	fs.BoolVar(&f.Removal.PruneDangling, "prune-dangling", f.Removal.PruneDangling, "also remove untagged images that no container uses, as Harvester does")
	fs.DurationVar(&f.Resync, "resync", f.Resync, "period at which every Upgrade is reconciled again even without events")
	fs.StringVar(&f.logFormat, "log-format", "json", "log format: json or console")
	fs.IntVar(&f.verbosity, "v", 0, "log verbosity; 2 shows every decision's detail")
	fs.StringVar(&f.MetricsAddr, "metrics-addr", "", "address to serve Prometheus metrics on (/metrics), such as :8080; empty: off")
	fs.StringVar(&f.HealthAddr, "health-addr", "", "address to serve /healthz and /readyz on, such as :8081; empty: off")
	fs.BoolVar(&f.LeaderElect, "leader-elect", false, "run workers only while holding the Lease "+standalone.LeaseName+", so several replicas can run")
	fs.StringVar(&f.LeaderElectNamespace, "leader-elect-namespace", "", "namespace of the Lease; default $POD_NAMESPACE, else --namespace")
	fs.DurationVar(&f.ShutdownTimeout, "shutdown-timeout", f.ShutdownTimeout, "on SIGTERM, how long items in flight may take before they are cancelled")
	if err := fs.Parse(args); err != nil {
		return flags{}, err
	}
	if fs.NArg() > 0 {
		return flags{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if f.Selector, err = labels.Parse(selector); err != nil {
		return flags{}, fmt.Errorf("--selector %q: %w", selector, err)
	}
	f.Exclude = exclude
	f.CatchUp = catchUp
	if f.Removal.ImageFsThreshold, err = report.ParseThreshold(imageFsThreshold); err != nil {
		return flags{}, fmt.Errorf("--image-fs-threshold %q: %w", imageFsThreshold, err)
	}
	f.RepoAddress = cleanup.RepoAddress(repoAddress)
	if f.LeaderElectNamespace == "" {
		f.LeaderElectNamespace = os.Getenv("POD_NAMESPACE")
	}
	if f.LeaderElectNamespace == "" {
		f.LeaderElectNamespace = f.Namespace
	}
	if f.Removal.NodeSelector, err = labels.Parse(nodeSelector); err != nil {
		return flags{}, fmt.Errorf("--node-selector %q: %w", nodeSelector, err)
	}
	if f.Removal.Tolerations, err = parseTolerations(tolerations); err != nil {
		return flags{}, err
	}
	switch {
	case f.Namespace != "" && len(validation.IsDNS1123Label(f.Namespace)) > 0:
		return flags{}, fmt.Errorf("--namespace %q: %s", f.Namespace, strings.Join(validation.IsDNS1123Label(f.Namespace), "; "))
	case !(f.kubeAPIQPS >= minKubeAPIQPS) || f.kubeAPIQPS > maxKubeAPIQPS:
		return flags{}, fmt.Errorf("--kube-api-qps %v: must be a number of requests per second from %v to %.0f", f.kubeAPIQPS, minKubeAPIQPS, float64(maxKubeAPIQPS))
	case f.kubeAPIBurst < 1 || f.kubeAPIBurst > maxKubeAPIBurst:
		return flags{}, fmt.Errorf("--kube-api-burst %d: must be from 1 to %d", f.kubeAPIBurst, maxKubeAPIBurst)
	case float64(f.kubeAPIBurst) < math.Ceil(f.kubeAPIQPS):
		return flags{}, fmt.Errorf("--kube-api-burst %d: below --kube-api-qps %v; set it to at least %v, a second's worth of requests", f.kubeAPIBurst, f.kubeAPIQPS, math.Ceil(f.kubeAPIQPS))
	case f.Workers < 1:
		return flags{}, fmt.Errorf("--workers %d: need at least 1", f.Workers)
	case f.RepoAddress != cleanup.RepoAddressEndpoint && f.RepoAddress != cleanup.RepoAddressService:
		return flags{}, fmt.Errorf("--repo-address %q: must be endpoint or service", repoAddress)
	case f.Resync <= 0:
		return flags{}, fmt.Errorf("--resync %v: must be positive", f.Resync)
	case f.logFormat != "json" && f.logFormat != "console":
		return flags{}, fmt.Errorf("--log-format %q: must be json or console", f.logFormat)
	case f.ShutdownTimeout <= 0:
		return flags{}, fmt.Errorf("--shutdown-timeout %v: must be positive", f.ShutdownTimeout)
	case f.LeaderElect && len(validation.IsDNS1123Label(f.LeaderElectNamespace)) > 0:
		return flags{}, fmt.Errorf("--leader-elect-namespace %q: not a namespace (set it, or --namespace)", f.LeaderElectNamespace)
	}
	if _, err := f.Options(); err != nil {
		return flags{}, err
	}
	if !f.DryRun {
		if err := f.Removal.Validate(); err != nil {
			return flags{}, err
		}
	}
	return f, nil
}
