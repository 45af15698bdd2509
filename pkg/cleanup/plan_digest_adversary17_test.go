package cleanup_test

import (
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// TestAResultWithAnErrorCountsNothing holds the README's "**The result
// names its plan.**": "a pod that is not our remover, or a remover given
// another plan, cannot pass its counts off as this plan's", "none of its
// figures reach the totals, the metrics or the message", and "A result that
// says the remover did not run (error ...) names no plan and is read as
// before: the node fails with the remover's own error" (also: "On 1 and 2
// the result's error says why and its counts are zero"; "A non-empty error
// in a result the remover wrote means it did not run to the end").
//
// nodeSummary skips the digest check whenever the result's error is set,
// keeps the outcome the Job's exit gave, and takes the figures. So a pod
// that exits 0 with a termination message such as
// {"removed":500,"failed":0,"bytesReclaimed":9000000000000000,"error":"x"}
// (no planDigest) is counted as a succeeded node and its 500 images and 8
// PiB reach the totals; with "belowThreshold" and "imageFs" it counts as a
// node skipped below the threshold, which also counts as succeeded.
//
// Now: the cleanup is Succeeded and the totals hold node-b's forged figures.
func TestAResultWithAnErrorCountsNothing(t *testing.T) {
	for _, tt := range []struct{ name, msg string }{
		{"counts beside an error", `{"removed":500,"failed":0,"bytesReclaimed":9000000000000000,"skipped":{"in-use":7},"error":"x"}`},
		{"below the threshold beside an error", `{"removed":0,"failed":0,"bytesReclaimed":0,"imageFs":{"usedBefore":1,"usedAfter":1},"belowThreshold":true,"threshold":2,"error":"x"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
			f.SyncRemoval()
			f.FinishJob("node-a", true, nodeResult)
			f.FinishJobWithMessage("node-b", true, tt.msg)
			f.SyncRemoval()
			if s := f.State(); s != cleanup.StateFailed {
				t.Errorf("state = %s, want Failed: node-b's result names no plan, and says the remover did not run", s)
			}
			sum := f.Summary()
			for _, n := range sum.Nodes {
				if n.Node == "node-b" && (n.Outcome != cleanup.NodeFailed || (n.Result != nil && (n.Result.Removed != 0 || n.Result.BytesReclaimed != 0 || n.Result.BelowThreshold))) {
					t.Errorf("node-b = {outcome %s, message %q, result %+v}, want failed, none of its figures taken", n.Outcome, n.Message, n.Result)
				}
			}
			if sum.Total.Removed != nodeResult.Removed || sum.Total.BytesReclaimed != nodeResult.BytesReclaimed || len(sum.Total.Skipped) != len(nodeResult.Skipped) {
				t.Errorf("totals removed %d, %d bytes, skipped %v; want node-a's alone (%d, %d, %v)", sum.Total.Removed, sum.Total.BytesReclaimed, sum.Total.Skipped,
					nodeResult.Removed, nodeResult.BytesReclaimed, nodeResult.Skipped)
			}
		})
	}
}
