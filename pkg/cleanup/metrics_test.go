package cleanup

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover"
)

func withRegistry(reg *prometheus.Registry) fixtureOption {
	return func(c *Config) { c.Registerer = reg }
}

func TestMetricsOfAPlannedCleanup(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, testUpgradeObject(true, nil), []runtime.Object{testSlice(false)}, withRegistry(reg))
	f.waitRepoReady(false)
	f.next()
	f.setRepoReady(true)
	f.clock.Step(1500 * time.Millisecond) // 1.5 s between Ready and the worker's first request
	f.next()
	if f.state() != StatePlanned {
		t.Fatalf("state = %s", f.state())
	}
	if got := testutil.ToFloat64(f.c.metrics.listFetches.WithLabelValues(FetchSuccess)); got != 2 {
		t.Errorf("successful fetches = %v, want 2", got)
	}
	if got := testutil.ToFloat64(f.c.metrics.imagesPlanned); got != 2 {
		t.Errorf("images planned = %v, want 2", got)
	}
	// The histogram saw one Ready phase, 1.5 s long on the fake clock.
	want := `
# HELP upgrade_image_cleanup_upgrades Upgrades by cleanup state (state "" has none yet).
# TYPE upgrade_image_cleanup_upgrades gauge
upgrade_image_cleanup_upgrades{state="Failed"} 0
upgrade_image_cleanup_upgrades{state="Planned"} 1
upgrade_image_cleanup_upgrades{state="Removing"} 0
upgrade_image_cleanup_upgrades{state="Succeeded"} 0
upgrade_image_cleanup_upgrades{state="WaitingForRepo"} 0
`
	f.settle()
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "upgrade_image_cleanup_upgrades"); err != nil {
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

func TestMetricsCountFetchFailuresByResult(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&StatusError{StatusCode: 404, Status: "404 Not Found"}, FetchNotFound},
		{&StatusError{StatusCode: 500, Status: "500 Internal Server Error"}, FetchHTTPError},
		{invalidList{errors.New("line 3: not a reference")}, FetchInvalid},
		{ErrEmptyList, FetchInvalid},
		{errors.New("dial tcp: connection refused"), FetchNetworkError},
		{nil, FetchSuccess},
	}
	for _, tt := range tests {
		if got := fetchResult(tt.err); got != tt.want {
			t.Errorf("fetchResult(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

func TestMetricsOfARemoval(t *testing.T) {
	reg := prometheus.NewRegistry()
	f2 := newRemovalFixture(t, 1, []string{"node-a", "node-b"}, withRegistry(reg))
	f2.syncRemoval()
	f2.finishJob("node-a", true, nodeResult)
	f2.finishJob("node-b", true, remover.Result{Removed: 1, BytesReclaimed: 1e8, Skipped: map[remover.Reason]int{remover.ReasonPinned: 1}})
	f2.syncRemoval()
	if f2.state() != StateSucceeded {
		t.Fatalf("state = %s", f2.state())
	}
	if got := testutil.ToFloat64(f2.c.metrics.imagesRemoved); got != 3 {
		t.Errorf("removed = %v, want 3", got)
	}
	if got := testutil.ToFloat64(f2.c.metrics.bytesReclaimed); got != 4e8 {
		t.Errorf("bytes = %v, want 4e8", got)
	}
	if got := testutil.ToFloat64(f2.c.metrics.imagesSkipped.WithLabelValues("in-use")) + testutil.ToFloat64(f2.c.metrics.imagesSkipped.WithLabelValues("pinned")); got != 2 {
		t.Errorf("skipped = %v, want 2", got)
	}
	// A resync of the Succeeded upgrade counts nothing twice.
	f2.syncRemoval()
	if got := testutil.ToFloat64(f2.c.metrics.imagesRemoved); got != 3 {
		t.Errorf("removed after resync = %v, want still 3", got)
	}
}
