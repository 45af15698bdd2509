package cleanup

import (
	"fmt"
	"strings"
	"testing"
)

// Adversarial rows of the state machine (issue 14's operator controls).
// Each test names the README promise it breaks; each failed before
// its fix.

// applyOutcome is s after apply recorded a's Outcome on the Upgrade, as
// record's merge patch (annotationPatch) leaves the annotations.
func applyOutcome(t *testing.T, s Snapshot, a Action) Snapshot {
	t.Helper()
	if a.Kind != ActRecord {
		t.Fatalf("applyOutcome: %s is not a record (%s)", a.Kind, a.Why)
	}
	patch, changed := annotationPatch(s.Upgrade, a.Outcome)
	if !changed {
		return s
	}
	ann := map[string]string{}
	for k, v := range s.Upgrade.Annotations {
		ann[k] = v
	}
	for k, v := range patch {
		if v == nil {
			delete(ann, k)
		} else {
			ann[k] = v.(string)
		}
	}
	s.Upgrade.Annotations = ann
	return s
}

// README, "Switching the cleanup off": skip means "no plan, no Job;
// Skipped at completion", and "What it writes": the controller does nothing
// once Harvester set harvesterhci.io/image-cleanup-plan-completed
// ("another controller sets plan-completed → Succeeded, saying so").
//
// Minimal input: a cleanup Failed in phase fetch (no plan stored) gets a
// re-run token; the re-run is refused ("no plan is stored") and the token
// is recorded in harvesterhci.io/image-cleanup-run. The repo restarts, which
// re-arms the failure to WaitingForRepo (README: only fetch is re-armed by
// the repo). Now the operator sets harvesterhci.io/image-cleanup-skip=true
// (or Harvester sets plan-completed), and the repo is Ready.
//
// Expected: Skipped (resp. Succeeded "by another controller"), no fetch.
// Actual: ActFetch: the plan is fetched and written and the Jobs follow.
// Cause: rerunning(u) is true for any RunAnnotation while the state is
// under way, so a refused re-run's token makes every later first-run state
// (WaitingForRepo, Planned, Removing) count as "a re-run under way", which
// overrides the skip and Harvester's done annotation.
func TestAdversaryRefusedRerunTokenDisablesSkipAndHarvesterDone(t *testing.T) {
	s := snapshot(StateFailed, PhaseFetch, true, PlanAbsent)
	s.Upgrade.Annotations[RerunAnnotation] = "t1"
	a := Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StateFailed || a.Outcome.Annotations[RerunRefusedAnnotation] != "t1" {
		t.Fatalf("setup: the re-run without a plan should be refused and recorded; got %s %q %v", a.Kind, a.Outcome.State, a.Outcome.Annotations)
	}
	s = applyOutcome(t, s, a)

	// The repo restarts: not Ready re-arms the fetch failure.
	s.Repo = readyRepo
	s.Repo.Endpoints = nil
	a = Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StateWaitingForRepo {
		t.Fatalf("setup: the repo going away should re-arm the fetch failure; got %s %q (%s)", a.Kind, a.Outcome.State, a.Why)
	}
	s = applyOutcome(t, s, a)
	s.Repo, s.Epoch = readyRepo, 2

	t.Run("skip annotation", func(t *testing.T) {
		sk := s
		sk.Upgrade.Annotations = cloneAnn(s.Upgrade.Annotations)
		sk.Upgrade.Annotations[SkipAnnotation] = "true"
		got := Decide(sk, tableOpts)
		if got.Kind != ActRecord || got.Outcome.State != StateSkipped {
			t.Errorf("skip set while WaitingForRepo after a refused re-run: Decide = %s (state %q: %s), want Skipped with no fetch",
				got.Kind, got.Outcome.State, got.Why)
		}
	})
	t.Run("skip option", func(t *testing.T) {
		got := Decide(s, DecideOptions{MaxRetries: 4, Skip: true})
		if got.Kind != ActRecord || got.Outcome.State != StateSkipped {
			t.Errorf("--skip while WaitingForRepo after a refused re-run: Decide = %s (state %q: %s), want Skipped with no fetch",
				got.Kind, got.Outcome.State, got.Why)
		}
	})
	t.Run("Harvester's done annotation", func(t *testing.T) {
		hd := s
		hd.Upgrade.Annotations = cloneAnn(s.Upgrade.Annotations)
		hd.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
		got := Decide(hd, tableOpts)
		if got.Kind == ActFetch || got.Kind == ActExecute {
			t.Errorf("Harvester set %s while WaitingForRepo after a refused re-run: Decide = %s (%s), want the cleanup to stop (Succeeded, by another controller)",
				HarvesterDoneAnnotation, got.Kind, got.Why)
		}
	})
}

func cloneAnn(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

// README, "Re-running a stored plan": "The repo is not asked; the plan's
// digest is checked as always", and "What it writes":
// harvesterhci.io/image-cleanup-plan-digest is "recorded with Planned; a
// plan whose content no longer matches is never run". The troubleshooting
// entry for "images.txt has digest ..., but ..." says "no Job ran on it".
//
// Minimal input: an ended cleanup (Succeeded, or Failed in phase plan
// because the plan changed) whose Upgrade recorded digest sha256:old, and
// a plan ConfigMap owned by the Upgrade whose images.txt and digest
// annotation were both changed since (digest tableDigest); a re-run token.
//
// Expected: the re-run refused (the plan is not the one planned).
// Actual: Planned, recording the changed plan's digest on the Upgrade, so
// decideExecute's check against the Upgrade passes and Jobs run it.
// Cause: decideRerun checks only PlanSeen.Invalid (ConfigMap content vs
// its own annotation) and overwrites PlanDigestAnnotation with p.Ref.Digest.
func TestAdversaryRerunRunsAPlanChangedSinceItWasPlanned(t *testing.T) {
	for _, tt := range []struct {
		name  string
		state State
		phase Phase
	}{
		{"after Succeeded", StateSucceeded, ""},
		{"after Failed because the plan changed", StateFailed, PhasePlan},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := snapshot(tt.state, tt.phase, false, PlanOwned)
			s.Upgrade.Annotations[PlanDigestAnnotation] = "sha256:old"
			s.Upgrade.Annotations[RerunAnnotation] = "t1"
			got := Decide(s, tableOpts)
			if got.Kind == ActRecord && got.Outcome.State == StatePlanned {
				t.Errorf("re-run of a plan whose digest %s is not the %s the Upgrade recorded: Planned, recording %q (%s); want it refused",
					s.Plan.Ref.Digest, "sha256:old", got.Outcome.Annotations[PlanDigestAnnotation], got.Outcome.Message)
			}
		})
	}
}

// README, "Re-running a stored plan": a token other than the last one
// started or refused starts a run, with Jobs of its own.
//
// Minimal input: re-run token "a" runs and succeeds, then token "b" runs
// and succeeds, then the operator sets "a" again: a change of the
// annotation, so a request.
//
// Expected: a new run whose run ID (its Jobs' label) is not the first
// "a"'s, so no earlier run's Jobs are taken for it. Before the fix the run
// was named by its token alone, and the old "a" Jobs were summed up again.
func TestAdversaryRerunTokenActedOnRunsAgain(t *testing.T) {
	s := snapshot(StateSucceeded, "", false, PlanOwned)
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	var firstA string
	for i, token := range []string{"a", "b", "a"} {
		s.Upgrade.Annotations[RerunAnnotation] = token
		s.Upgrade.ResourceVersion = fmt.Sprint(100 + i) // each write is a new version
		got := Decide(s, tableOpts)
		if i == 0 {
			firstA = got.Outcome.Annotations[RunIDAnnotation]
		}
		if i == 2 {
			if got.Kind != ActRecord || got.Outcome.State != StatePlanned || got.Outcome.Annotations[RunIDAnnotation] == firstA {
				t.Errorf("token %q set again after %q: Decide = %s (state %q, run ID %q, first %q's was %q), want a new run with an ID of its own",
					token, "b", got.Kind, got.Outcome.State, got.Outcome.Annotations[RunIDAnnotation], token, firstA)
			}
			return
		}
		if got.Kind != ActRecord || got.Outcome.State != StatePlanned {
			t.Fatalf("setup: token %q: Decide = %s %q, want Planned", token, got.Kind, got.Outcome.State)
		}
		s = applyOutcome(t, s, got)
		// The run ends as it would: Succeeded.
		s.Upgrade.Annotations[StateAnnotation] = string(StateSucceeded)
	}
}

// The brief's rule: a cleanup never sticks in a state no event, resync or
// restart moves on, and never ends without saying why on the Upgrade.
// README, "The timeline": the early plan's message reads "... while the
// upgrade ran; removal starts when it completes".
//
// Minimal input: the plan was written while the upgrade ran (state Planned,
// Completed not True); the upgrade then fails and a new one replaces it, so
// this Upgrade's harvesterhci.io/latestUpgrade becomes "false".
//
// Expected: a state (or message) saying the removal will not run because
// the Upgrade is no longer the latest.
// Actual: ActNothing, forever (settled: "not the latest upgrade"), and the
// Upgrade keeps saying Planned, "removal starts when it completes".
func TestAdversaryEarlyPlanStuckWhenTheUpgradeIsReplaced(t *testing.T) {
	for _, completed := range []bool{false, true} {
		s := snapshot(StatePlanned, "", true, PlanOwned)
		s.Upgrade.Completed = completed
		s.Upgrade.Annotations[MessageAnnotation] = "2 images of v1.4.2 planned for removal in ConfigMap u-image-cleanup, while the upgrade ran; removal starts when it completes, without the repo"
		s.Upgrade.Labels[LatestUpgradeLabel] = "false"
		got := Decide(s, tableOpts)
		if got.Kind == ActNothing && strings.Contains(s.Upgrade.Annotations[MessageAnnotation], "removal starts when it completes") {
			t.Errorf("completed=%v, no longer latest: Decide = nothing (%s); the Upgrade says %q for ever",
				completed, got.Why, s.Upgrade.Annotations[MessageAnnotation])
		}
	}
}

// The brief's rule: a refused re-run says why. README, "Re-running a stored
// plan": "Without a stored plan the re-run is refused: the state stays, the
// message says why ... and the token is recorded as acted on".
//
// Minimal input: a Succeeded cleanup with its plan stored, on an Upgrade a
// newer one has replaced (harvesterhci.io/latestUpgrade "false"), e.g. to
// remove the images again from a node that joined since; a re-run token.
//
// Expected: either the re-run runs, or it is refused with a message naming
// why (not the latest Upgrade) and the token recorded.
// Actual: ActNothing: nothing is written, the token is never recorded, the
// message still reads as the first run's.
// Cause: settled() returns "not the latest upgrade" before pendingRerun is
// consulted.
func TestAdversaryRerunOnAReplacedUpgradeIsSilentlyIgnored(t *testing.T) {
	s := snapshot(StateSucceeded, "", false, PlanOwned)
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	s.Upgrade.Annotations[RerunAnnotation] = "node-4-joined"
	s.Upgrade.Labels[LatestUpgradeLabel] = "false"
	got := Decide(s, tableOpts)
	if got.Kind == ActNothing {
		t.Errorf("re-run token on an Upgrade no longer latest: Decide = nothing (%s); nothing on the Upgrade says the re-run was refused", got.Why)
	}
}
