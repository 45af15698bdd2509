package cleanup

import (
	"strings"
	"testing"
)

// Third adversarial round over the state machine. Each test names the
// README promise it breaks, its minimal input, what is expected and what
// happened, and the cause; each failed before its fix.

// README, "Re-running a stored plan": a refused re-run "says why in the
// message ... and records the token in
// harvesterhci.io/image-cleanup-rerun-refused so it is answered once".
// Rule: never end without saying why; gather's promise that a settled
// Upgrade costs no GET on resync.
//
// Minimal input: a Succeeded cleanup with no plan stored; re-run token A
// (over 64 bytes) is refused; then token B, which differs from A only after
// its 61st byte (the README says "The token is any text": a sentence
// naming the nodes that joined is a fair one).
//
// Expected: B refused too: the refused annotation records B, an Event says so.
// Actual: the refusal of B has the same message as A's (the message quotes
// tokenText, cut at 64 bytes), so annotationPatch finds state, message and
// phase unchanged and drops the whole patch, RerunRefusedAnnotation
// included. B is never recorded as answered: every resync reads the plan
// ConfigMap again and decides the same dropped refusal, and the status
// command shows B "not acted on yet" for ever.
// Cause: annotationPatch's no-op check compares only state, message and
// phase, not Outcome.Annotations.
func TestAdversary3RefusalOfASecondLongTokenIsDroppedAsANoOp(t *testing.T) {
	prefix := "re-run after nodes harvester-worker-07 and harvester-worker-"
	tokenA := prefix + "08 joined the cluster"
	tokenB := prefix + "09 joined the cluster"
	if len(tokenA) <= 64 || tokenA[:61] != tokenB[:61] {
		t.Fatalf("setup: tokens must be over 64 bytes and share 61: %d", len(tokenA))
	}
	s := snapshot(StateSucceeded, "", false, PlanAbsent)
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	s.Upgrade.Annotations[RerunAnnotation] = tokenA
	a := Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.Annotations[RerunRefusedAnnotation] != tokenA {
		t.Fatalf("setup: token A should be refused; got %s %q", a.Kind, a.Outcome.Message)
	}
	s = applyOutcome(t, s, a)

	s.Upgrade.Annotations[RerunAnnotation] = tokenB
	a = Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.Annotations[RerunRefusedAnnotation] != tokenB {
		t.Fatalf("setup: token B should be refused; got %s %q", a.Kind, a.Outcome.Message)
	}
	if _, changed := annotationPatch(s.Upgrade, a.Outcome); !changed {
		t.Errorf("the refusal of token B (message %q, same as A's) is dropped as a no-op: %s stays %q, so B is never answered",
			a.Outcome.Message, RerunRefusedAnnotation, s.Upgrade.Annotations[RerunRefusedAnnotation])
	}
	s = applyOutcome(t, s, a)
	if got := s.Upgrade.Annotations[RerunRefusedAnnotation]; got != tokenB {
		t.Errorf("after recording: %s = %q, want token B", RerunRefusedAnnotation, got)
	}
	if why := settled(s.Upgrade); why == "" {
		t.Errorf("after recording the refusal of B the Upgrade is still unsettled: each resync GETs the plan and refuses B again")
	}
}

// README, "Re-running a stored plan": "a token other than the last one
// started or refused records Planned again"; "The token is any text; ...
// one over 128 bytes ... by its sha256: digest".
//
// Minimal input: a first run Succeeded; a re-run token over 128 bytes runs
// (run annotation: its "sha256:..." digest) and Succeeds; the person then
// asks again with the token "sha256:..." (the value they read on the run
// annotation, or any text that happens to be it).
//
// Expected: a re-run (the token is not the last one started: that was the
// long text) or, at the least, an answer.
// Actual: nothing, for ever: tokenKey of a short printable token is the
// token itself, equal to the long token's digest, so pendingRerun takes it
// for the run already started. No Event, no message; status prints it as
// "(started)".
// Cause: tokenKey puts digests and literal tokens in one namespace.
func TestAdversary3TokenEqualToAnEarlierTokensDigestIsIgnored(t *testing.T) {
	long := strings.Repeat("r", maxToken+1)
	s := snapshot(StateSucceeded, "", false, PlanOwned)
	s.Upgrade.Annotations[HarvesterDoneAnnotation] = "true"
	s.Upgrade.Annotations[PlanDigestAnnotation] = tableDigest
	s.Upgrade.Annotations[RerunAnnotation] = long
	a := Decide(s, tableOpts)
	if a.Kind != ActRecord || a.Outcome.State != StatePlanned {
		t.Fatalf("setup: the long token should start a re-run; got %s %q (%s)", a.Kind, a.Outcome.State, a.Why)
	}
	s = applyOutcome(t, s, a)
	s = applyOutcome(t, s, Action{Kind: ActRecord, Outcome: Outcome{State: StateRemoving, Message: "removing on 3 nodes"}})
	s = applyOutcome(t, s, Action{Kind: ActRecord, Outcome: Outcome{State: StateSucceeded, Message: "3 of 3 nodes succeeded",
		Annotations: map[string]string{HarvesterDoneAnnotation: "true"}}})
	digest := s.Upgrade.Annotations[RunAnnotation]
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("setup: the long token should be recorded by digest; got %q", digest)
	}

	s.Upgrade.Annotations[RerunAnnotation] = digest // a new, short, printable token
	a = Decide(s, tableOpts)
	if a.Kind != ActRecord {
		t.Errorf("new token %q (not the last one started, which was %d bytes of text): Decide = %s (%s), want a re-run started or refused",
			digest, len(long), a.Kind, a.Why)
	}
}
