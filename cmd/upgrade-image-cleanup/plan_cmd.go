package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagematch"
)

// Output formats of the plan subcommand.
const (
	planOutputTable = "table"
	planOutputJSON  = "json"
)

// planAPITimeout bounds each API request of the live mode, so an unreachable
// API server is reported instead of hanging the command (the same bound as the
// controller's start-up ping).
const planAPITimeout = 15 * time.Second

// planFlags is the plan subcommand's command line, checked: exactly one of the
// two modes is set, and every field is usable as it is.
type planFlags struct {
	// Offline mode: two list files.
	previous, current string
	// Live mode: an Upgrade on the cluster.
	upgrade     string
	namespace   string
	kubeconfig  string
	selector    labels.Selector
	repoAddress cleanup.RepoAddress
	// catchUp are the controller's --catch-up versions, for an Upgrade
	// without the catch-up annotation.
	catchUp []string

	policy cleanup.Policy
	output string
}

func (f planFlags) live() bool { return f.upgrade != "" }

// liveOnlyFlags make sense only with --upgrade; given with the files they would
// be silently ignored, which hides a mistaken command line.
var liveOnlyFlags = []string{"namespace", "kubeconfig", "selector", "repo-address", "catch-up"}

func parsePlanFlags(args []string, stderr io.Writer) (planFlags, error) {
	var f planFlags
	var selector, repoAddress string
	var exclude, catchUp listFlag
	var matchOther bool
	fs := flag.NewFlagSet("upgrade-image-cleanup plan", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  upgrade-image-cleanup plan --upgrade NAME [--namespace NS] [flags]   what the controller would remove for a live upgrade
  upgrade-image-cleanup plan --previous FILE --current FILE [flags]    the same, offline, from two image lists

Nothing is changed: the live mode only reads the Upgrade and its repo's
EndpointSlices, and fetches the two lists from the repo as the controller does.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.previous, "previous", "", "offline: the previous version's image list (image_list_all.txt); needs --current")
	fs.StringVar(&f.current, "current", "", "offline: the current version's image list; needs --previous")
	fs.StringVar(&f.upgrade, "upgrade", "", "live: name of the Upgrade whose repo serves the lists")
	fs.StringVar(&f.namespace, "namespace", cleanup.DefaultNamespace, "live: namespace of the Upgrade and its repo Service")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "live: kubeconfig file; default $KUBECONFIG, else the in-cluster config")
	fs.StringVar(&selector, "selector", cleanup.DefaultSelector, "live: label selector of the repo's EndpointSlices")
	fs.StringVar(&repoAddress, "repo-address", string(cleanup.RepoAddressEndpoint), "live: how to dial the repo: endpoint (the Ready endpoint's own address, no DNS) or service (http://upgrade-repo-<upgrade>.<namespace>)")
	fs.Var(&catchUp, "catch-up", "live: as the controller's flag: older `versions` whose images the plan also removes, unless the Upgrade has the annotation "+cleanup.CatchUpAnnotation+"; repeatable or comma-separated")
	fs.Var(&exclude, "exclude", "glob of images never to remove, such as 'docker.io/rancher/mirrored-*'; repeatable or comma-separated")
	fs.BoolVar(&matchOther, "match-other-registries", true, "as the controller's flag: a current image under another registry host with the same path and tag keeps a previous one")
	fs.StringVar(&f.output, "o", planOutputTable, "output format: table or json")
	fs.StringVar(&f.output, "output", planOutputTable, "same as -o")
	if err := fs.Parse(args); err != nil {
		return planFlags{}, err
	}
	if fs.NArg() > 0 {
		return planFlags{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })

	offline := set["previous"] || set["current"]
	switch {
	case set["upgrade"] && offline:
		return planFlags{}, errors.New("--upgrade (live) cannot be combined with --previous/--current (offline): choose one mode")
	case !set["upgrade"] && !offline:
		return planFlags{}, errors.New("need --upgrade NAME (live) or --previous FILE and --current FILE (offline)")
	case offline && f.previous == "":
		return planFlags{}, errors.New("--previous FILE is required with --current (and must not be empty)")
	case offline && f.current == "":
		return planFlags{}, errors.New("--current FILE is required with --previous (and must not be empty)")
	}
	if offline {
		for _, name := range liveOnlyFlags {
			if set[name] {
				return planFlags{}, fmt.Errorf("--%s applies only with --upgrade, not with --previous/--current", name)
			}
		}
	} else {
		if errs := validation.IsDNS1123Subdomain(f.upgrade); len(errs) > 0 {
			return planFlags{}, fmt.Errorf("--upgrade %q: %s", f.upgrade, strings.Join(errs, "; "))
		}
		// The Upgrade is read by name, so unlike the controller's --namespace
		// "" (all) is not an answer here.
		if errs := validation.IsDNS1123Label(f.namespace); len(errs) > 0 {
			return planFlags{}, fmt.Errorf("--namespace %q: %s", f.namespace, strings.Join(errs, "; "))
		}
		var err error
		if f.selector, err = labels.Parse(selector); err != nil {
			return planFlags{}, fmt.Errorf("--selector %q: %w", selector, err)
		}
		if repoAddress != string(cleanup.RepoAddressEndpoint) && repoAddress != string(cleanup.RepoAddressService) {
			return planFlags{}, fmt.Errorf("--repo-address %q: must be endpoint or service", repoAddress)
		}
		f.repoAddress = cleanup.RepoAddress(repoAddress)
		if _, err := cleanup.CatchUpVersions(cleanup.Upgrade{}, catchUp); err != nil {
			return planFlags{}, fmt.Errorf("--catch-up: %w", err)
		}
		f.catchUp = catchUp
	}
	if f.output != planOutputTable && f.output != planOutputJSON {
		return planFlags{}, fmt.Errorf("-o %q: must be table or json", f.output)
	}
	// The controller's own retain list, so the preview is the plan it writes.
	p, err := cleanup.NewPolicy(cleanup.DefaultRetain(), exclude)
	if err != nil {
		return planFlags{}, fmt.Errorf("--exclude: %w", err)
	}
	f.policy = p.WithRules(imagematch.Rules{OtherRegistries: matchOther})
	return f, nil
}

// runPlan is the plan subcommand: it prints what the controller would remove,
// and what it keeps by which rule, without changing anything. Exit code 0 when
// the plan is printed, 1 for a runtime failure (cluster unreachable, Upgrade
// missing, repo not Ready, fetch failed), 2 for bad flags or a bad list file.
func runPlan(args []string, stdout, stderr io.Writer) int {
	const prefix = "upgrade-image-cleanup plan: "
	f, err := parsePlanFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", prefix, err)
		return 2
	}

	var report planReport
	if f.live() {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		report, err = runPlanLive(ctx, f)
		if err != nil {
			fmt.Fprintf(stderr, "%s%v\n", prefix, err)
			return 1
		}
	} else {
		plan, err := planOffline(f.previous, f.current, f.policy)
		if err != nil {
			// A file that cannot be read or parsed is bad input, like a bad flag.
			fmt.Fprintf(stderr, "%s%v\n", prefix, err)
			return 2
		}
		report = newPlanReport(f.previous+" -> "+f.current, "", plan)
	}

	if f.output == planOutputJSON {
		err = report.writeJSON(stdout)
	} else {
		err = report.writeTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%swrite output: %v\n", prefix, err)
		return 1
	}
	return 0
}

// runPlanLive builds the clients from the flags and calls planLive with the
// controller's own HTTP fetcher and its limits.
func runPlanLive(ctx context.Context, f planFlags) (planReport, error) {
	cfg, err := restConfig(f.kubeconfig, standalone.DefaultKubeAPIQPS, standalone.DefaultKubeAPIBurst)
	if err != nil {
		return planReport{}, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = planAPITimeout
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return planReport{}, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return planReport{}, fmt.Errorf("dynamic client for %s: %w", cfg.Host, err)
	}
	o := liveOptions{
		Namespace:   f.namespace,
		Name:        f.upgrade,
		Selector:    f.selector,
		RepoAddress: f.repoAddress,
		CatchUp:     f.catchUp,
		Policy:      f.policy,
	}
	plan, previous, err := planLive(ctx, kube, dyn, cleanup.NewHTTPFetcher(cleanup.DefaultFetcherOptions()), o)
	if err != nil {
		return planReport{}, err
	}
	return newPlanReport("upgrade "+f.namespace+"/"+f.upgrade, previous, plan), nil
}

// planOffline computes the plan from two list files with the given policy.
// Either list being empty is an error, as it is for the controller
// (cleanup.ErrEmptyList): an empty previous list would hide a wrong file
// behind an empty plan, an empty current list would plan every old image.
func planOffline(previousFile, currentFile string, p cleanup.Policy) (cleanup.Plan, error) {
	previous, err := readListFile(previousFile)
	if err != nil {
		return cleanup.Plan{}, err
	}
	current, err := readListFile(currentFile)
	if err != nil {
		return cleanup.Plan{}, err
	}
	return cleanup.ComputePlan(previous, current, p), nil
}

// readListFile parses one list file with the parser the controller and the
// remover use; a bad line fails the whole file, naming file and line.
func readListFile(name string) ([]reference.Named, error) {
	file, err := os.Open(name)
	if err != nil {
		return nil, err // *fs.PathError names the file
	}
	defer file.Close()
	list, err := imagelist.Parse(file, name)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%s: %w", name, cleanup.ErrEmptyList)
	}
	return list, nil
}

// liveOptions say which Upgrade to plan for and how to reach its repo.
type liveOptions = cleanup.PreviewOptions

// planLive computes the plan the controller would write for one live
// Upgrade through cleanup.Preview: the controller's own slice selection,
// Decide, fetch and planner, so the preview cannot drift from what the
// controller does. It only reads.
func planLive(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, fetcher cleanup.ListFetcher, o liveOptions) (plan cleanup.Plan, previousVersion string, err error) {
	plan, u, err := cleanup.Preview(ctx, kube, dyn, fetcher, o)
	if err != nil {
		return cleanup.Plan{}, "", err
	}
	return plan, u.PreviousVersion, nil
}

// planReport is the plan as printed. Its JSON field names are part of the
// command's interface for scripts: keep them stable.
type planReport struct {
	// Source is what the plan was computed from: "upgrade NS/NAME", or
	// "PREVIOUS_FILE -> CURRENT_FILE".
	Source string `json:"source"`
	// PreviousVersion is the Upgrade's status.previousVersion; empty offline.
	PreviousVersion string `json:"previousVersion"`
	// Remove are the images the plan removes, sorted; never null.
	Remove []string `json:"remove"`
	// Kept are the previous list's other images, sorted by image, each with
	// the rule that kept it (cleanup.Kept); never null.
	Kept []cleanup.Kept `json:"kept"`
	// CatchUp are the catch-up versions whose lists were planned too;
	// CatchUpMissing those the repo's archive does not serve (404).
	CatchUp        []string `json:"catchUp,omitempty"`
	CatchUpMissing []string `json:"catchUpMissing,omitempty"`
}

// newPlanReport sorts the plan by image so the output does not depend on the
// order the lists came in; empty lists are [] in JSON, not null, so a script
// can iterate without a check.
func newPlanReport(source, previousVersion string, p cleanup.Plan) planReport {
	r := planReport{
		Source:          source,
		PreviousVersion: previousVersion,
		Remove:          slices.Sorted(slices.Values(p.Remove)),
		Kept:            slices.Clone(p.Kept),
		CatchUp:         p.CatchUp,
		CatchUpMissing:  p.CatchUpMissing,
	}
	if r.Remove == nil {
		r.Remove = []string{}
	}
	if r.Kept == nil {
		r.Kept = []cleanup.Kept{}
	}
	slices.SortFunc(r.Kept, func(a, b cleanup.Kept) int {
		return cmp.Or(strings.Compare(a.Image, b.Image), strings.Compare(string(a.Rule), string(b.Rule)))
	})
	return r
}

// counts returns how many images were kept by each rule.
func (r planReport) counts() map[cleanup.Rule]int {
	n := map[cleanup.Rule]int{}
	for _, k := range r.Kept {
		n[k.Rule]++
	}
	return n
}

func (r planReport) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	// Not for a browser: "->" in source stays readable instead of "-\u003e".
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeTable prints a summary line, then one row per image of the previous
// list: the removed ones first, then the kept ones with the rule that kept
// them.
func (r planReport) writeTable(w io.Writer) error {
	n := r.counts()
	source := r.Source
	if r.PreviousVersion != "" {
		source += " (previous version " + r.PreviousVersion
		if len(r.CatchUp) > 0 {
			source += ", catch-up " + strings.Join(r.CatchUp, ",")
		}
		if len(r.CatchUpMissing) > 0 {
			source += "; catch-up " + strings.Join(r.CatchUpMissing, ",") + " skipped: not in the repo's archive"
		}
		source += ")"
	}
	var sameAsKept string
	if c := n[cleanup.RuleSameAsKept]; c > 0 {
		sameAsKept = fmt.Sprintf(", %d same as a kept image", c)
	}
	if _, err := fmt.Fprintf(w, "plan for %s: %d to remove, %d kept (%d in current list, %d retained, %d excluded%s)\n\n",
		source, len(r.Remove), len(r.Kept), n[cleanup.RuleInCurrent], n[cleanup.RuleRetain], n[cleanup.RuleExclude], sameAsKept); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tIMAGE\tRULE\tMATCH\tWHY")
	for _, img := range r.Remove {
		fmt.Fprintf(tw, "remove\t%s\t-\t-\t-\n", img)
	}
	for _, k := range r.Kept {
		fmt.Fprintf(tw, "keep\t%s\t%s\t%s\t%s\n", k.Image, k.Rule, cmp.Or(k.Match, "-"), cmp.Or(string(k.Why), "-"))
	}
	return tw.Flush()
}
