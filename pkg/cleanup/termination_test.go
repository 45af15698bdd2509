package cleanup_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// TestRemoverErrorInAResultIsEscaped holds the README's
// promise (Removal on the nodes):
//
//	"what it said (its error on exit codes 1 and 2, or plain text from an
//	older remover) is shown, escaped and cut to 512 bytes, in that node's
//	line of the summary"
//
// Plain text is escaped (imagelist.Printable), and so must a result's error
// be: JSON only encodes control bytes, and `jq -r` prints them to the
// operator's terminal as they are. Before the fix a result was taken as it
// was.
//
// Minimal input: one node, Job failed, termination message
// {"removed":0,"failed":0,"bytesReclaimed":0,"error":"\u001b[2J\u001b[31mboom\nsecond line"}.
// Expected: the node's message says `\x1b[2J\x1b[31mboom\nsecond line`
// escaped. Before the fix: raw ESC and newline bytes.
func TestRemoverErrorInAResultIsEscaped(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	f.FinishJobWithMessage("node-a", false, `{"removed":0,"failed":0,"bytesReclaimed":0,"error":"\u001b[2J\u001b[31mboom\nsecond line"}`)
	f.SyncRemoval()
	s := f.Summary()
	if len(s.Nodes) != 1 {
		t.Fatalf("summary %+v", s)
	}
	n := s.Nodes[0]
	if strings.ContainsAny(n.Message, "\x1b\n") {
		t.Errorf("node message %q holds raw control bytes, want them escaped as the plain-text path does", n.Message)
	}
	if n.Result != nil && strings.ContainsAny(n.Result.Error, "\x1b\n") {
		t.Errorf("node result error %q holds raw control bytes", n.Result.Error)
	}
}

// TestNegativeCountsInATerminationMessage: the controller reads the
// termination message with `report.ResultFromTermination`, which never
// fails, and removal totals are counted once, when the final state is
// written. Before the fix a negative count was taken as it was, summed
// into the total and added to a Prometheus counter, which panics on a
// negative Add: nothing recovers it in processNextItem, so the binary
// exited right after writing the final state. Counts below zero now count
// as zero.
//
// Minimal input: one node, Job complete, termination message
// {"removed":-1,"failed":0,"bytesReclaimed":0}.
// Expected: the sync records the outcome and returns. Before the fix: panic
// "counter cannot decrease in value".
func TestNegativeCountsInATerminationMessage(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a"})
	f.SyncRemoval()
	f.FinishJobWithMessage("node-a", true, `{"removed":-1,"failed":0,"bytesReclaimed":0,"planDigest":"`+f.PlanDigest()+`"}`)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("sync panicked on a termination message with a negative count: %v", r)
			}
		}()
		f.SyncRemoval()
	}()
	if f.State() != cleanup.StateSucceeded {
		t.Fatalf("state = %s, want Succeeded recorded", f.State())
	}
	if s := f.Summary(); s.Total.Removed != 0 || s.Nodes[0].Result.Removed != 0 {
		t.Errorf("summary %+v: a negative count must count as zero", s)
	}
}

// TestTotalsDoNotWrapBelowZero holds README "Removal on the
// nodes" / "The remover": ResultFromTermination takes a result "after a
// check (a count below zero counts as zero ...)", and "`outcomes` and
// `total` always count every node".
//
// Minimal input: two nodes, Jobs complete, each pod's termination message
// {"removed":9223372036854775807,"failed":0,"bytesReclaimed":0} (each
// passes the check: not below zero).
// Expected: total.removed not below zero, the message never says
// "removed -2 images". Before the fix: summarize adds the nodes' counts in int, the
// total wraps to -2 and the Upgrade's message says "removed -2 images".
func TestTotalsDoNotWrapBelowZero(t *testing.T) {
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"})
	f.SyncRemoval()
	msg := `{"removed":` + strconv.Itoa(math.MaxInt) + `,"failed":0,"bytesReclaimed":0,"planDigest":"` + f.PlanDigest() + `"}`
	f.FinishJobWithMessage("node-a", true, msg)
	f.FinishJobWithMessage("node-b", true, msg)
	f.SyncRemoval()
	if f.State() != cleanup.StateSucceeded {
		t.Fatalf("state = %s, want Succeeded", f.State())
	}
	s := f.Summary()
	if s.Total.Removed < 0 {
		t.Errorf("summary total removed = %d, below zero", s.Total.Removed)
	}
	if m := f.Annotations()[cleanup.MessageAnnotation]; strings.Contains(m, "removed -") {
		t.Errorf("message %q counts below zero", m)
	}
}
