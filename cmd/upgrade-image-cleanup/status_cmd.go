package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/standalone"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Output formats of the status subcommand.
const (
	statusOutputText = "text"
	statusOutputJSON = "json"
)

// statusAPITimeout bounds each API request, so an unreachable API server is
// reported instead of hanging the command (plan's bound).
const statusAPITimeout = 15 * time.Second

// statusFlags is the status subcommand's command line, checked.
type statusFlags struct {
	upgrade    string // empty: the latest
	namespace  string
	kubeconfig string
	output     string
}

func parseStatusFlags(args []string, stderr io.Writer) (statusFlags, error) {
	var f statusFlags
	fs := flag.NewFlagSet("upgrade-image-cleanup status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  upgrade-image-cleanup status [UPGRADE] [flags]

Prints the cleanup of an Upgrade: its state and the operator's annotations,
the plan ConfigMap, and each node's removal. Without UPGRADE, the Upgrade
labelled harvesterhci.io/latestUpgrade=true in the namespace (if none or
several are, the newest). Nothing is changed: it only gets and lists.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.namespace, "namespace", cleanup.DefaultNamespace, "namespace of the Upgrade")
	fs.StringVar(&f.namespace, "n", cleanup.DefaultNamespace, "same as --namespace")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default $KUBECONFIG, else the in-cluster config")
	fs.StringVar(&f.output, "o", statusOutputText, "output format: text or json")
	fs.StringVar(&f.output, "output", statusOutputText, "same as -o")

	// UPGRADE may come before, between or after the flags, as with kubectl.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return statusFlags{}, err
		}
		if fs.NArg() == 0 {
			break
		}
		if consumed := len(rest) - fs.NArg(); consumed > 0 && rest[consumed-1] == "--" {
			positional = append(positional, fs.Args()...)
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) > 1 {
		return statusFlags{}, fmt.Errorf("unexpected argument %q: give one UPGRADE at most", positional[1])
	}
	if len(positional) == 1 {
		f.upgrade = positional[0]
		if errs := validation.IsDNS1123Subdomain(f.upgrade); len(errs) > 0 {
			return statusFlags{}, fmt.Errorf("UPGRADE %q: %s", f.upgrade, strings.Join(errs, "; "))
		}
	}
	if errs := validation.IsDNS1123Label(f.namespace); len(errs) > 0 {
		return statusFlags{}, fmt.Errorf("--namespace %q: %s", f.namespace, strings.Join(errs, "; "))
	}
	if f.output != statusOutputText && f.output != statusOutputJSON {
		return statusFlags{}, fmt.Errorf("-o %q: must be text or json", f.output)
	}
	return f, nil
}

// runStatus is the status subcommand. Exit code 0 when the status is
// printed, 1 for a runtime failure (cluster unreachable, no such Upgrade, no
// Upgrade in the namespace), 2 for bad flags, as plan.
func runStatus(args []string, stdout, stderr io.Writer) int {
	f, err := parseStatusFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", statusPrefix, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kube, dyn, err := statusClients(f.kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", statusPrefix, err)
		return 1
	}
	return printStatus(ctx, kube, dyn, f, stdout, stderr)
}

const statusPrefix = "upgrade-image-cleanup status: "

func statusClients(kubeconfig string) (kubernetes.Interface, dynamic.Interface, error) {
	cfg, err := restConfig(kubeconfig, standalone.DefaultKubeAPIQPS, standalone.DefaultKubeAPIBurst)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = statusAPITimeout
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("dynamic client for %s: %w", cfg.Host, err)
	}
	return kube, dyn, nil
}

// printStatus reads the status through the clients and prints it in f's
// format; it returns the exit code.
func printStatus(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, f statusFlags, stdout, stderr io.Writer) int {
	s, err := cleanup.ReadStatus(ctx, kube, dyn, f.namespace, f.upgrade)
	if err != nil {
		fmt.Fprintf(stderr, "%s%v\n", statusPrefix, err)
		return 1
	}
	if f.output == statusOutputJSON {
		err = writeStatusJSON(stdout, s)
	} else {
		err = writeStatusText(stdout, s)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%swrite output: %v\n", statusPrefix, err)
		return 1
	}
	return 0
}

func writeStatusJSON(w io.Writer, s cleanup.Status) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(s)
}

// maxCell bounds one printed value; messages are already bounded where
// they are read, this keeps a table row readable.
const maxCell = 512

// esc is text from the cluster as it may reach a terminal: escaped and
// bounded (ReadStatus did so already; a Status from elsewhere may not).
func esc(s string) string { return imagelist.Truncate(imagelist.Printable(s), maxCell) }

// writeStatusText prints s as `kubectl describe` would: fields, then the
// per-node table, its totals, the nodes' messages and the notes; no line
// ends in the padding of an empty value.
func writeStatusText(w io.Writer, s cleanup.Status) error {
	var b bytes.Buffer
	if err := renderStatusText(&b, s); err != nil {
		return err
	}
	var out strings.Builder
	for _, l := range strings.SplitAfter(b.String(), "\n") {
		body, newline := strings.CutSuffix(l, "\n")
		out.WriteString(strings.TrimRight(body, " "))
		if newline {
			out.WriteByte('\n')
		}
	}
	_, err := io.WriteString(w, out.String())
	return err
}

func renderStatusText(w io.Writer, s cleanup.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	field := func(indent, name, value string) { fmt.Fprintf(tw, "%s%s:\t%s\n", indent, name, value) }
	u := s.Upgrade
	field("", "Upgrade", esc(u.Namespace+"/"+u.Name))
	if s.Chosen != "" {
		field("", "Chosen as", esc(s.Chosen))
	}
	field("", "Version", esc(cmp.Or(u.Version, "-"))+", from "+esc(cmp.Or(u.PreviousVersion, "-")))
	if u.Created != "" {
		field("", "Created", esc(u.Created))
	}
	field("", "Completed", fmt.Sprint(u.Completed))
	field("", "Latest", fmt.Sprint(u.Latest))
	if s.State == "" {
		field("", "State", "none: the controller has not acted on this Upgrade")
	} else {
		field("", "State", esc(string(s.State)))
	}
	if s.FailedPhase != "" {
		field("", "Failed phase", esc(string(s.FailedPhase)))
	}
	if s.Message != "" {
		field("", "Message", esc(s.Message))
	}
	if s.HarvesterDone {
		field("", "Harvester done", "true ("+cleanup.HarvesterDoneAnnotation+")")
	}
	writeOperator(field, s.Operator)
	writePlan(field, s.Plan, u.PlanDigest)
	noNodes := len(s.Nodes) == 0 && s.OmittedNodes == 0
	if noNodes && s.NodesFrom == cleanup.NodesFromSummary {
		field("", "Nodes", "none in the summary")
	} else if noNodes {
		field("", "Nodes", "none: no removal Job")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !noNodes {
		if err := writeNodes(w, s); err != nil {
			return err
		}
	}
	if len(s.Notes) > 0 {
		fmt.Fprintln(w, "Notes:")
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  %s\n", esc(n))
		}
	}
	return nil
}

func writeOperator(field func(indent, name, value string), o cleanup.OperatorStatus) {
	if o.Skip == "" && o.Rerun == "" && o.Run == "" && o.Refused == "" && len(o.CatchUp) == 0 {
		field("", "Operator", "none")
		return
	}
	field("", "Operator", "")
	if o.Skip != "" {
		field("  ", "Skip", esc(o.Skip))
	}
	switch {
	case o.Answer == cleanup.RerunStarted:
		field("  ", "Rerun", esc(o.Rerun)+" (started)")
	case o.Answer == cleanup.RerunRefused:
		field("  ", "Rerun", esc(o.Rerun)+" (refused: see the message)")
	case o.Rerun != "" && o.Run != "":
		field("  ", "Rerun", esc(o.Rerun)+" (not acted on yet; the last one was "+esc(o.Run)+")")
	case o.Rerun != "":
		field("  ", "Rerun", esc(o.Rerun)+" (not acted on yet)")
	case o.Run != "":
		field("  ", "Last rerun", esc(o.Run))
	}
	if len(o.CatchUp) > 0 {
		field("  ", "Catch-up", esc(strings.Join(o.CatchUp, ", ")))
	}
}

func writePlan(field func(indent, name, value string), p *cleanup.PlanStatus, upgradeDigest string) {
	if p == nil {
		field("", "Plan", "no plan")
		if upgradeDigest != "" {
			field("  ", "Digest", "the Upgrade records "+esc(upgradeDigest)+", but its ConfigMap is gone")
		}
		return
	}
	field("", "Plan", "ConfigMap "+esc(p.ConfigMap))
	field("  ", "Images", fmt.Sprint(p.Images))
	field("  ", "Previous version", esc(cmp.Or(p.PreviousVersion, "-")))
	digest := esc(cmp.Or(p.Digest, "-"))
	switch upgradeDigest {
	case "":
		digest += " (not recorded on the Upgrade yet)"
	case p.Digest:
		digest += " (the Upgrade records the same)"
	default:
		digest += " (the Upgrade records " + esc(upgradeDigest) + ")"
	}
	field("  ", "Digest", digest)
	if len(p.CatchUp) > 0 || len(p.CatchUpMissing) > 0 {
		field("  ", "Catch-up planned", esc(cmp.Or(strings.Join(p.CatchUp, ", "), "none")))
		field("  ", "Catch-up missing", esc(cmp.Or(strings.Join(p.CatchUpMissing, ", "), "none")))
	}
	field("  ", "Planned early", yesNo(p.PlannedEarly))
	if p.Problem != "" {
		field("  ", "Problem", esc(p.Problem))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// outcomeOrder is the order of the outcome counts in the totals line.
var outcomeOrder = []string{cleanup.NodeSucceeded, cleanup.NodeSkipped, cleanup.NodeFailed, cleanup.NodeLeft, cleanup.NodeRunning, cleanup.NodePending}

// writeNodes prints the node table, the totals and the nodes' messages.
func writeNodes(w io.Writer, s cleanup.Status) error {
	from := "from the removal Jobs"
	if s.NodesFrom == cleanup.NodesFromSummary {
		from = "from the summary"
	}
	fmt.Fprintf(w, "Nodes (%s):\n", from)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tOUTCOME\tREMOVED\tSKIPPED\tFAILED\tRECLAIMED\tIMAGE FS\tJOB")
	for _, n := range s.Nodes {
		removed, skipped, failed, reclaimed, imageFs := "-", "-", "-", "-", "-"
		if r := n.Result; r != nil {
			removed = fmt.Sprint(r.Removed)
			if r.DanglingRemoved > 0 {
				removed += fmt.Sprintf(" (+%d dangling)", r.DanglingRemoved)
			}
			skipped = skippedText(r.Skipped)
			failed = fmt.Sprint(r.Failed)
			reclaimed = cleanup.HumanBytes(r.BytesReclaimed)
			imageFs = imageFsText(*r)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			esc(n.Node), esc(n.Outcome), removed, esc(skipped), failed, reclaimed, imageFs, esc(cmp.Or(n.Job, "-")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if s.OmittedNodes > 0 {
		fmt.Fprintf(w, "  %d more %s omitted from the summary; see their Jobs\n", s.OmittedNodes, nodeNoun(s.OmittedNodes))
	}
	fmt.Fprintf(w, "Total:  %s\n", totalText(s))

	var messages []string
	for _, n := range s.Nodes {
		msg := n.Message
		if n.Result != nil && n.Result.Error != "" && !strings.Contains(msg, n.Result.Error) {
			msg = strings.TrimPrefix(msg+"; ", "; ") + "remover: " + n.Result.Error
		}
		if msg != "" {
			messages = append(messages, fmt.Sprintf("  %s: %s", esc(n.Node), esc(msg)))
		}
		if n.Result != nil {
			for _, img := range n.Result.FailedImages {
				messages = append(messages, fmt.Sprintf("  %s: failed: %s", esc(n.Node), esc(img)))
			}
		}
	}
	if len(messages) > 0 {
		fmt.Fprintln(w, "Messages:")
		for _, m := range messages {
			fmt.Fprintln(w, m)
		}
	}
	return nil
}

// skippedText is "in-use 2, not-present 5", or "0".
func skippedText[R ~string](m map[R]int) string {
	if len(m) == 0 {
		return "0"
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, m[r]))
	}
	return strings.Join(parts, ", ")
}

// imageFsText is the IMAGE FS cell: used before → after, and freed; or,
// for a node below the threshold, its usage beside the threshold.
func imageFsText(r report.Result) string {
	switch {
	case r.BelowThreshold && r.ImageFs != nil:
		return fmt.Sprintf("%s, below threshold %s", cleanup.HumanBytes(r.ImageFs.UsedBefore), cleanup.HumanBytes(r.Threshold))
	case r.BelowThreshold:
		return "below threshold " + cleanup.HumanBytes(r.Threshold)
	case r.ImageFs == nil:
		return "-"
	}
	f := r.ImageFs
	out := fmt.Sprintf("%s → %s, freed %s", cleanup.HumanBytes(f.UsedBefore), cleanup.HumanBytes(f.UsedAfter), cleanup.HumanBytes(f.Freed()))
	if f.Stale {
		out += " (stale)"
	}
	return out
}

// totalText is the totals line: every node by outcome, the omitted ones
// too, and the results added up.
func totalText(s cleanup.Status) string {
	var nodes int
	var outcomes []string
	others := slices.DeleteFunc(slices.Sorted(maps.Keys(s.Outcomes)), func(o string) bool { return slices.Contains(outcomeOrder, o) })
	for _, o := range slices.Concat(outcomeOrder, others) {
		if n := s.Outcomes[o]; n > 0 {
			nodes += n
			outcomes = append(outcomes, fmt.Sprintf("%d %s", n, esc(o)))
		}
	}
	t := s.Total
	skipped := 0
	for _, n := range t.Skipped {
		skipped += n
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s (%s): removed %d", nodes, nodeNoun(nodes), strings.Join(outcomes, ", "), t.Removed)
	if t.DanglingRemoved > 0 {
		fmt.Fprintf(&b, " (+%d dangling)", t.DanglingRemoved)
	}
	fmt.Fprintf(&b, ", skipped %d", skipped)
	if skipped > 0 {
		fmt.Fprintf(&b, " (%s)", esc(skippedText(t.Skipped)))
	}
	fmt.Fprintf(&b, ", failed %d, reclaimed %s", t.Failed, cleanup.HumanBytes(t.BytesReclaimed))
	if t.ImageFsNodes > 0 {
		fmt.Fprintf(&b, "; image fs freed %s on %d %s", cleanup.HumanBytes(t.ImageFsFreed), t.ImageFsNodes, nodeNoun(t.ImageFsNodes))
		if t.ImageFsStale > 0 {
			fmt.Fprintf(&b, " (%d stale)", t.ImageFsStale)
		}
	}
	return b.String()
}

// nodeNoun is "node" for 1, else "nodes".
func nodeNoun(n int) string {
	if n == 1 {
		return "node"
	}
	return "nodes"
}
