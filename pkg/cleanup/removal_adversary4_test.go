package cleanup_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Fourth adversarial round: the controller over an annotation a person
// edited.
//
// README, "Re-running a stored plan": the run ID is
// harvesterhci.io/image-cleanup-run-id on the Upgrade, carried by the
// Jobs' label harvesterhci.io/image-cleanup-run; and the style the project
// follows (STYLE.md, cert-manager, client-go): a worker's panic ends the
// process (utilruntime.HandleCrash), so nothing read from the cluster may
// cause one. Rule: a bad annotation value fails that Upgrade's cleanup at
// worst; it never crash-loops the controller.
//
// Minimal input: a Planned Upgrade with its plan written, one node, and
// harvesterhci.io/image-cleanup-run-id set to "run 2" (not a label value).
//
// Expected: the sync returns (the cleanup goes on, or records Failed
// naming the annotation).
// Actual: the worker panics in jobExecutor.Execute: "values[0][...]:
// Invalid value: \"run 2\"". In Run, HandleCrash re-panics, the process
// exits, and after the restart the same Upgrade is synced again: a crash
// loop that stops every other Upgrade's cleanup too.
// Cause: Execute passes u.Annotations[RunIDAnnotation] unchecked to
// RunSelector, which panics on labels.NewRequirement's error ("a constant
// key and a hex value"); Decide never checks that value.
func TestAdversary4ARunIDThatIsNotALabelValuePanicsTheWorker(t *testing.T) {
	u, cm := plannedUpgrade(t, map[string]string{cleanup.RunIDAnnotation: "run 2"})
	objs := []runtime.Object{u, repoSlice(true).Obj(), cm, cleanuptest.Node("node-a")}
	f := newFixture(t, objs, cleanuptest.WithRemoval(1))
	panicked := func() (p any) {
		defer func() { p = recover() }()
		f.SyncRemoval()
		return nil
	}()
	if panicked != nil {
		t.Fatalf("the controller's sync panicked on run-id annotation %q: %v", "run 2", panicked)
	}
}
