package cleanup

import (
	"fmt"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// report.ResultFromTermination's doc: byte figures "are capped (maxCount,
// maxBytes) so that totals cannot overflow", and its bounds are "low enough
// that adding up the results of a million nodes cannot overflow"; README,
// "Space measured": the summary gives the measured bytes "in total", and
// upgrade_image_cleanup_bytes_reclaimed_total / _image_fs_freed_bytes_total
// add the summary's totals (metrics.removed).
//
// Minimal input: 2048 nodes whose pods' termination messages claim absurd
// figures ({"removed":1,"bytesReclaimed":1e300,"imageFs":{"usedBefore":1e300,
// "usedAfter":0}}), each checked down to the cap, 2^53 bytes.
//
// Expected: totals of at least one node's capped figure (2^53), never
// less than any one node's.
// Actual: 2048 × 2^53 = 2^64 wraps a uint64 to 0: the summary, the message
// ("0 B reclaimed", "0 B freed"), the status command and the metrics all
// say nothing was reclaimed; with 2049 nodes the totals are 2^53.
// Cause: the cap 2^53 only leaves 11 bits of headroom in a uint64, so 2048
// nodes (not a million) overflow summarize's and imageFsTotals' sums.
func TestAdversary2SummaryTotalsOverflowAtTwoThousandNodes(t *testing.T) {
	const nodes = 2048
	var s Summary
	for i := range nodes {
		r := report.ResultFromTermination(`{"removed":1,"failed":0,"bytesReclaimed":1e300,"imageFs":{"usedBefore":1e300,"usedAfter":0}}`)
		if r.Error != "" || r.BytesReclaimed == 0 {
			t.Fatalf("setup: the termination message should parse and be capped; got %+v", r)
		}
		s.Nodes = append(s.Nodes, NodeSummary{Node: fmt.Sprintf("n%04d", i), Outcome: NodeSucceeded, Result: &r})
	}
	one := s.Nodes[0].Result.BytesReclaimed
	out, err := summarize(s, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Summary.Total.BytesReclaimed; got < one {
		t.Errorf("total bytes reclaimed over %d nodes = %d, less than one node's capped %d: the sum overflowed", nodes, got, one)
	}
	if fs := out.Summary.ImageFs; fs == nil || fs.Freed < one || fs.UsedBefore < one {
		t.Errorf("image filesystem totals over %d nodes = %+v, less than one node's capped %d: the sums overflowed", nodes, fs, one)
	}
	if strings.Contains(out.Message, " 0 B reclaimed") {
		t.Errorf("message says nothing was reclaimed after %d nodes each reclaimed %d bytes: %s", nodes, one, out.Message)
	}
}
