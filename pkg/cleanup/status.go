package cleanup

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/informers"
)

// Outcomes of a node whose Job has not finished, as ReadStatus reports
// them beside the summary's (NodeSucceeded, NodeFailed, NodeSkipped,
// NodeLeft).
const (
	// NodeRunning: the node's Job has a pod, pending or running.
	NodeRunning = "running"
	// NodePending: the node's Job has no pod yet (just created, or between
	// two attempts).
	NodePending = "pending"
)

// Where Status.Nodes came from.
const (
	// NodesFromSummary: the summary annotation of a finished removal.
	NodesFromSummary = "summary"
	// NodesFromJobs: the removal Jobs, and the termination messages of the
	// finished ones' pods, as the controller reads them.
	NodesFromJobs = "jobs"
)

// Status is an Upgrade's cleanup as the cluster shows it, read by
// ReadStatus: the Upgrade and its annotations, the plan ConfigMap, and one
// line per node. Text from outside (messages, annotation values) is
// escaped (imagelist.Printable) and bounded. Its JSON field names are the
// status command's interface for scripts: keep them stable. Lists and maps
// are never null.
type Status struct {
	Upgrade UpgradeStatus `json:"upgrade"`
	// Chosen says why this Upgrade was read when none was named (the one
	// labelled latest, or the newest); empty when it was named.
	Chosen string `json:"chosen"`
	// State is StateAnnotation's value; empty when the controller has not
	// acted on the Upgrade.
	State State `json:"state"`
	// FailedPhase is FailedPhaseAnnotation's value, beside StateFailed.
	FailedPhase Phase `json:"failedPhase"`
	// Message is MessageAnnotation's value.
	Message string `json:"message"`
	// HarvesterDone is HarvesterDoneAnnotation being "true".
	HarvesterDone bool           `json:"harvesterDone"`
	Operator      OperatorStatus `json:"operator"`
	// Plan is the plan ConfigMap; nil when there is none.
	Plan *PlanStatus `json:"plan"`
	// NodesFrom is NodesFromSummary or NodesFromJobs.
	NodesFrom string `json:"nodesFrom"`
	// Nodes are sorted by node name.
	Nodes []NodeSummary `json:"nodes"`
	// OmittedNodes counts the nodes the summary left out to stay bounded;
	// their Jobs hold their reports (for a day).
	OmittedNodes int `json:"omittedNodes"`
	// Outcomes counts every node by outcome, the omitted ones too.
	Outcomes map[string]int `json:"outcomes"`
	// Total adds up the nodes' results, the omitted ones too: the summary's
	// own total, or the Jobs' results added up as the controller adds them.
	Total TotalStatus `json:"total"`
	// Notes are what a reader should know about the sources: a summary that
	// cannot be read, or one left by an earlier run.
	Notes []string `json:"notes"`
}

// TotalStatus is Status's totals line.
type TotalStatus struct {
	Removed         int            `json:"removed"`
	Skipped         map[string]int `json:"skipped"`
	Failed          int            `json:"failed"`
	BytesReclaimed  uint64         `json:"bytesReclaimed"`
	DanglingRemoved int            `json:"danglingRemoved"`
	// ImageFsFreed adds up report.ImageFs.Freed over the nodes that
	// measured their image filesystem, the omitted ones too; ImageFsNodes
	// counts them, ImageFsStale those whose figure after the removal was
	// stale (ImageFsTotals, as the controller adds them up).
	ImageFsFreed uint64 `json:"imageFsFreed"`
	ImageFsNodes int    `json:"imageFsNodes"`
	ImageFsStale int    `json:"imageFsStale"`
}

// addImageFs copies the controller's image filesystem totals.
func (t *TotalStatus) addImageFs(fs *ImageFsTotals) {
	if fs != nil {
		t.ImageFsFreed, t.ImageFsNodes, t.ImageFsStale = fs.Freed, fs.Nodes, fs.Stale
	}
}

// UpgradeStatus is the Upgrade itself.
type UpgradeStatus struct {
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	Version         string `json:"version"`
	PreviousVersion string `json:"previousVersion"`
	Completed       bool   `json:"completed"`
	// Latest is LatestUpgradeLabel being "true".
	Latest bool `json:"latest"`
	// Created is metadata.creationTimestamp, RFC 3339 in UTC.
	Created string `json:"created"`
	// PlanDigest is the PlanDigestAnnotation the controller recorded on the
	// Upgrade with Planned; the plan ConfigMap's must agree.
	PlanDigest string `json:"planDigest"`
}

// OperatorStatus are the annotations a person sets on the Upgrade to steer
// its cleanup, and the controller's answer to a rerun; empty when not set.
type OperatorStatus struct {
	// Skip is SkipAnnotation's value.
	Skip string `json:"skip"`
	// Rerun is RerunAnnotation's token, Run the RunAnnotation token of the
	// run the controller last started, Refused the token it last refused:
	// a Rerun other than both is still to be answered.
	Rerun   string `json:"rerun"`
	Run     string `json:"run"`
	Refused string `json:"refused"`
	// Answer is what the controller made of Rerun, compared as it compares
	// it (RerunAnswer): started, refused, pending, or "" without a token.
	Answer string `json:"answer"`
	// CatchUp are the versions of CatchUpAnnotation.
	CatchUp []string `json:"catchUp"`
}

// PlanStatus is the plan ConfigMap.
type PlanStatus struct {
	ConfigMap string `json:"configMap"`
	// Images is PlanCountAnnotation, else the count of images.txt's lines.
	Images          int    `json:"images"`
	PreviousVersion string `json:"previousVersion"`
	Digest          string `json:"digest"`
	// CatchUp and CatchUpMissing are the catch-up versions planned, and
	// those the repo's archive did not serve.
	CatchUp        []string `json:"catchUp"`
	CatchUpMissing []string `json:"catchUpMissing"`
	PlannedEarly   bool     `json:"plannedEarly"`
	// Problem says why the controller would not run this plan (not owned
	// by the Upgrade, no keep list, content not matching its digest);
	// empty when it would.
	Problem string `json:"problem"`
}

// ReadStatus reads the cleanup of Upgrade name in namespace, or when name
// is empty of the Upgrade labelled latest there (if none or several are,
// the newest of them by creation; Status.Chosen says which rule chose it).
// It only reads: the Upgrade (GET, or LIST when unnamed), the plan
// ConfigMap (GET), and unless the summary speaks for the nodes the removal
// Jobs (LIST) and the pods of the finished ones (a LIST each), read as the
// controller reads them (jobExecutor.nodeSummary).
//
// Nodes come from the summary annotation once the removal has finished;
// while the state is Removing, or when there is no summary (or it cannot be
// read), from the Jobs.
func ReadStatus(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, namespace, name string) (Status, error) {
	obj, chosen, err := getStatusUpgrade(ctx, dyn, namespace, name)
	if err != nil {
		return Status{}, err
	}
	u, err := UpgradeFromUnstructured(obj)
	if err != nil {
		return Status{}, err
	}
	a := u.Annotations
	s := Status{
		Upgrade: UpgradeStatus{
			Namespace:       u.Namespace,
			Name:            u.Name,
			Version:         outsideText(u.Version),
			PreviousVersion: outsideText(u.PreviousVersion),
			Completed:       u.Completed,
			Latest:          u.Labels[LatestUpgradeLabel] == "true",
			PlanDigest:      outsideText(a[PlanDigestAnnotation]),
		},
		Chosen:        chosen,
		State:         State(outsideText(a[StateAnnotation])),
		FailedPhase:   Phase(outsideText(a[FailedPhaseAnnotation])),
		Message:       outsideText(a[MessageAnnotation]),
		HarvesterDone: a[HarvesterDoneAnnotation] == "true",
		Operator: OperatorStatus{
			Skip:    outsideText(a[SkipAnnotation]),
			Rerun:   outsideText(a[RerunAnnotation]),
			Run:     outsideText(a[RunAnnotation]),
			Refused: outsideText(a[RerunRefusedAnnotation]),
			Answer:  RerunAnswer(u),
			CatchUp: versionList(a[CatchUpAnnotation]),
		},
		Nodes:    []NodeSummary{},
		Outcomes: map[string]int{},
		Notes:    []string{},
	}
	if t := obj.GetCreationTimestamp(); !t.IsZero() {
		s.Upgrade.Created = t.UTC().Format(time.RFC3339)
	}
	if s.Plan, err = readPlanStatus(ctx, kube, u); err != nil {
		return Status{}, err
	}

	var summary *Summary
	if raw, ok := a[SummaryAnnotation]; ok {
		var sum Summary
		switch err := json.Unmarshal([]byte(raw), &sum); {
		case err != nil:
			s.Notes = append(s.Notes, outsideText("the summary annotation cannot be read, so the Jobs are shown: "+err.Error()))
		case underWay(s.State):
			// Planned again (a re-run, or re-armed by a person) or Removing:
			// the summary is an earlier run's.
			s.Notes = append(s.Notes, "the summary annotation is of an earlier run; the Jobs of this one are shown")
		default:
			summary = &sum
		}
	}
	if summary != nil {
		s.NodesFrom = NodesFromSummary
		s.fromSummary(*summary)
		return s, nil
	}
	s.NodesFrom = NodesFromJobs
	if err := s.fromJobs(ctx, kube, u); err != nil {
		return Status{}, err
	}
	return s, nil
}

// getStatusUpgrade gets Upgrade name, or chooses one as ReadStatus says.
func getStatusUpgrade(ctx context.Context, dyn dynamic.Interface, namespace, name string) (*unstructured.Unstructured, string, error) {
	res := dyn.Resource(informers.UpgradeGVR).Namespace(namespace)
	if name != "" {
		obj, err := res.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, "", fmt.Errorf("no Upgrade %q in namespace %s: %w", name, namespace, err)
		}
		if err != nil {
			return nil, "", fmt.Errorf("get Upgrade %s/%s: %w", namespace, name, err)
		}
		return obj, "", nil
	}
	list, err := res.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("list Upgrades in namespace %s: %w", namespace, err)
	}
	if len(list.Items) == 0 {
		return nil, "", fmt.Errorf("no Upgrades in namespace %s", namespace)
	}
	var latest []*unstructured.Unstructured
	all := make([]*unstructured.Unstructured, len(list.Items))
	for i := range list.Items {
		all[i] = &list.Items[i]
		if all[i].GetLabels()[LatestUpgradeLabel] == "true" {
			latest = append(latest, all[i])
		}
	}
	label := LatestUpgradeLabel + "=true"
	switch len(latest) {
	case 1:
		return latest[0], "the only Upgrade labelled " + label, nil
	case 0:
		return newest(all), fmt.Sprintf("the newest of %d Upgrades; none is labelled %s", len(all), label), nil
	default:
		return newest(latest), fmt.Sprintf("the newest of %d Upgrades labelled %s", len(latest), label), nil
	}
}

// newest is the object created last; of several created in the same
// second, the one whose name sorts last, so the choice is stable.
func newest(objs []*unstructured.Unstructured) *unstructured.Unstructured {
	return slices.MaxFunc(objs, func(a, b *unstructured.Unstructured) int {
		ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
		return cmp.Or(ta.Time.Compare(tb.Time), strings.Compare(a.GetName(), b.GetName()))
	})
}

// readPlanStatus reads u's plan ConfigMap; nil when there is none.
func readPlanStatus(ctx context.Context, kube kubernetes.Interface, u Upgrade) (*PlanStatus, error) {
	name := PlanConfigMapName(u.Name)
	cm, err := kube.CoreV1().ConfigMaps(u.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get plan ConfigMap %s/%s: %w", u.Namespace, name, err)
	}
	a := cm.Annotations
	p := &PlanStatus{
		ConfigMap:       cm.Name,
		PreviousVersion: outsideText(a[PreviousVersionAnnotation]),
		Digest:          outsideText(a[PlanDigestAnnotation]),
		CatchUp:         versionList(a[PlanCatchUpAnnotation]),
		CatchUpMissing:  versionList(a[PlanCatchUpMissingAnnotation]),
		PlannedEarly:    a[PlannedEarlyAnnotation] == "true",
	}
	if n, err := strconv.Atoi(a[PlanCountAnnotation]); err == nil {
		p.Images = n
	} else {
		p.Images = len(strings.Fields(cm.Data[PlanKey]))
	}
	if !ownedBy(cm.OwnerReferences, u) {
		p.Problem = (&foreignPlanError{namespace: u.Namespace, name: name, upgrade: u}).Error()
	} else if _, err := checkPlan(cm); err != nil {
		p.Problem = err.Error()
	}
	p.Problem = outsideText(p.Problem)
	return p, nil
}

// fromSummary fills the nodes and totals from a finished removal's summary.
func (s *Status) fromSummary(sum Summary) {
	for o, n := range sum.Outcomes {
		s.Outcomes[outsideText(o)] += n
	}
	for _, n := range sum.Nodes {
		sn := statusNode(n)
		s.Nodes = append(s.Nodes, sn)
		if len(sum.Outcomes) == 0 { // a summary without counts: count its lines
			s.Outcomes[sn.Outcome]++
		}
	}
	maps.DeleteFunc(s.Outcomes, func(_ string, n int) bool { return n <= 0 })
	slices.SortStableFunc(s.Nodes, func(a, b NodeSummary) int { return strings.Compare(a.Node, b.Node) })
	s.OmittedNodes = max(sum.OmittedNodes, 0)
	s.Total = totalStatus(sum.Total.Removed, sum.Total.Failed, sum.Total.DanglingRemoved, sum.Total.BytesReclaimed, sum.Total.Skipped)
	s.Total.addImageFs(sum.ImageFs)
}

// fromJobs fills the nodes and totals from u's removal Jobs: the newest Job
// of each node; a finished one read as the controller reads it.
func (s *Status) fromJobs(ctx context.Context, kube kubernetes.Interface, u Upgrade) error {
	if len(validation.IsValidLabelValue(u.Name)) > 0 {
		return nil // no label can name it: the controller made no Job
	}
	// The current run's Jobs only: a re-run's nodes are not those of the
	// run before, whose finished Jobs stay until their TTL.
	sel, err := RunSelector(u.Name, u.Annotations[RunIDAnnotation])
	if err != nil {
		return err
	}
	list, err := kube.BatchV1().Jobs(u.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return fmt.Errorf("list removal Jobs of upgrade %s/%s: %w", u.Namespace, u.Name, err)
	}
	jobs := make([]*batchv1.Job, len(list.Items))
	for i := range list.Items {
		jobs[i] = &list.Items[i]
	}
	byNode := jobsByNode(jobs)
	pods, err := runPods(ctx, kube, u.Namespace, sel, slices.Collect(maps.Values(byNode)))
	if err != nil {
		return err
	}
	var sum Summary
	for _, node := range slices.Sorted(maps.Keys(byNode)) {
		j := byNode[node]
		var n NodeSummary
		switch {
		case jobFinished(j):
			n = nodeSummary(j, pods, u.Annotations[PlanDigestAnnotation])
		case j.Status.Active > 0:
			n = NodeSummary{Node: node, Outcome: NodeRunning, Job: j.Name}
		default:
			n = NodeSummary{Node: node, Outcome: NodePending, Job: j.Name}
		}
		n.Node = node
		n = statusNode(n)
		sum.Nodes = append(sum.Nodes, n)
		s.Nodes = append(s.Nodes, n)
	}
	// The controller's own totals (summarize), so the two cannot differ.
	out, err := summarize(sum, 1)
	if err != nil {
		return err
	}
	for o, n := range out.Summary.Outcomes {
		s.Outcomes[o] += n
	}
	t := out.Summary.Total
	s.Total = totalStatus(t.Removed, t.Failed, t.DanglingRemoved, t.BytesReclaimed, t.Skipped)
	s.Total.addImageFs(out.Summary.ImageFs)
	return nil
}

// statusNode is n bounded and escaped for a person.
func statusNode(n NodeSummary) NodeSummary {
	n = compactNode(n)
	n.Node, n.Outcome, n.Job = outsideText(n.Node), outsideText(n.Outcome), outsideText(n.Job)
	n.Message = outsideText(n.Message)
	if n.Result != nil {
		r := *n.Result
		r.Error = outsideText(r.Error)
		r.FailedImages = slices.Clone(r.FailedImages)
		for i, f := range r.FailedImages {
			r.FailedImages[i] = outsideText(f)
		}
		n.Result = &r
	}
	return n
}

func totalStatus[R ~string](removed, failed, dangling int, reclaimed uint64, skipped map[R]int) TotalStatus {
	t := TotalStatus{Removed: removed, Failed: failed, DanglingRemoved: dangling, BytesReclaimed: reclaimed, Skipped: map[string]int{}}
	for r, n := range skipped {
		t.Skipped[outsideText(string(r))] += n
	}
	return t
}

// versionList splits a comma-separated list of versions; never nil.
func versionList(s string) []string {
	out := []string{}
	for _, v := range splitList(s) {
		out = append(out, outsideText(v))
	}
	return out
}

// outsideText is text written by someone else, escaped and bounded as the
// controller bounds its own message.
func outsideText(s string) string {
	return imagelist.Truncate(imagelist.Printable(s), maxMessage)
}

// HumanBytes writes b as the controller's messages write sizes: in SI
// units with one decimal, such as "1.5 GB".
func HumanBytes(b uint64) string { return humanBytes(b) }
