package cleanup

// What an operator sets on an Upgrade to steer its cleanup, and what the
// controller records in answer. The state machine reads them in Decide.
const (
	// SkipAnnotation, set to "true" on an Upgrade, skips its cleanup: no
	// plan, no Job; at completion the state becomes Skipped and
	// HarvesterDoneAnnotation is set, so Harvester's own cleanup does not
	// run either. Options.Skip does the same for every Upgrade.
	SkipAnnotation = "harvesterhci.io/image-cleanup-skip"
	// RerunAnnotation asks for the stored plan to run again on every target
	// node (new nodes, images pulled back), without the repo. Its value is
	// any token, such as a date: a token other than the last one started
	// (RunAnnotation) or refused (RerunRefusedAnnotation) starts one run
	// once the cleanup has ended (Succeeded, Failed or Skipped).
	RerunAnnotation = "harvesterhci.io/image-cleanup-rerun"
	// RunAnnotation records the RerunAnnotation token of the run the
	// controller last started; empty for the first run.
	RunAnnotation = "harvesterhci.io/image-cleanup-run"
	// RunIDAnnotation identifies the run the controller last started, its
	// Jobs' RunLabel: unique per start, so a token used again gets Jobs of
	// its own and is never summed up from an earlier run's.
	RunIDAnnotation = "harvesterhci.io/image-cleanup-run-id"
	// RerunningAnnotation is "true" while a re-run is Planned or Removing:
	// the done annotation its first run set, and a skip, do not stop it.
	// Any other state's record removes it, so a cleanup re-armed by a
	// person later is a first run again.
	RerunningAnnotation = "harvesterhci.io/image-cleanup-rerunning"
	// RerunRefusedAnnotation records a RerunAnnotation token the controller
	// refused (no plan stored, or not the one planned), so it is answered
	// once; it never marks a run under way.
	RerunRefusedAnnotation = "harvesterhci.io/image-cleanup-rerun-refused"
	// CatchUpAnnotation names, comma-separated, older versions whose images
	// the plan also removes (Options.CatchUp for every Upgrade): leftovers
	// of earlier upgrades whose cleanup did not run. Their lists come from
	// the same repo archive; one it does not serve (404) is recorded and
	// skipped.
	CatchUpAnnotation = "harvesterhci.io/image-cleanup-catch-up"
)

// StateSkipped: the cleanup was switched off for this Upgrade
// (SkipAnnotation) or for all (Options.Skip).
const StateSkipped State = "Skipped"
