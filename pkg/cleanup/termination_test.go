package cleanup

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

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
		if len(b) > remover.MaxTerminationMessage {
			t.Fatalf("termination message is %d bytes, over the kubelet's limit", len(b))
		}
		r := remover.ResultFromTermination(string(b))
		nodes = append(nodes, NodeSummary{Node: fmt.Sprintf("node-%03d", i), Outcome: NodeSucceeded, Job: JobName(testUpgrade, fmt.Sprint(i)), Result: &r})
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
	f.syncRemoval()
	f.finishJobWithMessage("node-a", false, `{"removed":0,"failed":0,"bytesReclaimed":0,"error":"\u001b[2J\u001b[31mboom\nsecond line"}`)
	f.syncRemoval()
	s := f.summary()
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
// termination message with `remover.ResultFromTermination`, which never
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
	f.syncRemoval()
	f.finishJobWithMessage("node-a", true, `{"removed":-1,"failed":0,"bytesReclaimed":0}`)
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("sync panicked on a termination message with a negative count: %v", r)
			}
		}()
		f.syncRemoval()
	}()
	if f.state() != StateSucceeded {
		t.Fatalf("state = %s, want Succeeded recorded", f.state())
	}
	if s := f.summary(); s.Total.Removed != 0 || s.Nodes[0].Result.Removed != 0 {
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
	f.syncRemoval()
	msg := `{"removed":` + strconv.Itoa(math.MaxInt) + `,"failed":0,"bytesReclaimed":0}`
	f.finishJobWithMessage("node-a", true, msg)
	f.finishJobWithMessage("node-b", true, msg)
	f.syncRemoval()
	if f.state() != StateSucceeded {
		t.Fatalf("state = %s, want Succeeded", f.state())
	}
	s := f.summary()
	if s.Total.Removed < 0 {
		t.Errorf("summary total removed = %d, below zero", s.Total.Removed)
	}
	if m := f.annotations()[MessageAnnotation]; strings.Contains(m, "removed -") {
		t.Errorf("message %q counts below zero", m)
	}
}
