package cleanup

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// README, "Removal on the nodes": the summary "stays under 64 KiB at any
// node count ...; node lines come failed first, then `left`, then
// `succeeded` ..., as many lines as fit"; Summary's doc: "node lines failed
// first".
//
// Minimal input: disk-pressure mode on a large cluster: 600 nodes below the
// threshold (outcome skipped), named harvester-node-000..599, and one node
// whose Job failed, named worker-0 (sorting after them).
//
// Expected: worker-0's line is in the summary: failed lines come first.
// Actual: it is omitted, while hundreds of skipped lines are kept.
// Cause: boundedSummary's rank map has no entry for NodeSkipped, so a
// skipped node ranks 0, the same as a failed one, and the tie is broken by
// node name.
func TestAdversarySummaryKeepsFailedLinesBeforeSkippedOnes(t *testing.T) {
	var nodes []NodeSummary
	for i := range 600 {
		r := &report.Result{BelowThreshold: true, Threshold: 50 << 30, ImageFs: &report.ImageFs{UsedBefore: 31 << 30, UsedAfter: 31 << 30}}
		nodes = append(nodes, NodeSummary{
			Node: fmt.Sprintf("harvester-node-%03d", i), Job: JobName(summaryUpgrade, fmt.Sprint(i)), Outcome: NodeSkipped,
			Message: "image filesystem holds 33.3 GB, below the threshold 53.7 GB: nothing removed", Result: r,
		})
	}
	nodes = append(nodes, NodeSummary{Node: "worker-0", Job: JobName(summaryUpgrade, "worker-0"), Outcome: NodeFailed,
		Message: "BackoffLimitExceeded: Job has reached the specified backoff limit", Result: &report.Result{Failed: 3}})
	out, err := summarize(Summary{Nodes: nodes}, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	var s Summary
	if err := json.Unmarshal([]byte(out.Annotations[SummaryAnnotation]), &s); err != nil {
		t.Fatal(err)
	}
	if s.OmittedNodes == 0 {
		t.Fatalf("setup: no node line omitted (%d lines); make the cluster larger", len(s.Nodes))
	}
	for _, n := range s.Nodes {
		if n.Outcome == NodeFailed {
			return
		}
	}
	t.Errorf("the failed node's line is omitted (%d lines kept, %d omitted, first kept %q outcome %q); failed lines must come first",
		len(s.Nodes), s.OmittedNodes, s.Nodes[0].Node, s.Nodes[0].Outcome)
}
