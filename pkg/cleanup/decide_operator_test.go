package cleanup

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Issue 14's rows of the state machine: planning while the upgrade runs,
// skip, re-run and catch-up. snapshot() is a completed, latest Upgrade.

// running is s while the upgrade runs: not Completed.
func running(s Snapshot) Snapshot {
	s.Upgrade.Completed = false
	return s
}

func TestDecideWhileTheUpgradeRuns(t *testing.T) {
	tests := []struct {
		name string
		snap Snapshot
		want want
	}{
		{"repo Ready, no plan: plan early", running(snapshot("", "", true, PlanAbsent)), doFetch},
		{"repo not Ready: nothing recorded", running(snapshot("", "", false, PlanAbsent)), doNothing},
		{"plan written: Planned", running(snapshot("", "", true, PlanOwned)), doPlanned},
		{"plan written, repo gone: Planned", running(snapshot("", "", false, PlanOwned)), doPlanned},
		// Perhaps a deleted Upgrade's plan the garbage collector is about
		// to remove: the completion records it if it stays.
		{"plan's place taken: nothing yet", running(snapshot("", "", true, PlanForeign)), doNothing},
		{"Planned: removal waits for completion", running(snapshot(StatePlanned, "", true, PlanOwned)), doNothing},
		{"no previousVersion yet: nothing", func() Snapshot {
			s := running(snapshot("", "", true, PlanAbsent))
			s.Upgrade.PreviousVersion = ""
			return s
		}(), doNothing},
		{"previousVersion invalid: nothing until completion", func() Snapshot {
			s := running(snapshot("", "", true, PlanAbsent))
			s.Upgrade.PreviousVersion = "../x"
			return s
		}(), doNothing},
		{"not latest: nothing", func() Snapshot {
			s := running(snapshot("", "", true, PlanAbsent))
			s.Upgrade.Labels = nil
			return s
		}(), doNothing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkAction(t, Decide(tt.snap, tableOpts), tt.want)
		})
	}
	// At completion the written plan runs, whatever the repo does.
	s := snapshot(StatePlanned, "", false, PlanOwned)
	s.Plan.Ref.Early = true
	checkAction(t, Decide(s, tableOpts), doExecute)
}

// An early fetch that fails records nothing: the upgrade is not over, and
// its completion plans again.
func TestDecideOnAFailedEarlyFetch(t *testing.T) {
	tests := []struct {
		name    string
		ready   bool
		epoch   uint64
		attempt int
		want    want
	}{
		{"Ready, retries left: retry", true, 1, 0, want{kind: ActRetry}},
		{"Ready, retries spent: nothing, not Failed", true, 1, 4, doNothing},
		{"repo went not ready: nothing", false, 1, 0, doNothing},
		{"repo restarted: fetch again", true, 2, 0, want{kind: ActRequeue}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := running(snapshot("", "", tt.ready, PlanAbsent))
			s.Epoch, s.Attempt, s.Tried = tt.epoch, tt.attempt, &Tried{Epoch: 1, FetchErr: errFetch}
			got := Decide(s, tableOpts)
			checkAction(t, got, tt.want)
			if got.PinFailure {
				t.Error("an early failure is pinned; the completion must plan again")
			}
		})
	}
}

func TestDecideSkip(t *testing.T) {
	skipAnn := func(s Snapshot) Snapshot {
		s.Upgrade.Annotations[SkipAnnotation] = "true"
		return s
	}
	doSkip := want{kind: ActRecord, state: StateSkipped}
	tests := []struct {
		name string
		snap Snapshot
		opts DecideOptions
		want want
		msg  string
	}{
		{"annotation, at completion", skipAnn(snapshot("", "", true, PlanAbsent)), tableOpts, doSkip, SkipAnnotation + "=true"},
		{"annotation, waiting for the repo", skipAnn(snapshot(StateWaitingForRepo, "", false, PlanAbsent)), tableOpts, doSkip, SkipAnnotation},
		{"annotation, planned early", skipAnn(snapshot(StatePlanned, "", false, PlanOwned)), tableOpts, doSkip, SkipAnnotation},
		{"annotation, fetch failed", skipAnn(snapshot(StateFailed, PhaseFetch, true, PlanAbsent)), tableOpts, doSkip, SkipAnnotation},
		{"annotation other than true", func() Snapshot {
			s := snapshot("", "", true, PlanAbsent)
			s.Upgrade.Annotations[SkipAnnotation] = "false"
			return s
		}(), tableOpts, doFetch, ""},
		{"option, at completion", snapshot("", "", true, PlanAbsent), DecideOptions{MaxRetries: 4, Skip: true}, doSkip, "option skip"},
		{"annotation True, as strconv reads it", func() Snapshot {
			s := snapshot("", "", true, PlanAbsent)
			s.Upgrade.Annotations[SkipAnnotation] = "True"
			return s
		}(), tableOpts, doSkip, SkipAnnotation + "=True"},
		{"annotation neither true nor false: Failed, nothing fetched", func() Snapshot {
			s := snapshot("", "", true, PlanAbsent)
			s.Upgrade.Annotations[SkipAnnotation] = "yes"
			return s
		}(), tableOpts, doFail(PhaseFetch), ""},
		{"while the upgrade runs: no early plan, nothing recorded", running(skipAnn(snapshot("", "", true, PlanAbsent))), tableOpts, doNothing, ""},
		{"removal under way runs to its end", skipAnn(snapshot(StateRemoving, "", true, PlanOwned)), tableOpts, doExecute, ""},
		{"Succeeded stays", skipAnn(snapshot(StateSucceeded, "", true, PlanOwned)), tableOpts, doNothing, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.snap, tt.opts)
			checkAction(t, got, tt.want)
			if tt.want == doSkip {
				if got.Outcome.Annotations[HarvesterDoneAnnotation] != "true" {
					t.Errorf("Skipped without %s: Harvester's own cleanup would run", HarvesterDoneAnnotation)
				}
				if !strings.Contains(got.Outcome.Message, tt.msg) {
					t.Errorf("message %q does not say why (%q)", got.Outcome.Message, tt.msg)
				}
			}
		})
	}
}

func TestDecideRerun(t *testing.T) {
	withToken := func(s Snapshot, token, run string) Snapshot {
		s.Upgrade.Annotations[RerunAnnotation] = token
		if run != "" {
			s.Upgrade.Annotations[RunAnnotation] = run
		}
		return s
	}
	succeeded := func(ready bool, p PlanPresence) Snapshot {
		s := snapshot(StateSucceeded, "", ready, p)
		s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
		return s
	}
	replaced := func(s Snapshot) Snapshot {
		s.Upgrade.Annotations[PlanDigestAnnotation] = "sha256:planned"
		return s
	}
	refusedOnce := func(s Snapshot) Snapshot {
		s.Upgrade.Annotations[RerunRefusedAnnotation] = "a"
		return s
	}
	tests := []struct {
		name        string
		snap        Snapshot
		want        want
		wantRun     string
		wantRefused string
		msg         string
	}{
		{"Succeeded, plan stored: run again", withToken(succeeded(false, PlanOwned), "2026-11-30", ""), doPlanned, "2026-11-30", "", `re-run "2026-11-30"`},
		{"Failed in removal: run again", withToken(snapshot(StateFailed, PhaseRemoval, false, PlanOwned), "a", ""), doPlanned, "a", "", "re-run"},
		{"Skipped, plan stored: run again", withToken(snapshot(StateSkipped, "", false, PlanOwned), "a", ""), doPlanned, "a", "", "re-run"},
		{"a new token after an earlier re-run", withToken(succeeded(true, PlanOwned), "b", "a"), doPlanned, "b", "", `"b"`},
		{"no plan: refused, state kept", withToken(succeeded(true, PlanAbsent), "a", ""), want{kind: ActRecord, state: StateSucceeded}, "", "a", "no plan is stored"},
		{"no plan after a skip: names the done annotation too", withToken(func() Snapshot {
			s := snapshot(StateSkipped, "", true, PlanAbsent)
			s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
			return s
		}(), "a", ""), want{kind: ActRecord, state: StateSkipped}, "", "a", "and " + HarvesterDoneAnnotation},
		{"foreign plan: refused", withToken(snapshot(StateFailed, PhaseRemoval, true, PlanForeign), "a", ""), want{kind: ActRecord, state: StateFailed, phase: PhaseRemoval}, "", "a", "not owned"},
		// Found by review: a plan replaced after it was planned ran again.
		{"plan not the one planned: refused", withToken(replaced(snapshot(StateFailed, PhasePlan, true, PlanOwned)), "a", ""), want{kind: ActRecord, state: StateFailed, phase: PhasePlan}, "", "a", `recorded "sha256:planned"`},
		{"token already started: nothing", withToken(succeeded(true, PlanOwned), "a", "a"), doNothing, "", "", ""},
		{"token already refused: nothing", refusedOnce(withToken(succeeded(true, PlanAbsent), "a", "")), doNothing, "", "", ""},
		{"removal under way: the token waits", withToken(snapshot(StateRemoving, "", true, PlanOwned), "a", ""), doExecute, "", "", ""},
		{"not completed: the token waits", withToken(running(snapshot(StateFailed, PhasePlan, true, PlanOwned)), "a", ""), doNothing, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.snap, tableOpts)
			checkAction(t, got, tt.want)
			if run := got.Outcome.Annotations[RunAnnotation]; run != tt.wantRun {
				t.Errorf("records run %q, want %q", run, tt.wantRun)
			}
			if refused := got.Outcome.Annotations[RerunRefusedAnnotation]; refused != tt.wantRefused {
				t.Errorf("records refused %q, want %q", refused, tt.wantRefused)
			}
			if !strings.Contains(got.Outcome.Message, tt.msg) {
				t.Errorf("message %q lacks %q", got.Outcome.Message, tt.msg)
			}
			if tt.want == doPlanned && got.Outcome.Annotations[PlanDigestAnnotation] != tableDigest {
				t.Errorf("a re-run records digest %q, want the stored plan's", got.Outcome.Annotations[PlanDigestAnnotation])
			}
		})
	}

	// The re-run under way: Harvester's done annotation (set by the first
	// run) and a skip do not stop it.
	s := withToken(snapshot(StatePlanned, "", false, PlanOwned), "a", "a")
	s.Upgrade.Annotations[RerunningAnnotation] = "true"
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	s.Upgrade.Annotations[SkipAnnotation] = "true"
	checkAction(t, Decide(s, tableOpts), doExecute)

	// Found by review: a refused token marked a run under way, so a later
	// plan (the state annotation removed by a person) ignored the skip and
	// Harvester's done annotation as if it were a re-run.
	s = snapshot(StatePlanned, "", false, PlanOwned)
	s.Upgrade.Annotations[RerunAnnotation] = "a"
	s.Upgrade.Annotations[RerunRefusedAnnotation] = "a"
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	checkAction(t, Decide(s, tableOpts), want{kind: ActRecord, state: StateSucceeded})
}

func TestCatchUpVersions(t *testing.T) {
	u := func(ann map[string]string) Upgrade {
		return Upgrade{PreviousVersion: "v1.4.2", Annotations: ann}
	}
	tests := []struct {
		name    string
		u       Upgrade
		def     []string
		want    []string
		wantErr string
	}{
		{"none", u(nil), nil, nil, ""},
		{"option", u(nil), []string{"v1.3.0", "v1.2.0"}, []string{"v1.3.0", "v1.2.0"}, ""},
		{"annotation replaces the option", u(map[string]string{CatchUpAnnotation: " v1.3.1 , v1.3.0,,v1.3.1"}), []string{"v1.2.0"}, []string{"v1.3.1", "v1.3.0"}, ""},
		{"empty annotation: none", u(map[string]string{CatchUpAnnotation: ""}), []string{"v1.2.0"}, nil, ""},
		{"not a version", u(map[string]string{CatchUpAnnotation: "v1.3.0,../../etc"}), nil, nil, "annotation " + CatchUpAnnotation + " entry"},
		{"current", u(nil), []string{"current"}, nil, "option catch-up entry \"current\""},
		{"the previous version in the annotation", u(map[string]string{CatchUpAnnotation: "v1.4.2"}), nil, nil, "already fetched"},
		// Found by review: the option names versions for every Upgrade;
		// the one upgraded from one of them must not fail for it.
		{"the previous version in the option: dropped", u(nil), []string{"v1.3.0", "v1.4.2"}, []string{"v1.3.0"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CatchUpVersions(tt.u, tt.def)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("CatchUpVersions = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	// A bad annotation fails the fetch at completion, naming it; while the
	// upgrade runs it only stops the early plan.
	s := snapshot("", "", true, PlanAbsent)
	s.Upgrade.Annotations[CatchUpAnnotation] = "v1 3"
	got := Decide(s, tableOpts)
	checkAction(t, got, doFail(PhaseFetch))
	if !strings.Contains(got.Outcome.Message, CatchUpAnnotation) {
		t.Errorf("message %q does not name the annotation", got.Outcome.Message)
	}
	checkAction(t, Decide(running(s), tableOpts), doNothing)
}

// An Upgrade a newer one replaced (Harvester labels it latest=false) is no
// longer cleaned after, and nothing is left waiting for ever: a removal
// under way runs to its end, one not started is Skipped saying why.
func TestDecideOnAReplacedUpgrade(t *testing.T) {
	tests := []struct {
		state State
		plan  PlanPresence
		want  want
	}{
		{"", PlanAbsent, doNothing},
		{StateWaitingForRepo, PlanAbsent, want{kind: ActRecord, state: StateSkipped}},
		{StatePlanned, PlanOwned, want{kind: ActRecord, state: StateSkipped}},
		{StateRemoving, PlanOwned, doExecute},
		{StateSucceeded, PlanOwned, doNothing},
		{StateSkipped, PlanAbsent, doNothing},
	}
	for _, tt := range tests {
		for _, completed := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s completed=%v", tt.state, completed), func(t *testing.T) {
				s := snapshot(tt.state, "", true, tt.plan)
				s.Upgrade.Completed = completed
				s.Upgrade.Labels[LatestUpgradeLabel] = "false"
				got := Decide(s, tableOpts)
				checkAction(t, got, tt.want)
				if tt.want.state == StateSkipped && !strings.Contains(got.Outcome.Message, "no longer the latest") {
					t.Errorf("message %q does not say why", got.Outcome.Message)
				}
				if (tt.want == doNothing) != (settled(s.Upgrade) != "") {
					t.Errorf("settled says %q, but Decide %s: gather must read what Decide needs", settled(s.Upgrade), got.Kind)
				}
			})
		}
	}
}
