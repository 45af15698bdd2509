package cleanup

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// SummaryAnnotation holds the per-node results of a finished removal, as JSON.
const SummaryAnnotation = "harvesterhci.io/image-cleanup-summary"

// Node outcomes in the summary.
const (
	NodeSucceeded = "succeeded"
	NodeFailed    = "failed"
	// NodeLeft: the node stopped matching the selector (or was deleted)
	// before its Job finished; it does not count toward the ratio.
	NodeLeft = "left"
	// NodeSkipped: the node's image filesystem was below the disk-pressure
	// threshold (RemovalOptions.ImageFsThreshold): it removed nothing, on
	// purpose, and counts as succeeded.
	NodeSkipped = "skipped"
)

// NodeSummary is one node's line in the summary.
type NodeSummary struct {
	Node    string `json:"node"`
	Outcome string `json:"outcome"`
	Job     string `json:"job,omitempty"`
	// Message says why a node failed, or that its result could not be read.
	Message string         `json:"message,omitempty"`
	Result  *report.Result `json:"result,omitempty"`
}

// Summary is the value of SummaryAnnotation. It is bounded at any node
// count (an annotation that outgrew the API's 256 KiB limit would be
// refused forever, and the upgrade would never leave Removing): counts
// always, node lines failed first and as many as fit in maxSummaryBytes,
// each with at most maxNodeFailedImages names. Every node's full report
// stays with its Job: the pod's termination message and its log.
type Summary struct {
	Nodes []NodeSummary `json:"nodes"`
	// OmittedNodes counts the node lines left out to keep the summary
	// bounded; their Jobs hold their reports.
	OmittedNodes int `json:"omittedNodes,omitempty"`
	// Outcomes counts the nodes by outcome, all of them.
	Outcomes map[string]int `json:"outcomes,omitempty"`
	// Total adds up the nodes' results (FailedImages and ImageFs left out).
	Total report.Result `json:"total"`
	// ImageFs adds up the nodes' measured image filesystems; nil when no
	// node measured its own.
	ImageFs *ImageFsTotals `json:"imageFs,omitempty"`
}

// ImageFsTotals adds up the image filesystems the nodes' removers measured
// (report.ImageFs): the one computation behind the summary's message, the
// status command and the freed-bytes metric.
type ImageFsTotals struct {
	// Nodes counts the nodes that measured; Stale those whose figure after
	// the removal had not refreshed.
	Nodes int `json:"nodes"`
	Stale int `json:"stale,omitempty"`
	// UsedBefore and UsedAfter add up the nodes' figures.
	UsedBefore uint64 `json:"usedBefore"`
	UsedAfter  uint64 `json:"usedAfter"`
	// Freed adds up each node's report.ImageFs.Freed: a node whose
	// filesystem grew meanwhile adds 0 and hides no other node's space.
	Freed uint64 `json:"freed"`
}

// addBytes adds byte figures, stopping at the largest uint64 instead of
// wrapping: each node's figure is capped (report.ResultFromTermination),
// but thousands of nodes at the cap would wrap a sum to nothing.
func addBytes(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return math.MaxUint64
}

// imageFsTotals adds up the measured image filesystems of nodes.
func imageFsTotals(nodes []NodeSummary) *ImageFsTotals {
	var t *ImageFsTotals
	for _, n := range nodes {
		if n.Result == nil || n.Result.ImageFs == nil {
			continue
		}
		if t == nil {
			t = &ImageFsTotals{}
		}
		m := n.Result.ImageFs
		t.Nodes++
		t.UsedBefore = addBytes(t.UsedBefore, m.UsedBefore)
		t.UsedAfter = addBytes(t.UsedAfter, m.UsedAfter)
		t.Freed = addBytes(t.Freed, m.Freed())
		if m.Stale {
			t.Stale++
		}
	}
	return t
}

// Bounds of the summary annotation. The API server allows 256 KiB for all
// of an object's annotations together, Harvester's own among them.
const (
	maxSummaryBytes     = 64 << 10
	maxNodeMessage      = 512
	maxNodeFailedImages = 10
	maxFailedImage      = 256
)

// removalProgress is where each target node's Job stands.
type removalProgress struct {
	missing   []string // target nodes without a Job: create one
	running   []string
	finished  []*batchv1.Job
	left      []string // nodes gone before their Job finished
	targetted int      // nodes that count toward the ratio
}

// assessRemoval decides, from the target nodes and the upgrade's Jobs, which
// Jobs to create and whether the removal is done. A node that joins gets a
// Job; a node that leaves before its Job finished is not waited for; a Job
// that finished on a node that has since left still counts.
func assessRemoval(nodes []string, jobs []*batchv1.Job) removalProgress {
	var p removalProgress
	byNode := jobsByNode(jobs)
	isTarget := map[string]bool{}
	for _, n := range nodes {
		isTarget[n] = true
	}
	for _, n := range slices.Sorted(maps.Keys(isTarget)) {
		j, ok := byNode[n]
		switch {
		case !ok:
			p.missing = append(p.missing, n)
		case jobFinished(j):
			p.finished = append(p.finished, j)
		default:
			p.running = append(p.running, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(byNode)) {
		if isTarget[n] {
			continue
		}
		if j := byNode[n]; jobFinished(j) {
			p.finished = append(p.finished, j)
		} else {
			p.left = append(p.left, n)
		}
	}
	p.targetted = len(p.missing) + len(p.running) + len(p.finished)
	return p
}

// jobsByNode is each node's Job among one run's Jobs: the newest, should a
// node have several (one deleted and created again, say), chosen the same
// way every time.
func jobsByNode(jobs []*batchv1.Job) map[string]*batchv1.Job {
	byNode := map[string]*batchv1.Job{}
	for _, j := range jobs {
		node := cmp.Or(j.Spec.Template.Spec.NodeName, j.Annotations[NodeAnnotation])
		if cur, ok := byNode[node]; !ok || newerJob(j, cur) {
			byNode[node] = j
		}
	}
	return byNode
}

// newerJob reports whether a was created after b (of the same second, the
// name sorting last).
func newerJob(a, b *batchv1.Job) bool {
	return cmp.Or(a.CreationTimestamp.Time.Compare(b.CreationTimestamp.Time), strings.Compare(a.Name, b.Name)) > 0
}

func jobFinished(j *batchv1.Job) bool {
	return jobCondition(j, batchv1.JobComplete) || jobCondition(j, batchv1.JobFailed)
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// jobExecutor removes a plan by running one Job per target node and reads
// each node's result from its Job's pod.
type jobExecutor struct {
	kube  kubernetes.Interface
	nodes corelisters.NodeLister
	jobs  batchlisters.JobLister
	opts  RemovalOptions
}

// Execute creates the Jobs that are missing and, once every node's Job has
// finished, reports Succeeded or Failed with the summary.
func (e *jobExecutor) Execute(ctx context.Context, u Upgrade, plan PlanRef) (Outcome, error) {
	logger := klog.FromContext(ctx)
	nodes, err := e.nodes.List(e.opts.NodeSelector)
	if err != nil {
		return Outcome{}, fmt.Errorf("list nodes: %w", err)
	}
	var names []string
	for _, n := range nodes {
		if n.DeletionTimestamp == nil {
			names = append(names, n.Name)
		}
	}
	run := u.Annotations[RunIDAnnotation]
	sel, err := RunSelector(u.Name, run)
	if err != nil {
		// Written over by hand: no Job can carry it, and no retry mends it.
		return Outcome{State: StateFailed, Phase: PhaseRemoval, Message: err.Error() + "; ask for a re-run, or remove it and the state annotation"}, nil
	}
	jobs, err := e.jobs.Jobs(u.Namespace).List(sel)
	if err != nil {
		return Outcome{}, fmt.Errorf("list removal Jobs: %w", err)
	}
	p := assessRemoval(names, jobs)
	if p.targetted == 0 {
		return Outcome{State: StateFailed, Message: fmt.Sprintf("no node matches the node selector %q; nothing can be removed", e.opts.NodeSelector)}, nil
	}
	for _, n := range p.missing {
		job := RemovalJob(u, plan, n, e.opts)
		_, err := e.kube.BatchV1().Jobs(u.Namespace).Create(ctx, job, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue // the cache was behind; the existing Job stands
		}
		if err != nil {
			err = fmt.Errorf("create Job %s for node %s: %w", job.Name, n, err)
			if isPermanent(permanentIfRefused(err)) {
				// Refused by the API server (invalid, forbidden): the same
				// Job would be refused on every retry and resync.
				return Outcome{State: StateFailed, Phase: PhaseRemoval, Message: err.Error()}, nil
			}
			return Outcome{}, err
		}
		logger.Info("Removal Job created", "job", job.Name, "node", n)
	}
	if len(p.missing) > 0 || len(p.running) > 0 {
		msg := fmt.Sprintf("removing on %d nodes: %d finished, %d running", p.targetted, len(p.finished), len(p.missing)+len(p.running))
		if e.opts.ImageFsThreshold > 0 {
			msg += fmt.Sprintf("; disk-pressure mode: a node whose image filesystem holds less than %s removes nothing", humanBytes(e.opts.ImageFsThreshold))
		}
		return Outcome{State: StateRemoving, Message: msg + "; " + runNote(u, plan)}, nil
	}
	pods, err := runPods(ctx, e.kube, u.Namespace, sel, p.finished)
	if err != nil {
		if isPermanent(permanentIfRefused(err)) {
			return Outcome{State: StateFailed, Phase: PhaseRemoval, Message: err.Error()}, nil
		}
		// Summarizing without the results would count every node's
		// figures as lost; the queue's retry reads them again.
		return Outcome{}, err
	}
	s := Summary{}
	for _, j := range p.finished {
		s.Nodes = append(s.Nodes, nodeSummary(j, pods, plan.Digest))
	}
	for _, n := range p.left {
		s.Nodes = append(s.Nodes, NodeSummary{Node: n, Outcome: NodeLeft, Job: runJobName(u.Name, n, run)})
	}
	return summarize(s, e.opts.SuccessRatio)
}

// runPods lists the pods of a run's Jobs in one request, when one of jobs
// has finished (only a finished Job's pods are read): their pod template
// carries the run's labels (sel, RunSelector), and nodeSummary picks each
// Job's own among them. One request, not one per Job: a summary of 500
// nodes would otherwise spend 500 of the API budget's tokens at once.
func runPods(ctx context.Context, kube kubernetes.Interface, namespace string, sel labels.Selector, jobs []*batchv1.Job) ([]corev1.Pod, error) {
	if !slices.ContainsFunc(jobs, jobFinished) {
		return nil, nil
	}
	list, err := kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, fmt.Errorf("list the pods of the removal Jobs (%s): %w", sel, err)
	}
	return list.Items, nil
}

// nodeSummary reads one finished Job's outcome, and its remover's result
// from the termination message of the Job's last pod among pods. A result about
// another plan than planDigest (the plan this run removes) is refused: the
// node counts as failed, saying which plan its result names, and none of
// the result's figures are taken, since they are not about this plan. A
// result that says the remover did not run carries no digest and no
// figures, and fails the node whatever its Job's outcome: its Error says
// why. An empty planDigest checks nothing.
func nodeSummary(j *batchv1.Job, pods []corev1.Pod, planDigest string) NodeSummary {
	ns := NodeSummary{Node: j.Spec.Template.Spec.NodeName, Job: j.Name, Outcome: NodeSucceeded}
	if !jobCondition(j, batchv1.JobComplete) {
		ns.Outcome = NodeFailed
		ns.Message = jobFailureMessage(j)
	}
	r, isResult, err := podResult(j, pods)
	if err != nil {
		ns.Message = strings.TrimPrefix(ns.Message+"; ", "; ") + err.Error()
		return ns
	}
	if isResult && r.Error != "" {
		// The remover says it did not run; a Job that completed anyway
		// (its pod exited 0) does not make the node succeed.
		ns.Outcome = NodeFailed
	}
	if planDigest != "" && r.Error == "" && r.PlanDigest != planDigest {
		named := "no plan"
		if r.PlanDigest != "" {
			named = "plan " + r.PlanDigest
		}
		ns.Outcome = NodeFailed
		ns.Message = strings.TrimPrefix(ns.Message+"; ", "; ") +
			fmt.Sprintf("the remover's result names %s, not the plan %s this run removes: its figures are not counted", named, planDigest)
		return ns
	}
	if r.Error != "" {
		ns.Message = strings.TrimPrefix(ns.Message+"; ", "; ") + "remover: " + r.Error
	}
	if ns.Outcome == NodeSucceeded && r.BelowThreshold && r.ImageFs != nil {
		ns.Outcome = NodeSkipped
		ns.Message = fmt.Sprintf("image filesystem holds %s, below the threshold %s: nothing removed", humanBytes(r.ImageFs.UsedBefore), humanBytes(r.Threshold))
	}
	ns.Result = r
	return ns
}

func jobFailureMessage(j *batchv1.Job) string {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return strings.TrimSpace(c.Reason + ": " + c.Message)
		}
	}
	return "job failed"
}

// podResult is the result the remover of Job j left, read from the
// newest of j's pods among pods that terminated with a message: those its
// selector matches and it controls (a selector is the Job's creator's to
// write, and could match another Job's pods).
func podResult(j *batchv1.Job, pods []corev1.Pod) (r *report.Result, isResult bool, err error) {
	sel := labels.SelectorFromSet(labels.Set{batchv1.JobNameLabel: j.Name})
	if j.Spec.Selector != nil {
		s, err := metav1.LabelSelectorAsSelector(j.Spec.Selector)
		if err != nil {
			return nil, false, fmt.Errorf("job %s selector: %w", j.Name, err)
		}
		sel = s
	}
	var own []*corev1.Pod
	for i := range pods {
		if pods[i].Namespace == j.Namespace && sel.Matches(labels.Set(pods[i].Labels)) && metav1.IsControlledBy(&pods[i], j) {
			own = append(own, &pods[i])
		}
	}
	// The newest pod that terminated with a message speaks for the Job.
	sort.Slice(own, func(a, b int) bool {
		return own[b].CreationTimestamp.Before(&own[a].CreationTimestamp)
	})
	for _, pod := range own {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.Name != removerName || cs.State.Terminated == nil || cs.State.Terminated.Message == "" {
				continue
			}
			// Whatever the remover said, in any form and with any exit
			// code, reaches the summary (escaped and cut).
			r, isResult := report.ParseTermination(cs.State.Terminated.Message)
			return &r, isResult, nil
		}
	}
	return nil, false, fmt.Errorf("no result: no pod of job %s left a termination message", j.Name)
}

// summarize turns the nodes' summaries into the final Outcome: Succeeded
// when the share of counted nodes that succeeded reaches ratio, else Failed.
func summarize(s Summary, ratio float64) (Outcome, error) {
	succeeded, counted := 0, 0
	skipped := map[report.Reason]int{}
	s.Outcomes = map[string]int{}
	for _, n := range s.Nodes {
		s.Outcomes[n.Outcome]++
		if n.Outcome != NodeLeft {
			counted++
		}
		if n.Outcome == NodeSucceeded || n.Outcome == NodeSkipped {
			succeeded++ // a node skipped below the threshold did as asked
		}
		if n.Result == nil {
			continue
		}
		s.Total.Removed += n.Result.Removed
		s.Total.Failed += n.Result.Failed
		s.Total.BytesReclaimed = addBytes(s.Total.BytesReclaimed, n.Result.BytesReclaimed)
		s.Total.DanglingRemoved += n.Result.DanglingRemoved
		for r, c := range n.Result.Skipped {
			skipped[r] += c
		}
	}
	s.ImageFs = imageFsTotals(s.Nodes)
	if len(skipped) > 0 {
		s.Total.Skipped = skipped
	}
	b, err := boundedSummary(s)
	if err != nil {
		return Outcome{}, err
	}
	state := StateFailed
	// Multiply, never divide (integer division made 2 of 3 nodes "0%" in a
	// peer project); the epsilon absorbs float error in ratio*counted.
	if counted > 0 && float64(succeeded) >= ratio*float64(counted)-1e-9 {
		state = StateSucceeded
	}
	msg := fmt.Sprintf("%d of %d nodes succeeded (need %g%%): removed %d images, skipped %d%s, %d failed, %s reclaimed",
		succeeded, counted, ratio*100, s.Total.Removed, sumCounts(skipped), skippedDetail(skipped), s.Total.Failed, humanBytes(s.Total.BytesReclaimed))
	if n := s.Outcomes[NodeSkipped]; n > 0 {
		msg += fmt.Sprintf("; %d nodes below the image filesystem threshold removed nothing", n)
	}
	if s.ImageFs != nil {
		msg += "; " + fsDetail(*s.ImageFs)
	}
	out := Outcome{State: state, Message: msg, Annotations: map[string]string{SummaryAnnotation: string(b)}, Summary: &s}
	if state == StateSucceeded {
		out.Annotations[HarvesterDoneAnnotation] = "true"
	}
	return out, nil
}

// boundedSummary encodes s in at most maxSummaryBytes: node lines failed
// first, then left, then succeeded, each cut to its bounds, as many as fit.
func boundedSummary(s Summary) ([]byte, error) {
	rank := map[string]int{NodeFailed: 0, NodeLeft: 1, NodeSucceeded: 2, NodeSkipped: 2}
	nodes := make([]NodeSummary, len(s.Nodes))
	for i, n := range s.Nodes {
		nodes[i] = compactNode(n)
	}
	slices.SortStableFunc(nodes, func(a, b NodeSummary) int {
		return cmp.Or(cmp.Compare(rank[a.Outcome], rank[b.Outcome]), strings.Compare(a.Node, b.Node))
	})
	s.Nodes = []NodeSummary{}
	s.OmittedNodes = len(nodes)
	base, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	// Room for omittedNodes growing to its widest and the commas between lines.
	size := len(base) + len(`,"omittedNodes":`) + 20
	for _, n := range nodes {
		line, err := json.Marshal(n)
		if err != nil {
			return nil, fmt.Errorf("encode summary of node %s: %w", n.Node, err)
		}
		if size+len(line)+1 > maxSummaryBytes {
			break
		}
		size += len(line) + 1
		s.Nodes = append(s.Nodes, n)
	}
	s.OmittedNodes = len(nodes) - len(s.Nodes)
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode summary: %w", err)
	}
	return b, nil
}

// compactNode cuts one node's line to its bounds, saying how many failed
// image names it left out.
func compactNode(n NodeSummary) NodeSummary {
	n.Message = imagelist.Truncate(n.Message, maxNodeMessage)
	if n.Result == nil {
		return n
	}
	r := *n.Result
	r.Error = imagelist.Truncate(r.Error, maxNodeMessage)
	failed := make([]string, 0, min(len(r.FailedImages), maxNodeFailedImages+1))
	for i, f := range r.FailedImages {
		if i == maxNodeFailedImages {
			failed = append(failed, fmt.Sprintf("... and %d more in the Job's report", len(r.FailedImages)-i))
			break
		}
		failed = append(failed, imagelist.Truncate(f, maxFailedImage))
	}
	if len(failed) > 0 {
		r.FailedImages = failed
	}
	n.Result = &r
	return n
}

// fsDetail says what the image filesystems measured, beside the sum of the
// removed images' sizes: layers shared with kept images free nothing.
func fsDetail(fs ImageFsTotals) string {
	d := fmt.Sprintf("image filesystems %s before, %s after (%s freed, measured)", humanBytes(fs.UsedBefore), humanBytes(fs.UsedAfter), humanBytes(fs.Freed))
	if fs.Stale > 0 {
		d += fmt.Sprintf(", %d of %d nodes' runtimes had not refreshed their figure", fs.Stale, fs.Nodes)
	}
	return d
}

// runNote says how this run's plan came about: written while the upgrade
// ran (no request to the repo at completion), at completion, or a re-run.
func runNote(u Upgrade, plan PlanRef) string {
	switch {
	case u.Annotations[RerunningAnnotation] == "true":
		return fmt.Sprintf("re-run %q of the stored plan", tokenText(u.Annotations[RunAnnotation]))
	case plan.Early:
		return "plan written while the upgrade ran: no request to the repo at completion"
	}
	return "plan written at completion"
}

func sumCounts(m map[report.Reason]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

func skippedDetail(m map[report.Reason]int) string {
	if len(m) == 0 {
		return ""
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, m[r]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func humanBytes(b uint64) string {
	const unit = 1000
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(b)/float64(div), "kMGTPE"[exp])
}
