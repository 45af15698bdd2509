package cleanup_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Adversarial flows over the operator's controls (issue 14). Each test names
// the README promise it broke; each failed before its fix.

func annotate(f flow, key, value string) {
	f.UpdateUpgrade(func(u *unstructured.Unstructured) {
		a := u.GetAnnotations()
		if a == nil {
			a = map[string]string{}
		}
		a[key] = value
		u.SetAnnotations(a)
	})
}

// README, "Re-running a stored plan": "The run gets Jobs of its own on every
// current target node"; the brief's rules: re-run means new Jobs, and the
// same token never runs twice.
//
// Minimal input: two nodes; the first run succeeds; re-run "a" succeeds
// (each node removed 2); re-run "b" succeeds; the operator sets "a" again
// while "a"'s finished Jobs are still there (their TTL is a day).
//
// Expected: either the token is refused (it was acted on), or the run gets
// Jobs of its own and stays Removing until they finish.
// Actual: "a" is accepted again (Planned), no Job is created, and the next
// sync records Succeeded from the old run's finished Jobs: "re-run" that
// removed nothing, reported as 4 images removed.
// Cause: only the last token is remembered (RunAnnotation), and
// runJobName/RunSelector derive the Jobs from the token alone.
func TestAdversaryReusedRerunTokenSucceedsOnOldJobs(t *testing.T) {
	f := newRemovalFixture(t, 1, twoNodes)
	f.SyncRemoval()
	for _, n := range twoNodes {
		f.FinishJob(n, true, report.Result{Removed: 1})
	}
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StateSucceeded {
		t.Fatalf("setup: state %q, want Succeeded", got)
	}
	run := func(token string, removed int) {
		t.Helper()
		annotate(f, cleanup.RerunAnnotation, token)
		f.SyncRemoval() // Planned
		f.SyncRemoval() // Jobs
		for _, n := range twoNodes {
			f.FinishJob(n, true, report.Result{Removed: removed})
		}
		f.SyncRemoval()
		if got := f.State(); got != cleanup.StateSucceeded {
			t.Fatalf("setup: re-run %q: state %q, want Succeeded", token, got)
		}
	}
	run("a", 2)
	run("b", 3)

	jobsBefore := f.Creates("jobs")
	annotate(f, cleanup.RerunAnnotation, "a")
	f.SyncRemoval()
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StatePlanned {
		return // refused: the token was acted on, as promised
	}
	f.SyncRemoval()
	a = f.Annotations()
	if created := f.Creates("jobs") - jobsBefore; created == 0 && cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateRemoving {
		t.Errorf("re-run %q accepted a second time: %d Jobs created, state %q (%s); the old run's finished Jobs were counted as this run's",
			"a", created, a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation])
	}
}

// README, "Switching the cleanup off": with harvesterhci.io/image-cleanup-skip
// "no plan, no Job; Skipped at completion".
//
// Minimal input: the repo answers 500 until the cleanup is Failed (phase
// fetch), with no plan; the operator sets a re-run token, which is refused
// (no plan) and recorded; the repo restarts (not Ready re-arms the failure:
// WaitingForRepo); the operator sets the skip annotation; the repo is Ready
// and now serves the lists.
//
// Expected: Skipped, no request to the repo, no plan.
// Actual: the lists are fetched and the plan written (Planned), Jobs next.
// Cause: rerunning(u) treats the refused token in RunAnnotation as a re-run
// under way, and a re-run overrides the skip.
func TestAdversarySkipIgnoredAfterARefusedRerun(t *testing.T) {
	u := upgrade().State(cleanup.StateFailed).Annotate(cleanup.FailedPhaseAnnotation, string(cleanup.PhaseFetch)).
		Annotate(cleanup.RerunAnnotation, "t1")
	f := newFixture(t, objects(u, true))
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if a := f.Annotations(); a[cleanup.RerunRefusedAnnotation] != "t1" || cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateFailed {
		t.Fatalf("setup: refused %q state %q, want the re-run refused and recorded", a[cleanup.RerunRefusedAnnotation], a[cleanup.StateAnnotation])
	}
	f.SetRepoReady(false)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if got := f.State(); got != cleanup.StateWaitingForRepo {
		t.Fatalf("setup: state %q after the repo went away, want WaitingForRepo (re-armed)", got)
	}
	annotate(f, cleanup.SkipAnnotation, "true")
	f.SetRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if got := f.State(); got != cleanup.StateSkipped {
		_, planned := f.PlanConfigMap()
		t.Errorf("skip annotation set: state %q, %d list requests, plan written %v; want Skipped with no request and no plan",
			got, len(f.Repo.Calls()), planned)
	}
}
