package cleanup

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/imagelist"
)

// Second adversarial round over the state machine. Each test names the
// README promise it breaks, its minimal input, what is expected and what
// happened, and the cause; each failed before its fix.

// README, "Switching the cleanup off": a skip set while WaitingForRepo
// records Skipped at once ("A skipped Upgrade ... At completion it records
// state Skipped"), and "What it writes": the controller stops once another
// controller set plan-completed. Rule: a cleanup never sticks in a state
// that no event moves on.
//
// Minimal input: a first run Succeeded; re-run "t1" starts (run
// annotation t1); the plan ConfigMap is deleted mid-removal ("the way to
// stop a removal": Failed, phase removal); re-run "t2" is refused ("no plan
// is stored ...; remove the annotation state and plan-completed to plan
// again from the repo"); the person does exactly that. The repo is gone
// (Harvester deleted it after the first run), so the cleanup records
// WaitingForRepo. The person gives up and sets the skip annotation (or
// Harvester sets plan-completed).
//
// Expected: Skipped (resp. Succeeded "by another controller").
// Actual: nothing ("already waiting for the repo"), for ever: the repo of
// a finished upgrade never comes back.
// Cause: rerunning(u) is RunAnnotation != "" && underWay(state): the token
// of a run that ended long ago makes a first-run WaitingForRepo (which no
// re-run ever records) count as "a re-run under way", which overrides the
// skip and Harvester's done annotation. Round 1 fixed only refused tokens.
func TestAdversary2StartedRerunTokenDisablesSkipInWaitingForRepo(t *testing.T) {
	s := snapshot(StateSucceeded, "", false, PlanOwned)
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	s.Upgrade.Annotations[PlanDigestAnnotation] = tableDigest
	s.Upgrade.Annotations[RerunAnnotation] = "t1"
	a := Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StatePlanned || a.Outcome.Annotations[RunAnnotation] != "t1" {
		t.Fatalf("setup: re-run t1 should start; got %s %q (%s)", a.Kind, a.Outcome.State, a.Why)
	}
	s = applyOutcome(t, s, a)
	s = applyOutcome(t, s, Action{Kind: ActRecord, Outcome: Outcome{State: StateRemoving, Message: "removing on 3 nodes"}})

	// The plan is deleted mid-removal.
	s.Plan = PlanSeen{Presence: PlanAbsent}
	a = Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StateFailed || a.Outcome.Phase != PhaseRemoval {
		t.Fatalf("setup: a deleted plan should fail the removal; got %s %q %q (%s)", a.Kind, a.Outcome.State, a.Outcome.Phase, a.Why)
	}
	s = applyOutcome(t, s, a)

	// Re-run t2 is refused, telling the person what to remove.
	s.Upgrade.Annotations[RerunAnnotation] = "t2"
	a = Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.Annotations[RerunRefusedAnnotation] != "t2" || !strings.Contains(a.Outcome.Message, HarvesterDoneAnnotation) {
		t.Fatalf("setup: re-run t2 should be refused naming %s; got %s %q", HarvesterDoneAnnotation, a.Kind, a.Outcome.Message)
	}
	s = applyOutcome(t, s, a)

	// The person follows the message; the repo is gone.
	delete(s.Upgrade.Annotations, StateAnnotation)
	delete(s.Upgrade.Annotations, HarvesterDoneAnnotation)
	a = Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StateWaitingForRepo {
		t.Fatalf("setup: without a repo the cleanup should wait for it; got %s %q (%s)", a.Kind, a.Outcome.State, a.Why)
	}
	s = applyOutcome(t, s, a)

	t.Run("skip annotation", func(t *testing.T) {
		sk := s
		sk.Upgrade.Annotations = cloneAnn(s.Upgrade.Annotations)
		sk.Upgrade.Annotations[SkipAnnotation] = "true"
		got := Decide(sk, tableOpts)
		if got.Kind != ActRecord || got.Outcome.State != StateSkipped {
			t.Errorf("skip set while WaitingForRepo (run annotation %q of a run that ended): Decide = %s (state %q: %s), want Skipped",
				sk.Upgrade.Annotations[RunAnnotation], got.Kind, got.Outcome.State, got.Why)
		}
	})
	t.Run("Harvester's done annotation", func(t *testing.T) {
		hd := s
		hd.Upgrade.Annotations = cloneAnn(s.Upgrade.Annotations)
		hd.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
		got := Decide(hd, tableOpts)
		if got.Kind != ActRecord || got.Outcome.State != StateSucceeded {
			t.Errorf("Harvester set %s while WaitingForRepo (run annotation of a run that ended): Decide = %s (state %q: %s), want Succeeded by another controller",
				HarvesterDoneAnnotation, got.Kind, got.Outcome.State, got.Why)
		}
	})
}

// README, "Switching the cleanup off": "A removal already Removing runs to
// its end", and for replaced Upgrades "a removal already Removing runs to
// its end"; Skipped says "no image is removed" / "nothing is removed for
// it". Rule: never end without saying (truly) why.
//
// Minimal input: a first run Removing (Jobs on the nodes); the Upgrade's
// Completed condition goes back to not True (the brief's "Completed flips
// back"); then the skip annotation is set, or a newer Upgrade replaces it.
//
// Expected: the removal under way stays Removing and runs to its end, as it
// does when the skip or the replacement comes while Completed is True.
// Actual: the first sync records Planned over Removing ("planned ... at
// completion"), and the next one records Skipped "no image is removed"
// (resp. "a newer one replaced it before its removal started; nothing is
// removed for it") while the Jobs go on removing images, whose results are
// then never summarised.
// Cause: Decide sends every not-Completed Upgrade to decideEarly before
// looking at the state, and decideEarly's PlanOwned branch records Planned
// whatever the state was.
func TestAdversary2CompletedFlipsBackDuringRemoving(t *testing.T) {
	s := snapshot(StateRemoving, "", true, PlanOwned)
	s.Upgrade.Completed = false
	a := Decide(s, tableOpts)
	if a.Kind == ActRecord && a.Outcome.State != StateRemoving {
		t.Errorf("Completed no longer True during Removing: Decide records %q (%q), want the removal under way to stay Removing",
			a.Outcome.State, a.Outcome.Message)
	}
	if a.Kind == ActRecord {
		s = applyOutcome(t, s, a)
	}

	t.Run("then skipped", func(t *testing.T) {
		sk := s
		sk.Upgrade.Annotations = cloneAnn(s.Upgrade.Annotations)
		sk.Upgrade.Annotations[SkipAnnotation] = "true"
		sk.Upgrade.Completed = true
		got := Decide(sk, tableOpts)
		if got.Kind == ActRecord && got.Outcome.State == StateSkipped {
			t.Errorf("skip set after the flip: Decide records Skipped (%q) while the removal's Jobs run", got.Outcome.Message)
		}
	})
	t.Run("then replaced", func(t *testing.T) {
		rp := s
		rp.Upgrade.Labels = map[string]string{LatestUpgradeLabel: "false"}
		got := Decide(rp, tableOpts)
		if got.Kind == ActRecord && got.Outcome.State == StateSkipped {
			t.Errorf("replaced after the flip: Decide records Skipped (%q) while the removal's Jobs run", got.Outcome.Message)
		}
	})
}

// README, "Catch-up": "Set the annotation before the plan is written ...; a
// written plan is not changed by it", and "To re-arm, remove the state
// annotation ... A plan already written stands and is not fetched again";
// "Writes": "A plan, once written, stands: a restart between writing the
// ConfigMap and recording Planned does not fetch again."
//
// Minimal input: a completed, latest Upgrade with no state (a removal
// Failed and re-armed by a person, or an early plan whose Planned record
// did not land) and its owned, valid plan ConfigMap; the catch-up
// annotation, set after the plan was written, names the previous version
// (or "current").
//
// Expected: Planned from the written plan (nothing is fetched, so no
// catch-up version is used).
// Actual: Failed, phase fetch, "cannot fetch image lists: annotation ...
// catch-up entry ...": a written plan is blocked by an annotation that
// cannot change it, and the cleanup is said to have failed fetching while
// nothing is to be fetched.
// Cause: Decide calls validateInput (which checks the catch-up versions)
// before looking at s.Plan.Presence == PlanOwned.
func TestAdversary2CatchUpAnnotationBlocksAWrittenPlan(t *testing.T) {
	for _, v := range []string{"v1.4.2", CurrentVersion} {
		t.Run(v, func(t *testing.T) {
			s := snapshot("", "", false, PlanOwned)
			s.Upgrade.Annotations[CatchUpAnnotation] = v
			checkAction(t, Decide(s, tableOpts), doPlanned)
		})
	}
}

// README, "Re-running a stored plan": "A refused re-run ... keeps the
// state, says why in the message ... it never counts as a run"; rule: bad
// input changes nothing.
//
// Minimal input: a cleanup Failed with no failed phase (recorded by an
// older version, which Decide still handles: "failed after planning,
// recorded by a version that wrote no phase"; with no plan it is re-armed
// by the repo restarting), no plan stored, and a re-run token.
//
// Expected: the refusal keeps the phase as it was (none).
// Actual: the refusal's Outcome is Failed with Phase "", which record
// writes as phase "removal"; from then on settled() says "failed in phase
// removal; only a person re-arms it": the repo restarting no longer re-arms
// it.
// Cause: decideRerun copies the empty phase into an Outcome, and record
// turns an empty phase of Failed into PhaseRemoval.
func TestAdversary2RefusedRerunRewritesAnEmptyFailedPhase(t *testing.T) {
	s := snapshot(StateFailed, "", true, PlanAbsent)
	s.Upgrade.Annotations[RerunAnnotation] = "t1"
	a := Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.Annotations[RerunRefusedAnnotation] != "t1" {
		t.Fatalf("setup: the re-run without a plan should be refused; got %s (%s)", a.Kind, a.Why)
	}
	after := applyOutcome(t, s, a) // as record writes it: an empty phase of Failed becomes removal
	if got := after.Upgrade.Annotations[FailedPhaseAnnotation]; got != "" {
		t.Errorf("refused re-run wrote failed phase %q on a Failed cleanup that had none; want it kept", got)
	}
	if why := settled(after.Upgrade); why != "" {
		t.Errorf("after the refused re-run the cleanup is settled (%s); before it, the repo's next Ready phase re-armed it", why)
	}
}

// README, "Troubleshooting", Planned: "While the upgrade runs (`... while
// the upgrade ran; removal starts when it completes, without the repo`) it
// stays here by design until the Upgrade is Completed"; "Re-running a
// stored plan": a re-run records Planned (`re-run "TOKEN": running the
// stored plan again on every node, without the repo: ...`) and its Jobs
// start at once.
//
// Minimal input: a Succeeded cleanup whose plan was written early (the
// README's normal case), and a re-run token.
//
// Expected: a Planned message that says the removal runs now.
// Actual: `re-run "t1": running the stored plan again ...: 2 images of
// v1.4.2 planned for removal in ConfigMap u-image-cleanup, while the
// upgrade ran; removal starts when it completes, without the repo`: the
// message a person is told means "waiting for the upgrade to complete", on
// an upgrade completed long ago.
// Cause: decideRerun appends the plan's own message (planMessage), written
// for the plan's first Planned, whose early variant speaks of a completion
// still to come.
func TestAdversary2RerunOfAnEarlyPlanSaysItWaitsForCompletion(t *testing.T) {
	s := snapshot(StateSucceeded, "", false, PlanOwned)
	s.Upgrade.Annotations[PlanDigestAnnotation] = tableDigest
	s.Upgrade.Annotations[RerunAnnotation] = "t1"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "u-image-cleanup", Annotations: map[string]string{
		PreviousVersionAnnotation: "v1.4.2", PlanCountAnnotation: "2", PlannedEarlyAnnotation: "true",
	}}}
	s.Plan.Message, s.Plan.Ref.Early = planMessage(cm), true // as gather reads the plan
	a := Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StatePlanned {
		t.Fatalf("setup: the re-run should start; got %s %q (%s)", a.Kind, a.Outcome.State, a.Why)
	}
	if strings.Contains(a.Outcome.Message, "removal starts when it completes") {
		t.Errorf("re-run Planned message on a completed upgrade says it waits for completion: %q", a.Outcome.Message)
	}
}

// Rule: bad input gets a clear error naming what and where, and changes
// nothing; a cleanup never sticks. README, "Re-running a stored plan": the
// token is "any token"; the controller records it in
// harvesterhci.io/image-cleanup-run (started) or
// harvesterhci.io/image-cleanup-rerun-refused (refused). The API server
// allows 256 KiB for all of an object's annotations together (Summary's
// doc: an annotation that outgrew it "would be refused forever").
//
// Minimal input: a Succeeded cleanup with a stored plan and a re-run token
// of 150 KiB (accepted: the Upgrade's annotations stay under 256 KiB).
//
// Expected: the token refused with a message naming the annotation and its
// size (or an answer that fits), in one patch the API server accepts.
// Actual: Decide asks record to copy the whole token into the run
// annotation (and, refused, into rerun-refused): the Upgrade's annotations
// would be over 300 KiB, the API server refuses every such patch, the key
// is retried and dropped, every resync does it again, and the Upgrade never
// says why the re-run does not start.
// Cause: the token is neither bounded nor checked; its answer copies it.
func TestAdversary2HugeRerunTokenIsCopiedPastTheAnnotationLimit(t *testing.T) {
	const apiLimit = 256 << 10
	token := strings.Repeat("t", 150<<10)
	for _, tt := range []struct {
		name string
		plan PlanPresence
	}{{"started", PlanOwned}, {"refused", PlanAbsent}} {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot(StateSucceeded, "", false, tt.plan)
			s.Upgrade.Annotations[PlanDigestAnnotation] = tableDigest
			s.Upgrade.Annotations[RerunAnnotation] = token
			a := Decide(s, tableOpts)
			if a.Kind != ActRecord {
				t.Fatalf("setup: want a record, got %s (%s)", a.Kind, a.Why)
			}
			after := applyOutcome(t, s, a)
			after.Upgrade.Annotations[MessageAnnotation] = imagelist.Truncate(a.Outcome.Message, maxMessage)
			size := 0
			for k, v := range after.Upgrade.Annotations {
				size += len(k) + len(v)
			}
			if size > apiLimit {
				t.Errorf("the answer to a %d-byte token makes the Upgrade's annotations %d bytes, over the API server's %d: the patch is refused on every sync",
					len(token), size, apiLimit)
			}
		})
	}
}
