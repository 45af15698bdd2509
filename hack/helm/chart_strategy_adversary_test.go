package main

// Adversarial review of issue 15's chart: each test names a defect and
// fails while it is there.

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
)

// TestAdversaryNoLeaderElectionRollsOutTwoControllers: the chart refuses
// replicas > 1 without leader election because "every replica would work
// on the same Upgrades", and allows replicas: 1 without it. But the
// Deployment keeps the default RollingUpdate strategy (maxSurge 25%,
// rounded up to 1 pod; maxUnavailable rounded down to 0): every rollout
// (helm upgrade, a changed value, a node drain's replacement excepted)
// starts the new pod while the old one still runs, so two controllers
// without a Lease work on the same Upgrades at once. Without the Lease the
// strategy must be Recreate (or maxSurge 0).
func TestAdversaryNoLeaderElectionRollsOutTwoControllers(t *testing.T) {
	rel := mustInstall(t, chartForTest(t), map[string]any{
		"replicas": 1, "leaderElection": map[string]any{"enabled": false},
	})
	d := deploymentOf(t, parse(t, "no leader election", rel.Manifest))
	if args(t, controller(t, d).Args)["leader-elect"] != "" {
		t.Fatalf("--leader-elect is passed with leaderElection.enabled false")
	}
	s := d.Spec.Strategy
	if s.Type == appsv1.RecreateDeploymentStrategyType {
		return
	}
	if s.RollingUpdate != nil && s.RollingUpdate.MaxSurge != nil && s.RollingUpdate.MaxSurge.IntValue() == 0 && s.RollingUpdate.MaxSurge.StrVal == "" {
		return
	}
	t.Errorf("leaderElection.enabled false, replicas 1: strategy %+v (empty: RollingUpdate, maxSurge 25%% = 1 pod): a rollout runs the old and the new controller together, with no Lease between them", s)
}
