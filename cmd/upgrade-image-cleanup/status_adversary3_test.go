package main

import (
	"strings"
	"testing"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
)

// Third adversarial round over the status command.
//
// README, "Reading a cleanup's status": it prints "the rerun token (with
// whether the controller started it, harvesterhci.io/image-cleanup-run,
// refused it, harvesterhci.io/image-cleanup-rerun-refused, or has not
// acted on it yet)"; and "Re-running a stored plan": "The token is any
// text; ... one over 128 bytes or with control characters by its sha256:
// digest". Rule: status tells the truth about the controller's state.
//
// Minimal input: a Succeeded cleanup whose re-run token is 129 bytes of
// text, which the controller started (its own decision, cleanup.Decide, is
// what records the run annotation); and one whose token has a control
// character, which the controller refused.
//
// Expected: "Rerun: TOKEN (started)" / "(refused: see the message)".
// Actual: "(not acted on yet; the last one was sha256:...)" / "(not acted
// on yet)": an operator waits for a run that has already happened, or
// sets the token again.
// Cause: writeOperator compares the raw token (escaped by outsideText)
// with the recorded key, which for such tokens is the digest (tokenKey);
// nothing in Status carries the token's key.
func TestAdversary3StatusSaysALongTokenTheControllerAnsweredIsNotActedOn(t *testing.T) {
	for _, tt := range []struct {
		name    string
		token   string
		refused bool
		want    string
	}{
		{"started, over 128 bytes", strings.Repeat("t", 129), false, "(started)"},
		{"refused, a control character", "rerun\x01", true, "(refused: see the message)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, cm := plannedStatusUpgrade(t, cleanup.StateSucceeded, map[string]string{cleanup.HarvesterDoneAnnotation: "true"})
			up, err := cleanup.UpgradeFromUnstructured(u)
			if err != nil {
				t.Fatal(err)
			}
			up.Annotations[cleanup.RerunAnnotation] = tt.token
			// What the controller records for this token, from its own decision.
			snap := cleanup.Snapshot{Found: true, Upgrade: up, Plan: cleanup.PlanSeen{Presence: cleanup.PlanAbsent}}
			if !tt.refused {
				snap.Plan = cleanup.PlanSeen{Presence: cleanup.PlanOwned, Ref: cleanup.PlanRef{
					Namespace: cm.Namespace, ConfigMap: cm.Name, UID: cm.UID, Digest: up.Annotations[cleanup.PlanDigestAnnotation]}}
			}
			a := cleanup.Decide(snap, cleanup.DecideOptions{MaxRetries: 4})
			key := a.Outcome.Annotations[cleanup.RunAnnotation]
			if tt.refused {
				key = a.Outcome.Annotations[cleanup.RerunRefusedAnnotation]
			}
			if a.Kind != cleanup.ActRecord || key == "" {
				t.Fatalf("setup: the controller should answer the token; got %s %q (%s)", a.Kind, a.Outcome.Message, a.Why)
			}
			ann := u.GetAnnotations()
			ann[cleanup.RerunAnnotation] = tt.token
			if tt.refused {
				ann[cleanup.RerunRefusedAnnotation] = key
			} else {
				ann[cleanup.RunAnnotation] = key
			}
			u.SetAnnotations(ann)

			code, out, errOut := newStatusFixture(u, cm).status(t, statusUpgrade, "-n", statusNS)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var rerun string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "Rerun:") {
					rerun = l
				}
			}
			if !strings.HasSuffix(rerun, tt.want) {
				t.Errorf("the controller recorded the token as %q; status prints %q, want it to end %q", key, strings.TrimSpace(rerun), tt.want)
			}
		})
	}
}
