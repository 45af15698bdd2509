package main

// Adversarial review of issue 15's chart: each test names a defect and
// fails while it is there.

import (
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

// TestAdversaryRulesWithoutMetrics: the chart refuses a ServiceMonitor
// without the metrics it scrapes, but installs the PrometheusRule with
// metrics.enabled false: the controller serves no metrics, so
// UpgradeImageCleanupAbsent (absent(upgrade_image_cleanup_upgrades))
// fires 15 minutes after the install, for ever, and the other three
// alerts can never fire. The render must refuse it as it refuses the
// ServiceMonitor.
func TestAdversaryRulesWithoutMetrics(t *testing.T) {
	vals, err := chartutil.ReadValues([]byte("metrics: {enabled: false}\nmonitoring: {rules: {enabled: true}}"))
	if err != nil {
		t.Fatal(err)
	}
	rel, err := install(chartForTest(t), vals)
	if err != nil {
		return
	}
	objs := parse(t, "rules without metrics", rel.Manifest)
	if kinds(objs)["PrometheusRule"] == 1 {
		if a := args(t, controller(t, deploymentOf(t, objs)).Args); a["metrics-addr"] == "" {
			t.Errorf("metrics.enabled false and monitoring.rules.enabled true: a PrometheusRule is installed for a controller without --metrics-addr; UpgradeImageCleanupAbsent fires for ever")
		}
	}
}
