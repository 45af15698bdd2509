package cleanup_test

import (
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// TestAResultAboutAnotherPlanIsRefused: a node's result counts only when it
// names the plan this run removes; one that names another plan, or none,
// fails the node, saying which plan it names, and none of its figures
// reach the totals. A result that says the remover did not run is read as
// before: it carries no plan, and its error says why.
func TestAResultAboutAnotherPlanIsRefused(t *testing.T) {
	const other = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	for _, tt := range []struct {
		name        string
		result      report.Result
		wantMessage []string
	}{
		{"another plan", report.Result{Removed: 7, BytesReclaimed: 9e9, PlanDigest: other},
			[]string{"names plan " + other, "not the plan sha256:", "not counted"}},
		{"no plan", report.Result{Removed: 7, BytesReclaimed: 9e9, PlanDigest: ""},
			[]string{"names no plan", "not counted"}},
		{"hostile text for a plan", report.Result{Removed: 7, BytesReclaimed: 9e9, PlanDigest: "sha256:\x1b[2J\n" + strings.Repeat("f", 500)},
			[]string{`names plan sha256:\x1b[2J\n`, "not counted"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
			f.SyncRemoval()
			f.FinishJob("node-a", true, nodeResult)
			msg, err := tt.result.TerminationMessage()
			if err != nil {
				t.Fatal(err)
			}
			f.FinishJobWithMessage("node-b", true, string(msg))
			f.SyncRemoval()
			if s := f.State(); s != cleanup.StateFailed {
				t.Errorf("state = %s, want Failed: node-b's result is not about this plan", s)
			}
			sum := f.Summary()
			for _, n := range sum.Nodes {
				if n.Node != "node-b" {
					continue
				}
				if n.Outcome != cleanup.NodeFailed || n.Result != nil {
					t.Errorf("node-b = %+v, want failed, without its result", n)
				}
				for _, w := range tt.wantMessage {
					if !strings.Contains(n.Message, w) {
						t.Errorf("node-b's message %q does not say %q", n.Message, w)
					}
				}
				if strings.ContainsAny(n.Message, "\x1b\n") || len(n.Message) > 400 {
					t.Errorf("node-b's message %q is not escaped and bounded", n.Message)
				}
			}
			if sum.Total.Removed != nodeResult.Removed || sum.Total.BytesReclaimed != nodeResult.BytesReclaimed {
				t.Errorf("totals removed %d, %d bytes; want node-a's alone (%d, %d)", sum.Total.Removed, sum.Total.BytesReclaimed, nodeResult.Removed, nodeResult.BytesReclaimed)
			}
		})
	}

	t.Run("the remover did not run", func(t *testing.T) {
		f := newRemovalFixture(t, 1, []string{"node-a"})
		f.SyncRemoval()
		f.FinishJob("node-a", false, report.Result{Error: "plan /etc/image-cleanup/images.txt has digest sha256:x, want sha256:y"})
		f.SyncRemoval()
		n := f.Summary().Nodes[0]
		if n.Outcome != cleanup.NodeFailed || !strings.Contains(n.Message, "remover: plan /etc/image-cleanup/images.txt has digest") || strings.Contains(n.Message, "not counted") {
			t.Errorf("node-a = %+v, want failed with the remover's own error", n)
		}
	})
}
