package cleanup_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/internal/cleanuptest"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/cleanup"
	"github.com/upgrade-image-cleanup/upgrade-image-cleanup/pkg/remover/report"
)

// Issue 14 through the controller, on fake clients: plan early, catch-up,
// skip, re-run, disk-pressure and measured space.

func withOptions(change func(*cleanup.Config)) cleanuptest.ConfigOption { return change }

var twoNodes = []string{"harvester-node-0", "harvester-node-1"}

func nodeObjects(names ...string) []runtime.Object {
	var out []runtime.Object
	for _, n := range names {
		out = append(out, cleanuptest.Node(n))
	}
	return out
}

func setCompleted(u *unstructured.Unstructured) {
	_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Completed", "status": "True"}}, "status", "conditions")
}

// The plan is written while the upgrade runs, no Job starts; at completion,
// with the repo gone, the written plan starts one Job per node and the repo
// is asked nothing more.
func TestPlanEarlyThenRemoveAtCompletionWithoutTheRepo(t *testing.T) {
	objs := append(objects(upgrade().Completed(false), true), nodeObjects(twoNodes...)...)
	f := newFixture(t, objs, cleanuptest.WithRemoval(1))
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if got := f.State(); got != cleanup.StatePlanned {
		t.Fatalf("state = %q while the upgrade runs, want %q", got, cleanup.StatePlanned)
	}
	cm, ok := f.PlanConfigMap()
	if !ok || cm.Annotations[cleanup.PlannedEarlyAnnotation] != "true" {
		t.Fatalf("plan %v written early: annotations %v", ok, cm.Annotations)
	}
	if msg := f.Annotations()[cleanup.MessageAnnotation]; !strings.Contains(msg, "while the upgrade ran") {
		t.Errorf("Planned message %q does not say the plan was written while the upgrade ran", msg)
	}
	fetches := len(f.Repo.Calls())
	if fetches != 2 {
		t.Fatalf("%d list requests, want 2", fetches)
	}
	// Resyncs while the upgrade runs start nothing.
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	if jobs := f.RemovalJobs(); len(jobs) > 0 {
		t.Fatalf("%d Jobs before completion, want none", len(jobs))
	}

	f.SetRepoReady(false)
	f.WaitRepoReady(false)
	f.UpdateUpgrade(setCompleted)
	f.SyncRemoval()
	jobs := f.RemovalJobs()
	if len(jobs) != len(twoNodes) {
		t.Fatalf("%d Jobs at completion, want one per node (%d)", len(jobs), len(twoNodes))
	}
	if n := len(f.Repo.Calls()); n != fetches {
		t.Errorf("%d more list requests at completion, want 0", n-fetches)
	}
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateRemoving || !strings.Contains(a[cleanup.MessageAnnotation], "no request to the repo at completion") {
		t.Errorf("state %q message %q, want Removing saying the plan came from the run", a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation])
	}
}

// At completion without an early plan, the message says the plan was made
// then.
func TestPlanAtCompletionSaysSo(t *testing.T) {
	f := newFixture(t, append(objects(upgrade(), true), nodeObjects(twoNodes...)...), cleanuptest.WithRemoval(1))
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	cm, _ := f.PlanConfigMap()
	if _, early := cm.Annotations[cleanup.PlannedEarlyAnnotation]; early {
		t.Error("a plan written at completion is marked early")
	}
	f.SyncRemoval()
	if msg := f.Annotations()[cleanup.MessageAnnotation]; !strings.Contains(msg, "plan written at completion") {
		t.Errorf("Removing message %q does not say when the plan was written", msg)
	}
}

// Catch-up versions are planned with the previous one, by the same rules;
// one the archive does not serve is recorded and skipped.
func TestCatchUpPlansOlderVersionsAndSkipsA404(t *testing.T) {
	u := upgrade().Annotate(cleanup.CatchUpAnnotation, "v1.3.0,v1.2.0")
	f := newFixture(t, objects(u, true))
	old := []string{
		"docker.io/rancher/harvester:v1.3.0",      // gone from current: removed
		"docker.io/rancher/harvester-upgrade:v0",  // retained
		"registry.suse.com/suse/sles/15.4/old:1",  // gone: removed
		"docker.io/longhornio/longhorn-engine:v1", // retained
		cleanuptest.CurrentImages[0],              // still shipped: kept
	}
	f.Repo.SetList("v1.3.0", old)
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatalf("sync: %v", err)
	}
	cm, ok := f.PlanConfigMap()
	if !ok {
		t.Fatalf("no plan; state %q: %s", f.State(), f.Annotations()[cleanup.MessageAnnotation])
	}
	if cm.Annotations[cleanup.PlanCatchUpAnnotation] != "v1.3.0" || cm.Annotations[cleanup.PlanCatchUpMissingAnnotation] != "v1.2.0" {
		t.Errorf("plan records catch-up %q, missing %q; want v1.3.0 and v1.2.0", cm.Annotations[cleanup.PlanCatchUpAnnotation], cm.Annotations[cleanup.PlanCatchUpMissingAnnotation])
	}
	images := strings.Fields(cm.Data[cleanup.PlanKey])
	for _, want := range []string{"docker.io/rancher/harvester:v1.3.0", "registry.suse.com/suse/sles/15.4/old:1"} {
		if !slices.Contains(images, want) {
			t.Errorf("plan lacks catch-up image %s: %q", want, images)
		}
	}
	for _, kept := range []string{"docker.io/rancher/harvester-upgrade:v0", "docker.io/longhornio/longhorn-engine:v1", cleanuptest.CurrentImages[0]} {
		if slices.Contains(images, kept) {
			t.Errorf("plan removes retained %s", kept)
		}
	}
	if got := f.State(); got != cleanup.StatePlanned {
		t.Errorf("state %q, want Planned: a 404 for a catch-up version is no failure", got)
	}
	if msg := f.Annotations()[cleanup.MessageAnnotation]; !strings.Contains(msg, "v1.2.0 skipped") || !strings.Contains(msg, "catch-up v1.3.0") {
		t.Errorf("message %q does not say which catch-up versions were planned and skipped", msg)
	}
	var asked []string
	for _, c := range f.Repo.Calls() {
		asked = append(asked, c.Version)
	}
	if want := []string{"v1.4.2", "current", "v1.3.0", "v1.2.0"}; !slices.Equal(asked, want) {
		t.Errorf("asked %q, want %q", asked, want)
	}
}

// A catch-up image the current list still ships is never planned, under
// any spelling the remover matches.
func TestCatchUpKeepsWhatTheCurrentListShips(t *testing.T) {
	f := newFixture(t, objects(upgrade(), true), withOptions(func(c *cleanup.Config) { c.Options.CatchUp = []string{"v1.3.0"} }))
	shipped := cleanuptest.CurrentImages[0]
	// The same image under a mirror's host, as an old list might name it.
	mirror := "mirror.example.com/" + strings.SplitN(shipped, "/", 2)[1]
	f.Repo.SetList("v1.3.0", []string{mirror, "docker.io/rancher/gone:v0"})
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	cm, ok := f.PlanConfigMap()
	if !ok {
		t.Fatalf("no plan: %s", f.Annotations()[cleanup.MessageAnnotation])
	}
	images := strings.Fields(cm.Data[cleanup.PlanKey])
	if slices.Contains(images, mirror) {
		t.Errorf("plan removes %s, which the current list ships as %s", mirror, shipped)
	}
	if !slices.Contains(images, "docker.io/rancher/gone:v0") {
		t.Errorf("plan lacks the catch-up image docker.io/rancher/gone:v0: %q", images)
	}
}

func TestSkipByAnnotationAndByOption(t *testing.T) {
	tests := []struct {
		name string
		u    *cleanuptest.UpgradeWrapper
		opt  cleanuptest.ConfigOption
		msg  string
	}{
		{"annotation", upgrade().Annotate(cleanup.SkipAnnotation, "true"), withOptions(func(*cleanup.Config) {}), cleanup.SkipAnnotation},
		{"option", upgrade(), withOptions(func(c *cleanup.Config) { c.Options.Skip = true }), "option skip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, objects(tt.u, true), tt.opt)
			f.WaitRepoReady(true)
			if err := f.SyncNow(); err != nil {
				t.Fatal(err)
			}
			f.WantNoFetch()
			a := f.Annotations()
			if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateSkipped || a[cleanup.HarvesterDoneAnnotation] != "true" {
				t.Errorf("state %q, %s %q; want Skipped and Harvester's cleanup switched off", a[cleanup.StateAnnotation], cleanup.HarvesterDoneAnnotation, a[cleanup.HarvesterDoneAnnotation])
			}
			if !strings.Contains(a[cleanup.MessageAnnotation], tt.msg) {
				t.Errorf("message %q does not name %q", a[cleanup.MessageAnnotation], tt.msg)
			}
			if _, ok := f.PlanConfigMap(); ok {
				t.Error("a skipped cleanup wrote a plan")
			}
			if !slices.ContainsFunc(f.Events(), func(e string) bool { return strings.Contains(e, "ImageCleanupSkipped") }) {
				t.Errorf("no ImageCleanupSkipped event: %q", f.Events())
			}
		})
	}
}

// A re-run runs the stored plan again with Jobs of its own, without the
// repo; the first run's Jobs stay until their TTL.
func TestRerunRunsTheStoredPlanAgain(t *testing.T) {
	f := newRemovalFixture(t, 1, twoNodes)
	f.SyncRemoval()
	first := f.RemovalJobs()
	for _, n := range twoNodes {
		f.FinishJob(n, true, report.Result{Removed: 1})
	}
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StateSucceeded {
		t.Fatalf("state %q, want Succeeded", got)
	}

	f.UpdateUpgrade(func(u *unstructured.Unstructured) {
		a := u.GetAnnotations()
		a[cleanup.RerunAnnotation] = "after-node-3-joined"
		u.SetAnnotations(a)
	})
	f.SyncRemoval()
	a := f.Annotations()
	if a[cleanup.RunAnnotation] != "after-node-3-joined" || !strings.Contains(a[cleanup.MessageAnnotation], `re-run "after-node-3-joined"`) {
		t.Fatalf("run %q, message %q; want the re-run recorded", a[cleanup.RunAnnotation], a[cleanup.MessageAnnotation])
	}
	f.SyncRemoval()
	again := f.RemovalJobs()
	if len(again) != len(twoNodes) {
		t.Fatalf("%d Jobs in the re-run, want %d", len(again), len(twoNodes))
	}
	for n, j := range again {
		if j.Name == first[n].Name || j.Labels[cleanup.RunLabel] == "" {
			t.Errorf("node %s: re-run Job %s (run label %q) is not a Job of its own", n, j.Name, j.Labels[cleanup.RunLabel])
		}
	}
	if got := f.State(); got != cleanup.StateRemoving {
		t.Fatalf("state %q during the re-run, want Removing", got)
	}
	for _, n := range twoNodes {
		f.FinishJob(n, true, report.Result{Removed: 2})
	}
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StateSucceeded {
		t.Fatalf("state %q after the re-run, want Succeeded", got)
	}
	if s := f.Summary(); s.Total.Removed != 4 {
		t.Errorf("re-run summary removed %d, want the re-run's 4", s.Total.Removed)
	}
	f.WantNoFetch()
	// The same token does not run a third time.
	f.SyncRemoval()
	if got := f.State(); got != cleanup.StateSucceeded {
		t.Errorf("state %q, want Succeeded to stay", got)
	}
}

// Without a stored plan a re-run is refused, saying why, and the state stays.
func TestRerunWithoutAPlanIsRefused(t *testing.T) {
	u := upgrade().State(cleanup.StateSucceeded).Annotate(cleanup.RerunAnnotation, "x")
	f := newFixture(t, objects(u, true))
	f.WaitRepoReady(true)
	if err := f.SyncNow(); err != nil {
		t.Fatal(err)
	}
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateSucceeded || a[cleanup.RerunRefusedAnnotation] != "x" || a[cleanup.RunAnnotation] != "" ||
		!strings.Contains(a[cleanup.MessageAnnotation], "no plan is stored") {
		t.Errorf("state %q refused %q run %q message %q; want Succeeded kept, the token recorded as refused (not as a run), the reason",
			a[cleanup.StateAnnotation], a[cleanup.RerunRefusedAnnotation], a[cleanup.RunAnnotation], a[cleanup.MessageAnnotation])
	}
	f.WantNoFetch()
}

// Disk-pressure mode: the threshold reaches each Job, a node below it is
// reported skipped with its usage and counts as succeeded, and the
// measured space is summed beside the images' sizes.
func TestDiskPressureAndMeasuredSpace(t *testing.T) {
	const threshold = 5_000_000_000
	f := newRemovalFixture(t, 1, twoNodes, withOptions(func(c *cleanup.Config) { c.Removal.ImageFsThreshold = threshold }))
	f.SyncRemoval()
	for n, j := range f.RemovalJobs() {
		if !slices.Contains(j.Spec.Template.Spec.Containers[0].Args, "--image-fs-threshold=5000000000") {
			t.Errorf("Job on %s lacks the threshold: %q", n, j.Spec.Template.Spec.Containers[0].Args)
		}
	}
	if msg := f.Annotations()[cleanup.MessageAnnotation]; !strings.Contains(msg, "disk-pressure mode") {
		t.Errorf("Removing message %q does not say disk-pressure mode is on", msg)
	}
	f.FinishJob("harvester-node-0", true, report.Result{BelowThreshold: true, Threshold: threshold,
		ImageFs: &report.ImageFs{UsedBefore: 3_000_000_000, UsedAfter: 3_000_000_000}})
	f.FinishJob("harvester-node-1", true, report.Result{Removed: 3, BytesReclaimed: 900_000_000,
		ImageFs: &report.ImageFs{UsedBefore: 8_000_000_000, UsedAfter: 7_400_000_000}})
	f.SyncRemoval()
	a := f.Annotations()
	if cleanup.State(a[cleanup.StateAnnotation]) != cleanup.StateSucceeded {
		t.Fatalf("state %q: %s; a node below the threshold did as asked", a[cleanup.StateAnnotation], a[cleanup.MessageAnnotation])
	}
	s := f.Summary()
	var skipped *cleanup.NodeSummary
	for i := range s.Nodes {
		if s.Nodes[i].Node == "harvester-node-0" {
			skipped = &s.Nodes[i]
		}
	}
	if skipped == nil || skipped.Outcome != cleanup.NodeSkipped || !strings.Contains(skipped.Message, "3.0 GB") || !strings.Contains(skipped.Message, "5.0 GB") {
		t.Errorf("node below the threshold: %+v, want outcome skipped with its usage and the threshold", skipped)
	}
	if fs := s.ImageFs; fs == nil || fs.UsedBefore != 11_000_000_000 || fs.UsedAfter != 10_400_000_000 || fs.Freed != 600_000_000 || fs.Nodes != 2 {
		t.Errorf("total image fs %+v, want 2 nodes, 11 GB before, 10.4 GB after, 600 MB freed", fs)
	}
	msg := a[cleanup.MessageAnnotation]
	for _, want := range []string{"900.0 MB reclaimed", "600.0 MB freed, measured", "1 nodes below the image filesystem threshold"} {
		if !strings.Contains(msg, want) {
			t.Errorf("final message %q lacks %q", msg, want)
		}
	}
}
