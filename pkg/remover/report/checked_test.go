package report

import (
	"math"
	"strconv"
	"testing"
)

// TestResultFromTerminationCapsCounts holds README "The
// remover": ResultFromTermination "never fails: a result is taken after a
// check (a count below zero counts as zero, a skip reason the remover does
// not give counts as `unknown` ...)".
//
// Minimal input (a pod status is not the remover's to vouch for):
// {"removed":0,"failed":0,"bytesReclaimed":0,"skipped":{"a":9223372036854775807,"b":1}}
// Expected: skipped["unknown"] >= 0. Before the fix: the two unknown reasons are added
// up in int and wrap to -9223372036854775808, a count below zero after the
// check (and the controller's total and message then say "skipped -…").
func TestResultFromTerminationCapsCounts(t *testing.T) {
	msg := `{"removed":0,"failed":0,"bytesReclaimed":0,"skipped":{"a":` + strconv.Itoa(math.MaxInt) + `,"b":1}}`
	r := ResultFromTermination(msg)
	for reason, n := range r.Skipped {
		if n < 0 {
			t.Errorf("skipped[%s] = %d after the check, want no count below zero", reason, n)
		}
	}
}

// TestResultFromTerminationNegativeBytesKeepTheResult holds the same
// promise: "a result is taken after a check (a count below zero counts as
// zero ...)", and "A non-empty `error` means the remover did not run to the
// end".
//
// Minimal input: {"removed":3,"failed":0,"bytesReclaimed":-1}
// Expected: a result with Removed 3, BytesReclaimed 0 and no Error (like
// {"removed":-1,...} is clamped). Before the fix: bytesReclaimed is a uint64, so the
// JSON does not parse as a Result and the whole message becomes Error text:
// the node's counts are lost and it reads as a remover that did not run.
func TestResultFromTerminationNegativeBytesKeepTheResult(t *testing.T) {
	r := ResultFromTermination(`{"removed":3,"failed":0,"bytesReclaimed":-1}`)
	if r.Error != "" || r.Removed != 3 || r.BytesReclaimed != 0 {
		t.Errorf("ResultFromTermination = %+v, want Removed 3, BytesReclaimed 0 (below zero counts as zero), no Error", r)
	}
}
