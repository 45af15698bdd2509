package cleanup

import "testing"

// Fifth adversarial round over the state machine.
//
// Rule: bad input gets a clear error naming what and where, and changes
// nothing. README, "Switching the cleanup off": `annotate upgrade $U
// harvesterhci.io/image-cleanup-skip=true` switches this Upgrade's cleanup
// off; "What it writes": the annotation's value is `"true"`: no plan, no Job.
//
// Minimal input: a completed, latest Upgrade, its repo Ready, no plan,
// and the skip annotation written as an operator might type it: "True",
// "yes", "1", "TRUE".
//
// Expected: the value is refused, naming the annotation (a Failed or a
// message saying the value is not "true"), and nothing is fetched,
// planned or removed; or it is honoured as a skip.
// Actual: Decide answers ActFetch: the lists are fetched, the plan written
// and removal Jobs started, as if no skip had been asked for, and nothing
// on the Upgrade says the annotation was ignored (`status` even shows
// "Skip: True" under Operator).
// Cause: skipped() compares the value with "true" only; any other value
// is taken for "not skipped" instead of being refused.
func TestAdversary5SkipAnnotationNotLiterallyTrueRemovesImages(t *testing.T) {
	for _, v := range []string{"True", "TRUE", "yes", "1"} {
		t.Run(v, func(t *testing.T) {
			s := snapshot("", "", true, PlanAbsent)
			s.Upgrade.Annotations[SkipAnnotation] = v
			got := Decide(s, tableOpts)
			if got.Kind == ActFetch || got.Kind == ActExecute {
				t.Errorf("skip annotation %q: Decide = %s (%s): the cleanup goes on to plan and remove, and nothing says the annotation was not understood", v, got.Kind, got.Why)
			}
		})
	}
}
