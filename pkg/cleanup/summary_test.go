package cleanup

// Table tests of the unexported pure functions of the removal: which nodes
// need, run or left a Job (assessRemoval), and the outcome and bounded
// summary of finished Jobs (summarize). The flow over Jobs and nodes is
// tested in package cleanup_test.

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

const summaryUpgrade = "hvst-upgrade-abc12"

func finishedJob(node string, complete bool) *batchv1.Job {
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: JobName(summaryUpgrade, node)}}
	j.Spec.Template.Spec.NodeName = node
	t := batchv1.JobFailed
	if complete {
		t = batchv1.JobComplete
	}
	j.Status.Conditions = []batchv1.JobCondition{{Type: t, Status: corev1.ConditionTrue}}
	return j
}

func runningJob(node string) *batchv1.Job {
	j := finishedJob(node, true)
	j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue}}
	return j
}

func TestAssessRemoval(t *testing.T) {
	tests := []struct {
		name                   string
		nodes                  []string
		jobs                   []*batchv1.Job
		missing, running, left []string
		finished, targetted    int
	}{
		{name: "fresh", nodes: []string{"b", "a"}, missing: []string{"a", "b"}, targetted: 2},
		{name: "running and done", nodes: []string{"a", "b"}, jobs: []*batchv1.Job{runningJob("a"), finishedJob("b", false)},
			running: []string{"a"}, finished: 1, targetted: 2},
		{name: "node joined", nodes: []string{"a", "b", "c"}, jobs: []*batchv1.Job{finishedJob("a", true), runningJob("b")},
			missing: []string{"c"}, running: []string{"b"}, finished: 1, targetted: 3},
		{name: "node left before its job finished", nodes: []string{"a"}, jobs: []*batchv1.Job{finishedJob("a", true), runningJob("b")},
			left: []string{"b"}, finished: 1, targetted: 1},
		{name: "node left after its job finished", nodes: []string{"a"}, jobs: []*batchv1.Job{finishedJob("a", true), finishedJob("b", true)},
			finished: 2, targetted: 2},
		{name: "no nodes", targetted: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := assessRemoval(tt.nodes, tt.jobs)
			if !slices.Equal(p.missing, tt.missing) || !slices.Equal(p.running, tt.running) || !slices.Equal(p.left, tt.left) ||
				len(p.finished) != tt.finished || p.targetted != tt.targetted {
				t.Errorf("got missing %v running %v left %v finished %d targetted %d", p.missing, p.running, p.left, len(p.finished), p.targetted)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ok := &report.Result{Removed: 10, BytesReclaimed: 2e9, Skipped: map[report.Reason]int{report.ReasonInUse: 1}}
	tests := []struct {
		name      string
		nodes     []NodeSummary
		ratio     float64
		want      State
		wantInMsg string
	}{
		{name: "all succeed", ratio: 1, want: StateSucceeded, wantInMsg: "2 of 2 nodes succeeded",
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeSucceeded, Result: ok}}},
		{name: "one fails under ratio 1", ratio: 1, want: StateFailed, wantInMsg: "1 of 2 nodes succeeded (need 100%)",
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeFailed, Message: "BackoffLimitExceeded"}}},
		{name: "one fails under ratio 0.5", ratio: 0.5, want: StateSucceeded,
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeFailed}}},
		{name: "two of three under ratio 0.66", ratio: 0.66, want: StateSucceeded,
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded}, {Node: "b", Outcome: NodeSucceeded}, {Node: "c", Outcome: NodeFailed}}},
		{name: "two of three under ratio 0.67", ratio: 0.67, want: StateFailed,
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded}, {Node: "b", Outcome: NodeSucceeded}, {Node: "c", Outcome: NodeFailed}}},
		{name: "a node that left does not count", ratio: 1, want: StateSucceeded, wantInMsg: "1 of 1 nodes",
			nodes: []NodeSummary{{Node: "a", Outcome: NodeSucceeded, Result: ok}, {Node: "b", Outcome: NodeLeft}}},
		{name: "only nodes that left", ratio: 1, want: StateFailed,
			nodes: []NodeSummary{{Node: "b", Outcome: NodeLeft}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := summarize(Summary{Nodes: tt.nodes}, tt.ratio)
			if err != nil {
				t.Fatal(err)
			}
			if out.State != tt.want || !strings.Contains(out.Message, tt.wantInMsg) {
				t.Errorf("got %s %q, want %s containing %q", out.State, out.Message, tt.want, tt.wantInMsg)
			}
			if done := out.Annotations[HarvesterDoneAnnotation]; (done == "true") != (tt.want == StateSucceeded) {
				t.Errorf("Harvester's annotation = %q with state %s", done, out.State)
			}
			var s Summary
			if err := json.Unmarshal([]byte(out.Annotations[SummaryAnnotation]), &s); err != nil || len(s.Nodes) != len(tt.nodes) {
				t.Errorf("summary annotation %q: %v", out.Annotations[SummaryAnnotation], err)
			}
		})
	}
}

// The summary must fit the API's annotation limit at any node count: with
// 500 nodes, each failing on 200 long image names with a long message, the
// Upgrade's annotations still validate, the counts cover every node and the
// failed nodes come first.
func TestSummaryStaysBoundedAtFiveHundredNodes(t *testing.T) {
	var nodes []NodeSummary
	for i := range 500 {
		n := NodeSummary{Node: fmt.Sprintf("harvester-node-%03d-%s", i, strings.Repeat("n", 40)), Job: JobName(summaryUpgrade, fmt.Sprint(i)), Outcome: NodeSucceeded}
		r := &report.Result{Removed: 1, Failed: 200, BytesReclaimed: 10}
		for j := range 200 {
			r.FailedImages = append(r.FailedImages, fmt.Sprintf("registry.example.com/%s/image-%d:v1: rpc error: code = DeadlineExceeded desc = %s", strings.Repeat("p", 100), j, strings.Repeat("e", 200)))
		}
		if i%5 == 0 {
			n.Outcome = NodeFailed
			n.Message = "BackoffLimitExceeded: " + strings.Repeat("m", 4000)
		}
		n.Result = r
		nodes = append(nodes, n)
	}
	out, err := summarize(Summary{Nodes: nodes}, 1)
	if err != nil {
		t.Fatal(err)
	}
	annotations := map[string]string{
		StateAnnotation:   string(out.State),
		MessageAnnotation: out.Message,
		// What Harvester itself keeps on an Upgrade, roughly.
		"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 8<<10),
	}
	maps.Copy(annotations, out.Annotations)
	if err := apivalidation.ValidateAnnotationsSize(annotations); err != nil {
		t.Fatalf("annotations too large for the API server: %v", err)
	}
	var s Summary
	if err := json.Unmarshal([]byte(out.Annotations[SummaryAnnotation]), &s); err != nil {
		t.Fatal(err)
	}
	if s.Outcomes[NodeFailed] != 100 || s.Outcomes[NodeSucceeded] != 400 {
		t.Errorf("outcomes = %v, want 100 failed and 400 succeeded", s.Outcomes)
	}
	if s.Total.Removed != 500 || s.Total.Failed != 100000 {
		t.Errorf("total = %+v, want every node counted", s.Total)
	}
	if len(s.Nodes) == 0 || len(s.Nodes)+s.OmittedNodes != 500 {
		t.Fatalf("%d node lines + %d omitted, want 500 in all", len(s.Nodes), s.OmittedNodes)
	}
	for i, n := range s.Nodes[:min(len(s.Nodes), 100)] {
		if n.Outcome != NodeFailed {
			t.Fatalf("line %d is %s: failed nodes come first", i, n.Outcome)
		}
		if len(n.Result.FailedImages) != maxNodeFailedImages+1 || !strings.Contains(n.Result.FailedImages[maxNodeFailedImages], "190 more") {
			t.Fatalf("node %s lists %d failed images, want %d and a count of the rest", n.Node, len(n.Result.FailedImages), maxNodeFailedImages)
		}
	}
	if !strings.Contains(out.Message, "400 of 500 nodes succeeded") {
		t.Errorf("message %q", out.Message)
	}
	if out.Summary.Total.Removed != 500 {
		t.Errorf("metrics would count %d removed, want 500", out.Summary.Total.Removed)
	}
}

// TestSummaryBoundedWhateverReasonsNodesReport holds the README's promise ("What
// it writes" / Removal on the nodes):
//
//	"The summary stays under 64 KiB at any node count, so the Upgrade's
//	annotations never outgrow the API server's 256 KiB limit"
//
// total.skipped is the union of every node's skipped reasons, read from
// termination messages that each fit the kubelet's 4096 bytes. Reasons the
// remover does not give must be folded into one (ReasonUnknown), or distinct
// keys per node grow the total with the node count until the API server
// refuses the annotation and the upgrade never leaves Removing. Before the
// fix a result was taken as it was.
//
// Minimal input: 250 nodes, each Job complete with a termination message
// {"removed":1,...,"skipped":{"<node>-r0":1,...,"<node>-r99":1}} (< 4 KiB).
// Expected: summary <= 64 KiB. Before the fix: ~325 KB, over the API server's 256 KiB.
func TestSummaryBoundedWhateverReasonsNodesReport(t *testing.T) {
	var nodes []NodeSummary
	for i := range 250 {
		skipped := map[string]int{}
		for j := range 100 {
			skipped[fmt.Sprintf("n%03d-r%02d", i, j)] = 1
		}
		b, err := json.Marshal(map[string]any{"removed": 1, "failed": 0, "bytesReclaimed": 0, "skipped": skipped})
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > report.MaxTerminationMessage {
			t.Fatalf("termination message is %d bytes, over the kubelet's limit", len(b))
		}
		r := report.ResultFromTermination(string(b))
		nodes = append(nodes, NodeSummary{Node: fmt.Sprintf("node-%03d", i), Outcome: NodeSucceeded, Job: JobName(summaryUpgrade, fmt.Sprint(i)), Result: &r})
	}
	out, err := summarize(Summary{Nodes: nodes}, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := out.Annotations[SummaryAnnotation]
	if len(s) > maxSummaryBytes {
		t.Errorf("summary annotation is %d bytes, over the promised %d", len(s), maxSummaryBytes)
	}
	// The message as record writes it (escaped, cut to 1 KiB).
	annotations := map[string]string{StateAnnotation: string(out.State), MessageAnnotation: imagelist.Truncate(imagelist.Printable(out.Message), maxMessage)}
	for k, v := range out.Annotations {
		annotations[k] = v
	}
	if err := apivalidation.ValidateAnnotationsSize(annotations); err != nil {
		t.Errorf("the API server would refuse the final patch: %v", err)
	}
}
