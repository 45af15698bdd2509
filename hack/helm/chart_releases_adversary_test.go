package main

// Adversarial review of issue 15's chart: each test names a defect and
// fails while it is there.

import (
	"testing"

	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// installAs renders the chart as release name in namespace.
func installAs(t *testing.T, name, namespace string, vals map[string]any) []object {
	t.Helper()
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.ClientOnly, inst.DryRun, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = name, namespace
	rel, err := inst.Run(chartForTest(t), vals)
	if err != nil {
		t.Fatalf("install %s: %v", name, err)
	}
	return parse(t, name, rel.Manifest)
}

// TestAdversaryTwoReleasesSelectEachOthersPods: the chart names its
// objects after the release (<release>-upgrade-image-cleanup), so two
// releases fit in one namespace (say one per Upgrade namespace), but the
// selector labels are only app.kubernetes.io/name and component, the same
// for every release. Release a's metrics Service (and so its
// ServiceMonitor) selects release b's pods too, each ServiceMonitor
// scrapes all four pods and the summed counters double, and the two
// Deployments' selectors overlap, which Kubernetes says controllers must
// not do. The selector needs the release (app.kubernetes.io/instance).
func TestAdversaryTwoReleasesSelectEachOthersPods(t *testing.T) {
	a := installAs(t, "cleanup-a", releaseNamespace, map[string]any{"namespace": "upgrades-a"})
	b := installAs(t, "cleanup-b", releaseNamespace, map[string]any{"namespace": "upgrades-b"})
	svcA := find[*corev1.Service](t, a, "Service", releaseNamespace, "cleanup-a-upgrade-image-cleanup-metrics")
	depA, depB := deploymentOf(t, a), deploymentOf(t, b)
	if depA.Name == depB.Name {
		t.Fatalf("both releases name their Deployment %s", depA.Name)
	}
	podsB := labels.Set(depB.Spec.Template.Labels)
	if labels.SelectorFromSet(svcA.Spec.Selector).Matches(podsB) {
		t.Errorf("release cleanup-a's metrics Service selector %v selects release cleanup-b's pods %v: each release's ServiceMonitor scrapes the other's replicas", svcA.Spec.Selector, podsB)
	}
	selA := labels.SelectorFromSet(depA.Spec.Selector.MatchLabels)
	if selA.Matches(podsB) {
		t.Errorf("release cleanup-a's Deployment selector %v matches release cleanup-b's pods %v: overlapping Deployment selectors", depA.Spec.Selector.MatchLabels, podsB)
	}
}
