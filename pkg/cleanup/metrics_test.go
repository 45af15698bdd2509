package cleanup_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// metricValue is the value of the counter name whose labels include the
// given name=value pairs, in what reg gathers; 0 when it has none.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			matches := true
			for i := 0; i+1 < len(labelPairs); i += 2 {
				matches = matches && labels[labelPairs[i]] == labelPairs[i+1]
			}
			if matches {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestMetricsOfAPlannedCleanup(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, objects(upgrade(), false), cleanuptest.WithRegistry(reg))
	f.WaitRepoReady(false)
	f.next()
	f.SetRepoReady(true)
	f.Clock.Step(1500 * time.Millisecond) // 1.5 s between Ready and the worker's first request
	f.next()
	if f.State() != cleanup.StatePlanned {
		t.Fatalf("state = %s", f.State())
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_list_fetches_total", "result", cleanup.FetchSuccess); got != 2 {
		t.Errorf("successful fetches = %v, want 2", got)
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_images_planned_total"); got != 2 {
		t.Errorf("images planned = %v, want 2", got)
	}
	// The histogram saw one Ready phase, 1.5 s long on the fake clock.
	want := `
# HELP upgrade_image_cleanup_upgrades Upgrades by cleanup state (state "" has none yet).
# TYPE upgrade_image_cleanup_upgrades gauge
upgrade_image_cleanup_upgrades{state="Failed"} 0
upgrade_image_cleanup_upgrades{state="Planned"} 1
upgrade_image_cleanup_upgrades{state="Removing"} 0
upgrade_image_cleanup_upgrades{state="Skipped"} 0
upgrade_image_cleanup_upgrades{state="Succeeded"} 0
upgrade_image_cleanup_upgrades{state="WaitingForRepo"} 0
`
	f.Settle()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "upgrade_image_cleanup_upgrades"); err != nil {
		t.Error(err)
	}
	// Per upgrade: one series, naming it; no phase unless Failed.
	wantOne := `
# HELP upgrade_image_cleanup_upgrade_state 1 for each Upgrade, labelled with its cleanup state ("": none yet) and, when Failed, the phase that failed.
# TYPE upgrade_image_cleanup_upgrade_state gauge
upgrade_image_cleanup_upgrade_state{failed_phase="",state="Planned",upgrade="` + testUpgrade + `",upgrade_namespace="` + testNS + `"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(wantOne), "upgrade_image_cleanup_upgrade_state"); err != nil {
		t.Error(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var count uint64
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		if mf.GetName() == "upgrade_image_cleanup_ready_to_first_request_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			sum, count = h.GetSampleSum(), h.GetSampleCount()
		}
	}
	if count != 1 || sum != 1.5 {
		t.Errorf("ready→first request: %d samples summing %v s, want 1 of 1.5 s", count, sum)
	}
	for _, n := range []string{"workqueue_adds_total", "workqueue_depth", "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds", "workqueue_retries_total"} {
		if !names[n] {
			t.Errorf("metric %s is not exported", n)
		}
	}
}

func TestMetricsOfARemoval(t *testing.T) {
	reg := prometheus.NewRegistry()
	f2 := newRemovalFixture(t, 1, []string{"node-a", "node-b"}, cleanuptest.WithRegistry(reg))
	f2.SyncRemoval()
	f2.FinishJob("node-a", true, nodeResult)
	f2.FinishJob("node-b", true, report.Result{Removed: 1, BytesReclaimed: 1e8, Skipped: map[report.Reason]int{report.ReasonPinned: 1}})
	f2.SyncRemoval()
	if f2.State() != cleanup.StateSucceeded {
		t.Fatalf("state = %s", f2.State())
	}
	wantTwoNodeTotals(t, reg)
	// A resync of the Succeeded upgrade counts nothing twice.
	f2.SyncRemoval()
	wantTwoNodeTotals(t, reg)
}

// wantTwoNodeTotals checks the removal counters after node-a (nodeResult)
// and node-b (1 removed, 1e8 bytes, 1 pinned) finished: counted once.
func wantTwoNodeTotals(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	if got := metricValue(t, reg, "upgrade_image_cleanup_images_removed_total"); got != 3 {
		t.Errorf("removed = %v, want 3 (both nodes, counted once)", got)
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_bytes_reclaimed_total"); got != 4e8 {
		t.Errorf("bytes = %v, want 4e8", got)
	}
	skipped := "upgrade_image_cleanup_images_skipped_total"
	if got := metricValue(t, reg, skipped, "reason", "in-use") + metricValue(t, reg, skipped, "reason", "pinned"); got != 2 {
		t.Errorf("skipped = %v, want 2", got)
	}
	nodes := "upgrade_image_cleanup_node_removals_total"
	if got := metricValue(t, reg, nodes, "result", cleanup.NodeSucceeded); got != 2 {
		t.Errorf("node removals succeeded = %v, want 2", got)
	}
	if got := metricValue(t, reg, nodes, "result", cleanup.NodeFailed); got != 0 {
		t.Errorf("node removals failed = %v, want 0", got)
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_images_failed_total"); got != 0 {
		t.Errorf("images failed = %v, want 0", got)
	}
}

// A node whose removal failed is counted once by result, with its failed
// images, and the per-upgrade gauge names the cleanup and the phase: what
// the alerts UpgradeImageCleanupNodeRemovalsFailing and
// UpgradeImageCleanupFailed read.
func TestMetricsOfAFailedNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newRemovalFixture(t, 1, []string{"node-a", "node-b"}, cleanuptest.WithRegistry(reg))
	f.SyncRemoval()
	f.FinishJob("node-a", true, report.Result{Removed: 2})
	f.FinishJob("node-b", false, report.Result{Removed: 1, Failed: 2, FailedImages: []string{"docker.io/rancher/a:1: locked", "docker.io/rancher/b:1: locked"}})
	f.SyncRemoval()
	f.WantFailed(cleanup.PhaseRemoval)
	check := func() {
		t.Helper()
		nodes := "upgrade_image_cleanup_node_removals_total"
		for result, want := range map[string]float64{cleanup.NodeSucceeded: 1, cleanup.NodeFailed: 1, cleanup.NodeLeft: 0, cleanup.NodeSkipped: 0} {
			if got := metricValue(t, reg, nodes, "result", result); got != want {
				t.Errorf("node removals %s = %v, want %v", result, got, want)
			}
		}
		if got := metricValue(t, reg, "upgrade_image_cleanup_images_failed_total"); got != 2 {
			t.Errorf("images failed = %v, want 2", got)
		}
		if got := metricValue(t, reg, "upgrade_image_cleanup_images_removed_total"); got != 3 {
			t.Errorf("images removed = %v, want 3", got)
		}
	}
	check()
	want := `
# HELP upgrade_image_cleanup_upgrade_state 1 for each Upgrade, labelled with its cleanup state ("": none yet) and, when Failed, the phase that failed.
# TYPE upgrade_image_cleanup_upgrade_state gauge
upgrade_image_cleanup_upgrade_state{failed_phase="removal",state="Failed",upgrade="` + testUpgrade + `",upgrade_namespace="` + testNS + `"} 1
`
	f.Settle()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "upgrade_image_cleanup_upgrade_state"); err != nil {
		t.Error(err)
	}
	// A resync of the Failed upgrade counts nothing twice.
	f.SyncRemoval()
	check()
}

// Every Upgrade in the cache is one series of the per-upgrade gauge,
// whatever its state (none yet included), and the counts agree with it.
func TestMetricsPerUpgradeState(t *testing.T) {
	reg := prometheus.NewRegistry()
	objs := []runtime.Object{
		cleanuptest.Upgrade("a").Completed(false).Obj(),
		cleanuptest.Upgrade("b").State(cleanup.StateSucceeded).Obj(),
		cleanuptest.Upgrade("c").Latest(false).State(cleanup.StateFailed).Annotate(cleanup.FailedPhaseAnnotation, string(cleanup.PhaseFetch)).Obj(),
		// A phase left beside another state is not the state's.
		cleanuptest.Upgrade("d").Latest(false).State(cleanup.StateWaitingForRepo).Annotate(cleanup.FailedPhaseAnnotation, string(cleanup.PhasePlan)).Obj(),
	}
	f := newFixture(t, objs, cleanuptest.WithRegistry(reg))
	f.Settle()
	want := `
# HELP upgrade_image_cleanup_upgrade_state 1 for each Upgrade, labelled with its cleanup state ("": none yet) and, when Failed, the phase that failed.
# TYPE upgrade_image_cleanup_upgrade_state gauge
upgrade_image_cleanup_upgrade_state{failed_phase="",state="",upgrade="a",upgrade_namespace="` + testNS + `"} 1
upgrade_image_cleanup_upgrade_state{failed_phase="",state="Succeeded",upgrade="b",upgrade_namespace="` + testNS + `"} 1
upgrade_image_cleanup_upgrade_state{failed_phase="fetch",state="Failed",upgrade="c",upgrade_namespace="` + testNS + `"} 1
upgrade_image_cleanup_upgrade_state{failed_phase="",state="WaitingForRepo",upgrade="d",upgrade_namespace="` + testNS + `"} 1
# HELP upgrade_image_cleanup_upgrades Upgrades by cleanup state (state "" has none yet).
# TYPE upgrade_image_cleanup_upgrades gauge
upgrade_image_cleanup_upgrades{state=""} 1
upgrade_image_cleanup_upgrades{state="Failed"} 1
upgrade_image_cleanup_upgrades{state="Planned"} 0
upgrade_image_cleanup_upgrades{state="Removing"} 0
upgrade_image_cleanup_upgrades{state="Skipped"} 0
upgrade_image_cleanup_upgrades{state="Succeeded"} 1
upgrade_image_cleanup_upgrades{state="WaitingForRepo"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "upgrade_image_cleanup_upgrade_state", "upgrade_image_cleanup_upgrades"); err != nil {
		t.Error(err)
	}
}

// An early plan is timed from Ready like one at completion, and counted
// by when it was written; measured space is exported per node, a node
// whose filesystem grew adding nothing.
func TestMetricsOfAnEarlyPlanAndMeasuredSpace(t *testing.T) {
	reg := prometheus.NewRegistry()
	objs := append(objects(upgrade().Completed(false), false), nodeObjects(twoNodes...)...)
	f := newFixture(t, objs, cleanuptest.WithRegistry(reg), cleanuptest.WithRemoval(1))
	f.WaitRepoReady(false)
	f.SetRepoReady(true)
	f.Clock.Step(700 * time.Millisecond)
	f.next()
	if f.State() != cleanup.StatePlanned {
		t.Fatalf("state = %s, want Planned while the upgrade runs", f.State())
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_plans_written_total", "when", cleanup.PlannedEarly); got != 1 {
		t.Errorf("early plans = %v, want 1", got)
	}
	if got := metricValue(t, reg, "upgrade_image_cleanup_plans_written_total", "when", cleanup.PlannedAtCompletion); got != 0 {
		t.Errorf("plans at completion = %v, want 0", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "upgrade_image_cleanup_ready_to_first_request_seconds" {
			found = true
			if h := mf.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 0.7 {
				t.Errorf("ready→first request: %d samples summing %v s, want 1 of 0.7 s", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
	if !found {
		t.Error("upgrade_image_cleanup_ready_to_first_request_seconds is not exported")
	}

	f.UpdateUpgrade(setCompleted)
	f.SyncRemoval()
	f.FinishJob("harvester-node-0", true, report.Result{Removed: 1, ImageFs: &report.ImageFs{UsedBefore: 1000, UsedAfter: 400}})
	f.FinishJob("harvester-node-1", true, report.Result{Removed: 1, ImageFs: &report.ImageFs{UsedBefore: 1000, UsedAfter: 1200}})
	f.SyncRemoval()
	if got := metricValue(t, reg, "upgrade_image_cleanup_image_fs_freed_bytes_total"); got != 600 {
		t.Errorf("image fs freed = %v, want 600 (node-1 grew: 0, not -200)", got)
	}
}
