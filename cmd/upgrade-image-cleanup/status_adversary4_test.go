package main

import (
	"fmt"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Fourth adversarial round over the status command.
//
// README, "Reading a cleanup's status": "Messages come from pods and
// people: every value is escaped ... and bounded", "It only reads", and
// "Exit code 0 when the status is printed; 1 when the cluster cannot be
// reached or read ...". Rule: a read-only command never crashes on what
// is on the cluster.
//
// Minimal input: an Upgrade in state Removing whose
// harvesterhci.io/image-cleanup-run-id annotation is not a label value
// (a person edited it: "run 2", or a value over 63 characters).
//
// Expected: the status is printed (exit 0), or an error (exit 1).
// Actual: the command panics: "panic: values[0][...]: Invalid value ...".
// Cause: ReadStatus (fromJobs) passes the annotation as it is to
// cleanup.RunSelector, which calls labels.NewRequirement and panics on its
// error ("a constant key and a hex value"), but the value is read from the
// Upgrade, which anyone with patch rights can set.
func TestAdversary4StatusPanicsOnARunIDThatIsNotALabelValue(t *testing.T) {
	for _, runID := range []string{"run 2", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		t.Run(runID, func(t *testing.T) {
			u, cm := plannedStatusUpgrade(t, cleanup.StateRemoving, map[string]string{cleanup.RunIDAnnotation: runID})
			fx := newStatusFixture(u, cm, runningJob("node-a", true))
			var code int
			var errOut string
			panicked := func() (p any) {
				defer func() { p = recover() }()
				code, _, errOut = fx.status(t, statusUpgrade, "-n", statusNS)
				return nil
			}()
			if panicked != nil {
				t.Fatalf("status panicked on run-id annotation %q: %v", runID, fmt.Sprint(panicked))
			}
			if code != 0 && code != 1 {
				t.Errorf("exit %d (%s), want 0 or 1", code, errOut)
			}
		})
	}
}
